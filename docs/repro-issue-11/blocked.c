#define _GNU_SOURCE
#include <keyheap.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>
#include <setjmp.h>
static char *volatile target; static int kd; static atomic_int ready, done_w;
static sigjmp_buf jb;
static void segv(int s) { (void)s; siglongjmp(jb, 1); }
static void *w_thread(void *a)
{
    (void)a;
    unsigned p = keyheap_abi_rdpkru();
    keyheap_abi_wrpkru(p & ~(3u << (2 * kd)));
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGRTMAX - 1); pthread_sigmask(SIG_BLOCK, &s, NULL);
    ready = 1;
    while (target == NULL) usleep(100);
    printf("W pkru %#x\n", keyheap_abi_rdpkru());
    signal(SIGSEGV, segv);
    if (sigsetjmp(jb, 1) == 0) printf("W read: \"%s\"\n", target);
    else printf("W faulted (closed): OK\n");
    done_w = 1; return NULL;
}
int main(void)
{
    keyheap_domain_t *d = keyheap_domain_create("d", 0);
    kd = keyheap_domain_pkey(d);
    pthread_t t; pthread_create(&t, NULL, w_thread, NULL);
    while (!ready) usleep(1000);
    int rc = keyheap_domain_destroy(d);
    keyheap_domain_t *e = keyheap_domain_create("e", 0);
    printf("destroy rc %d; d key %d, e key %d\n", rc, kd, keyheap_domain_pkey(e));
    char *s = keyheap_malloc(e, 64);
    keyheap_enter(e); strcpy(s, "TOP SECRET"); keyheap_leave(e);
    target = s;
    while (!done_w) usleep(1000);
    return 0;
}
