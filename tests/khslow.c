/*
 * tests/khslow.c - a pthread_create that waits, loaded after libkeyheap,
 * so that keyheap's wrapper calls it as "the C library's": the test makes
 * keyheap_domain_destroy run while a thread is inside the real call.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include "tests/khslow.h"

__attribute__((visibility("default"))) volatile int khslow_hold;    /* the next call waits */
__attribute__((visibility("default"))) volatile int khslow_inside;  /* it is waiting */
__attribute__((visibility("default"))) volatile int khslow_release; /* it may go on */

__attribute__((visibility("default"))) int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (real == NULL)
        real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(
            RTLD_NEXT, "pthread_create");
    if (khslow_hold) {
        khslow_hold = 0;
        khslow_inside = 1;
        struct timespec ms = {0, 1000000};
        while (!khslow_release)
            nanosleep(&ms, NULL);
    }
    return real(t, a, fn, arg);
}
