#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
volatile int shim_slow; /* the real call takes a while (mmap of a stack, say) */
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *x)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real) real = dlsym(RTLD_NEXT, "pthread_create");
    if (shim_slow) { shim_slow = 2; usleep(300000); }
    return real(t, a, f, x);
}
