/*
 * domains/spawn.c - threads are born with every domain closed.
 *
 * The kernel gives a new thread its creator's PKRU (PKU-FACTS row 2).  The
 * C library's ways to make a thread - pthread_create, thrd_create (which
 * glibc does not route through the exported pthread_create) and
 * timer_create with SIGEV_THREAD (whose helper thread, made at the first
 * such call, creates every notification thread) - are wrapped here: the
 * creating thread closes keyheap's keys for the duration of the real call,
 * so the child is closed from its first instruction; and the child closes
 * again whatever keys domains created meanwhile took, before any user code
 * runs.  The creator also makes the call outside any domain's heap: glibc
 * allocates the new thread's bookkeeping (its DTV) with malloc, in the
 * creating thread, and inside a domain that would land there and fault in
 * the new thread later.
 *
 * Threads made by raw clone(2) and clone3(2) are not wrapped; they start
 * with their creator's PKRU, and keyheap_domain_destroy closes the
 * destroyed key in them like in every task (domains/watchdog.c).
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <threads.h>
#include <time.h>

#include "domains/domain.h"
#include "domains/fatal.h"
#include "domains/pkey.h"
#include "domains/thread.h"

/* What the creating thread restores after the real call. */
struct closed {
    keyheap_domain_t *target;
    unsigned pkru;
    bool reopen;
};

/* Closes keyheap's keys in this thread and leaves malloc's target on the
 * default heap; no RDPKRU before the first domain (a CPU without PKU). */
static struct closed close_for_child(void)
{
    struct closed c = {keyheap_abi_self.target, 0, false};
    keyheap_abi_self.target = NULL;
    unsigned held = khi_keys_held();
    if (held != 0) {
        c.pkru = keyheap_abi_rdpkru();
        if (khi_pkru_close(c.pkru, held) != c.pkru) {
            keyheap_abi_wrpkru(khi_pkru_close(c.pkru, held));
            c.reopen = true;
        }
    }
    return c;
}

static void reopen_after(struct closed c)
{
    if (c.reopen)
        keyheap_abi_wrpkru(c.pkru);
    keyheap_abi_self.target = c.target;
}

/* In the child, before user code: the keys of domains created while the
 * parent was in the real call. */
static void close_new_keys(void)
{
    unsigned held = khi_keys_held();
    if (held != 0) {
        unsigned pkru = keyheap_abi_rdpkru();
        if (khi_pkru_close(pkru, held) != pkru)
            keyheap_abi_wrpkru(khi_pkru_close(pkru, held));
    }
}

static void *next_symbol(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL)
        khi_fatal("cannot find the C library's ", name, (char *)NULL);
    return f;
}

/* ------------------------------------------------- threads that end */

/* pthread_exit and cancellation unwind the thread's stack with libgcc_s,
 * which glibc dlopens at the first one: inside a domain its link map and
 * the rest of ld.so's bookkeeping would land in the domain's heap, and the
 * next thread to read them (exit's _dl_fini, for one) faults.  Loaded here,
 * at the first domain, on the default heap, glibc finds it loaded. */
void khi_spawn_prepare(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    keyheap_domain_t *target = keyheap_abi_self.target;
    keyheap_abi_self.target = NULL;
    dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
    keyheap_abi_self.target = target;
}

/* ------------------------------------------------------ pthread_create */

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void *start_closed(void *p)
{
    struct start s = *(struct start *)p;
    kh_je_free(p);
    close_new_keys();
    return s.fn(s.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

KEYHEAP_API int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                               void *arg)
{
    static pthread_create_fn real;
    if (real == NULL)
        real = (pthread_create_fn)next_symbol("pthread_create");
    struct start *s = kh_je_malloc(sizeof *s);
    if (s == NULL)
        return EAGAIN;
    s->fn = fn;
    s->arg = arg;
    struct closed c = close_for_child();
    int rc = real(thread, attr, start_closed, s);
    reopen_after(c);
    if (rc != 0)
        kh_je_free(s);
    return rc;
}

/* --------------------------------------------------------- thrd_create */

struct thrd_start {
    thrd_start_t fn;
    void *arg;
};

static int thrd_start_closed(void *p)
{
    struct thrd_start s = *(struct thrd_start *)p;
    kh_je_free(p);
    close_new_keys();
    return s.fn(s.arg);
}

typedef int (*thrd_create_fn)(thrd_t *, thrd_start_t, void *);

KEYHEAP_API int thrd_create(thrd_t *thread, thrd_start_t fn, void *arg)
{
    static thrd_create_fn real;
    if (real == NULL)
        real = (thrd_create_fn)next_symbol("thrd_create");
    struct thrd_start *s = kh_je_malloc(sizeof *s);
    if (s == NULL)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    struct closed c = close_for_child();
    int rc = real(thread, thrd_start_closed, s);
    reopen_after(c);
    if (rc != thrd_success)
        kh_je_free(s);
    return rc;
}

/* -------------------------------------------------------- timer_create */

typedef int (*timer_create_fn)(clockid_t, struct sigevent *, timer_t *);

/* glibc makes its timer helper thread at the first SIGEV_THREAD timer,
 * inside timer_create; each expiry's notification thread is made by the
 * helper, with the helper's PKRU.  Closed here, all of them are. */
KEYHEAP_API int timer_create(clockid_t clock, struct sigevent *restrict ev,
                             timer_t *restrict timer)
{
    static timer_create_fn real;
    if (real == NULL)
        real = (timer_create_fn)next_symbol("timer_create");
    struct closed c = close_for_child();
    int rc = real(clock, ev, timer);
    int e = errno;
    reopen_after(c);
    errno = e;
    return rc;
}
