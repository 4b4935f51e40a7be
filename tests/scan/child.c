/* tests/scan/child.c - a running program for keyheap-scan --pid
 * (tests/check_scan.sh): linked with gadgets.s, it says "ready" on stdout
 * and waits for its stdin to close. */
#include <stdio.h>
#include <unistd.h>

void f_calls_local(void);
void (*volatile keep)(void) = f_calls_local;

int main(void)
{
    char c;
    puts("ready");
    fflush(stdout);
    return read(0, &c, 1) < 0;
}
