/* tests/scan/kh_only.c - a program whose only PKRU writes are keyheap's
 * inline enters and leaves (tests/check_scan.sh: keyheap-scan exits 0). */
#include <keyheap.h>

int main(void)
{
    keyheap_domain_t *d = keyheap_domain_create("scan-test", 0);
    if (d == 0)
        return 1;
    keyheap_enter(d);
    keyheap_leave(d);
    keyheap_enter_ro(d);
    keyheap_leave(d);
    return keyheap_domain_destroy(d);
}
