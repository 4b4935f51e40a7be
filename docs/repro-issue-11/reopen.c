#define _GNU_SOURCE
#include <keyheap.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
extern volatile int shim_slow;
static char *volatile target; static int kd; static volatile int done_w;
static sigjmp_buf jb;
static void segv(int s) { (void)s; siglongjmp(jb, 1); }
static void *nop(void *a) { return a; }
static void *w_thread(void *a)
{
    (void)a;
    keyheap_abi_wrpkru(keyheap_abi_rdpkru() & ~(3u << (2 * kd))); /* opened by hand */
    pthread_t t; shim_slow = 1;
    pthread_create(&t, NULL, nop, NULL);   /* destroy's round runs during this */
    pthread_join(t, NULL);
    while (target == NULL) usleep(100);
    signal(SIGSEGV, segv);
    if (sigsetjmp(jb, 1) == 0) printf("W (pkru %#x) read the new domain's secret: \"%s\"\n", keyheap_abi_rdpkru(), target);
    else printf("W faulted (closed): OK\n");
    done_w = 1; return NULL;
}
int main(void)
{
    keyheap_domain_t *d = keyheap_domain_create("d", 0);
    kd = keyheap_domain_pkey(d);
    pthread_t t; pthread_create(&t, NULL, w_thread, NULL);
    while (shim_slow != 2) usleep(100);
    int rc = keyheap_domain_destroy(d);
    keyheap_domain_t *e = keyheap_domain_create("e", 0);
    printf("destroy rc %d; d key %d, e key %d\n", rc, kd, keyheap_domain_pkey(e));
    char *s = keyheap_malloc(e, 64);
    keyheap_enter(e); strcpy(s, "TOP SECRET"); keyheap_leave(e);
    target = s;
    while (!done_w) usleep(1000);
    return 0;
}
