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
 * The same concern, every thread within keyheap's reach, makes the signal
 * mask calls wrapped here too (below, "signal masks"): no thread blocks
 * the signal by which keyheap closes keys in it (domains/rounds.c).
 *
 * Threads made by raw clone(2) and clone3(2) are not wrapped; they start
 * with their creator's PKRU, and keyheap_domain_destroy closes the
 * destroyed key in them like in every task (domains/rounds.c).
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <threads.h>
#include <time.h>

#include "alloc/fatal.h"
#include "alloc/malloc.h"
#include "alloc/pkey.h"
#include "domains/domain.h"
#include "domains/thread.h"
#include "domains/rounds.h"

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

/* The PKRU bits (both of each key) of the keys this thread may have open
 * for a reason keyheap knows: the live domains of its domain stack, and
 * the keys it opened for itself. */
static unsigned keys_of_stack(void)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned bits = khi_internal_open;
    for (unsigned i = 0; i < t->depth && i < KEYHEAP_MAX_DEPTH; i++) {
        const struct khi_heap *d = khi_frame_heap(&t->stack[i]);
        if (d != NULL && khi_heap_live(d))
            bits |= d->abi.ad_bit * 3u;
    }
    return bits;
}

/* Opens again what close_for_child closed, but only keys of domains the
 * thread is inside: a close round (a destroy) may have closed others
 * while the real call ran, and the saved value must not reopen them; the
 * key may even belong to a new domain by now. */
static void reopen_after(struct closed c)
{
    if (c.reopen) {
        unsigned keep = keys_of_stack();
        unsigned now = keyheap_abi_rdpkru();
        unsigned want = (now & ~keep) | (c.pkru & keep);
        if (want != now)
            keyheap_abi_wrpkru(want);
    }
    keyheap_abi_self.target = c.target;
}

/* keyheap's close rounds must reach every thread: a thread that blocks
 * KHI_PKRU_SIGNAL cannot be closed, so a destroy keeps its key.  The
 * C library's calls that set a signal mask never block it (as glibc's
 * never block its own SIGCANCEL), and a new thread unblocks it before
 * user code (a mask given with pthread_attr_setsigmask_np, or inherited). */
static const sigset_t *without_ours(int how, const sigset_t *set, sigset_t *copy)
{
    if (set == NULL || how == SIG_UNBLOCK || sigismember(set, KHI_PKRU_SIGNAL) != 1)
        return set;
    *copy = *set;
    sigdelset(copy, KHI_PKRU_SIGNAL);
    return copy;
}

static void unblock_ours(void)
{
    sigset_t ours;
    sigemptyset(&ours);
    sigaddset(&ours, KHI_PKRU_SIGNAL);
    syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &ours, NULL, _NSIG / 8);
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
static void load_libgcc_s(void)
{
    keyheap_domain_t *target = keyheap_abi_self.target;
    keyheap_abi_self.target = NULL;
    dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
    keyheap_abi_self.target = target;
}

/* Called before the domain lock is taken, and never waits for another
 * thread: dlopen takes the dynamic loader's lock, and the thread holding
 * it may be running a constructor that creates a domain.  A creation that
 * finds the load started elsewhere goes on without it. */
void khi_spawn_prepare(void)
{
    static bool started;
    if (__atomic_load_n(&started, __ATOMIC_RELAXED) ||
        __atomic_exchange_n(&started, true, __ATOMIC_ACQ_REL))
        return;
    load_libgcc_s();
}

/* ------------------------------------------------------ pthread_create */

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void *start_closed(void *p)
{
    struct start s = *(struct start *)p;
    khi_own_free(p);
    close_new_keys();
    unblock_ours();
    khi_thread_arm_exit();
    return s.fn(s.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

KEYHEAP_API int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                               void *arg)
{
    static pthread_create_fn real;
    if (real == NULL)
        real = (pthread_create_fn)next_symbol("pthread_create");
    struct start *s = khi_own_malloc(sizeof *s);
    if (s == NULL)
        return EAGAIN;
    s->fn = fn;
    s->arg = arg;
    struct closed c = close_for_child();
    int rc = real(thread, attr, start_closed, s);
    reopen_after(c);
    if (rc != 0)
        khi_own_free(s);
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
    khi_own_free(p);
    close_new_keys();
    unblock_ours();
    khi_thread_arm_exit();
    return s.fn(s.arg);
}

typedef int (*thrd_create_fn)(thrd_t *, thrd_start_t, void *);

KEYHEAP_API int thrd_create(thrd_t *thread, thrd_start_t fn, void *arg)
{
    static thrd_create_fn real;
    if (real == NULL)
        real = (thrd_create_fn)next_symbol("thrd_create");
    struct thrd_start *s = khi_own_malloc(sizeof *s);
    if (s == NULL)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    struct closed c = close_for_child();
    int rc = real(thread, thrd_start_closed, s);
    reopen_after(c);
    if (rc != thrd_success)
        khi_own_free(s);
    return rc;
}

/* -------------------------------------------------------- timer_create */

typedef int (*timer_create_fn)(clockid_t, struct sigevent *, timer_t *);

/* glibc makes its timer helper thread at the first SIGEV_THREAD timer,
 * inside timer_create; each expiry's notification thread is made by the
 * helper, with the helper's PKRU.  Closed here, all of them are. */
KEYHEAP_API int timer_create(clockid_t clock, struct sigevent *restrict ev, timer_t *restrict timer)
{
    static timer_create_fn real;
    if (real == NULL)
        real = (timer_create_fn)next_symbol("timer_create");
    /* The helper is made at the first SIGEV_THREAD timer: the tasks that
     * appear during that call are recorded as helpers (a round waits for
     * none of them that blocks keyheap's signal and never used a domain). */
    static bool helper_known;
    pid_t before[256];
    unsigned nbefore = 0;
    bool first = !__atomic_load_n(&helper_known, __ATOMIC_ACQUIRE) && ev != NULL &&
                 ev->sigev_notify == SIGEV_THREAD;
    if (first)
        nbefore = khi_task_snapshot(before, 256);
    struct closed c = close_for_child();
    int rc = real(clock, ev, timer);
    int e = errno;
    reopen_after(c);
    if (first && rc == 0) {
        pid_t after[256];
        unsigned nafter = khi_task_snapshot(after, 256);
        for (unsigned i = 0; i < nafter; i++) {
            bool old = false;
            for (unsigned j = 0; j < nbefore && !old; j++)
                old = before[j] == after[i];
            if (!old)
                khi_rounds_exempt(after[i]);
        }
        __atomic_store_n(&helper_known, true, __ATOMIC_RELEASE);
    }
    errno = e;
    return rc;
}

/* ------------------------------------------------------- signal masks */

typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);

/* The C library's call name (pthread_sigmask or sigprocmask), with keyheap's
 * signal left out of what it blocks. */
static int set_mask(sigmask_fn *real, const char *name, int how, const sigset_t *set, sigset_t *old)
{
    if (*real == NULL)
        *real = (sigmask_fn)next_symbol(name);
    sigset_t copy;
    return (*real)(how, without_ours(how, set, &copy), old);
}

KEYHEAP_API int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    static sigmask_fn real;
    return set_mask(&real, "pthread_sigmask", how, set, old);
}

KEYHEAP_API int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    static sigmask_fn real;
    return set_mask(&real, "sigprocmask", how, set, old);
}
