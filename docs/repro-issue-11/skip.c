#define _GNU_SOURCE
#include <keyheap.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <setjmp.h>
#define NE 700
static keyheap_domain_t *d, *r_dom;
static struct timespec deadline;
static atomic_int ready, go, done_w;
static char *volatile target;
static int kd;
static sigjmp_buf jb;
static void segv(int s) { (void)s; siglongjmp(jb, 1); }
static void *e_thread(void *a)
{
    (void)a; ready++;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) != 0) {}
    return NULL;
}
static void *r_thread(void *a)
{
    (void)a;
    keyheap_enter(r_dom); keyheap_leave(r_dom);  /* registered */
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGRTMAX - 1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    ready++;
    while (!go) usleep(100);
    usleep(300000);                              /* answers late, but within the second */
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    return NULL;
}
static void *w_thread(void *a)
{
    (void)a;
    unsigned p = keyheap_abi_rdpkru();
    keyheap_abi_wrpkru(p & ~(3u << (2 * kd)));  /* d's key opened by hand */
    ready++;
    while (target == NULL) usleep(100);
    printf("W pkru %#x\n", keyheap_abi_rdpkru());
    signal(SIGSEGV, segv);
    if (sigsetjmp(jb, 1) == 0)
        printf("W read the new domain's secret: \"%s\"\n", target);
    else
        printf("W faulted (closed): OK\n");
    done_w = 1;
    return NULL;
}
int main(void)
{
    d = keyheap_domain_create("d", 0);
    r_dom = keyheap_domain_create("r", 0);
    kd = keyheap_domain_pkey(d);
    pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 65536);
    pthread_t t;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 3;
    long extra = getenv("CONTROL") ? 100 : 0;
    struct timespec base = deadline; deadline.tv_sec += extra;   /* E threads exit ~100 ms into the destroy (set below) */
    pthread_create(&t, &at, r_thread, NULL);
    for (int i = 0; i < NE; i++) pthread_create(&t, &at, e_thread, NULL);
    pthread_create(&t, &at, w_thread, NULL);
    while (ready != NE + 2) usleep(1000);
    struct timespec now; clock_gettime(CLOCK_MONOTONIC, &now);
    long ns = (base.tv_sec - now.tv_sec) * 1000000000L + (base.tv_nsec - now.tv_nsec);
    if (ns > 100000000L) { struct timespec w = {0, 0}; ns -= 100000000L; w.tv_sec = ns / 1000000000L; w.tv_nsec = ns % 1000000000L; nanosleep(&w, NULL); }
    go = 1;
    struct timespec a0,a1; clock_gettime(CLOCK_MONOTONIC,&a0);
    int rc = keyheap_domain_destroy(d);
    clock_gettime(CLOCK_MONOTONIC,&a1); printf("destroy took %ld ms\n", (a1.tv_sec-a0.tv_sec)*1000+(a1.tv_nsec-a0.tv_nsec)/1000000);
    keyheap_domain_t *e = keyheap_domain_create("e", 0);
    printf("destroy rc %d; d key %d, e key %d\n", rc, kd, keyheap_domain_pkey(e));
    char *s = keyheap_malloc(e, 64);
    keyheap_enter(e); strcpy(s, "TOP SECRET"); keyheap_leave(e);
    target = s;
    while (!done_w) usleep(1000);
    return 0;
}
