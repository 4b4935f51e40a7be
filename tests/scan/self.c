/* tests/scan/self.c - keyheap_scan_self() and KEYHEAP_CONF=scan:true in a
 * program linked with tests/scan/gadgets.s (tests/check_scan.sh).
 *   self         prints f_start's address, then keyheap_scan_self()'s answer
 *   self create  prints f_start's address, creates two domains (the scan
 *                runs at the first with KEYHEAP_CONF=scan:true), prints 0 */
#include <keyheap.h>
#include <stdio.h>
#include <string.h>

void f_start(void);
void f_calls_local(void);
void (*volatile keep)(void) = f_calls_local;

int main(int argc, char **argv)
{
    printf("%p\n", (void *)f_start);
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "create") == 0) {
        keyheap_domain_t *a = keyheap_domain_create("scan-a", 0);
        keyheap_domain_t *b = keyheap_domain_create("scan-b", 0);
        if (a == NULL || b == NULL)
            return perror("keyheap_domain_create"), 1;
        keyheap_enter(a);
        keyheap_leave(a);
        printf("%d\n", keyheap_domain_destroy(b) + keyheap_domain_destroy(a));
        return 0;
    }
    int n = keyheap_scan_self();
    printf("%d\n", n);
    return n < 0;
}
