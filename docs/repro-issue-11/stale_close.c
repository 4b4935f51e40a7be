#define _GNU_SOURCE
#include <keyheap.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>
static keyheap_domain_t *e;
static atomic_int phase;
static char *secret;
static void *worker(void *a)
{
    (void)a;
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGRTMAX - 1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);   /* a short critical section, say */
    phase = 1;
    while (phase != 2) usleep(1000);
    keyheap_enter(e);                       /* inside e, legitimately */
    secret[0] = 'x';
    pthread_sigmask(SIG_UNBLOCK, &s, NULL); /* the destroy's old signal arrives now */
    secret[1] = 'y';                        /* faults? */
    keyheap_leave(e);
    printf("worker: no fault inside e\n");
    return NULL;
}
int main(void)
{
    keyheap_domain_t *d = keyheap_domain_create("d", 0);
    int kd = keyheap_domain_pkey(d);
    pthread_t t; pthread_create(&t, NULL, worker, NULL);
    while (phase != 1) usleep(1000);
    if (keyheap_domain_destroy(d)) perror("destroy");
    e = keyheap_domain_create("e", 0);
    printf("d key %d, e key %d\n", kd, keyheap_domain_pkey(e));
    secret = keyheap_malloc(e, 64);
    phase = 2;
    pthread_join(t, NULL);
    return 0;
}
