/*
 * domains/sigstack.c - the sigaltstack wrapper: no signal stack in a domain.
 *
 * The kernel starts every signal handler with the default PKRU, every
 * domain closed (PKU-FACTS rows 1, 1b, 8d).  A handler on an alternate
 * signal stack that lies in domain memory faults on its first push; when
 * the thread was outside the domain, the kernel cannot even write the
 * frame of the SIGSEGV that follows, and the process dies.  Programs do
 * malloc their signal stacks (CPython's faulthandler does), and a malloc
 * inside a domain lands in it.
 *
 * So a stack that overlaps the domain span is never given to the kernel:
 * this thread gets a substitute of the same size from ordinary anonymous
 * memory (key 0), with a PROT_NONE guard page below it, and sigaltstack
 * keeps reporting the stack the program gave, so that code that saves and
 * restores its stack sees its own.  Replacing or disabling the stack, and
 * the thread's exit, give the substitute back; while the thread runs on
 * it the kernel refuses any change (EPERM), so a substitute is never
 * unmapped under a running handler.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc/fatal.h"
#include "domains/domain.h"

typedef int (*sigaltstack_fn)(const stack_t *, stack_t *);

/* This thread's substitute: its mapping (guard page first), the stack
 * the kernel has (stack, the mapping past the guard), and the stack the
 * program asked for, which sigaltstack reports in its place. */
struct substitute {
    void *map;
    size_t map_len;
    void *stack;
    void *user_sp;
    size_t user_size;
};

static __thread struct substitute sub;
static sigaltstack_fn real_sigaltstack;
static pthread_key_t exit_key;
static bool have_exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static sigaltstack_fn real(void)
{
    sigaltstack_fn fn = __atomic_load_n(&real_sigaltstack, __ATOMIC_RELAXED);
    if (fn == NULL) {
        fn = (sigaltstack_fn)dlsym(RTLD_NEXT, "sigaltstack");
        if (fn == NULL)
            khi_fatal("cannot find the C library's sigaltstack", (char *)NULL);
        __atomic_store_n(&real_sigaltstack, fn, __ATOMIC_RELAXED);
    }
    return fn;
}

/* Whether [sp, sp + size) overlaps the domain span. */
static bool overlaps_domains(const void *sp, size_t size)
{
    uintptr_t lo = (uintptr_t)sp, hi = lo + size;
    if (hi < lo)
        hi = UINTPTR_MAX;
    if (size == 0)
        return khi_in_span(sp);
    return khi_in_span(sp) || khi_in_span((const void *)(hi - 1)) ||
           (lo < khi_span.base && hi > khi_span.base && khi_span.size != 0);
}

static size_t page_size(void)
{
    static size_t page;
    if (page == 0)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

/* A new substitute for a stack of size bytes in s; returns true on failure
 * (errno set by mmap or mprotect). */
static bool substitute_map(struct substitute *s, size_t size)
{
    size_t page = page_size();
    size_t pages = size == 0 ? page : (size + page - 1) & ~(page - 1);
    if (pages < size || pages + page < pages) {
        errno = ENOMEM;
        return true;
    }
    void *m = mmap(NULL, pages + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return true;
    if (mprotect(m, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(m, pages + page);
        errno = e;
        return true;
    }
    s->map = m;
    s->map_len = pages + page;
    s->stack = (char *)m + page;
    return false;
}

static void substitute_unmap(struct substitute *s)
{
    if (s->map != NULL)
        munmap(s->map, s->map_len);
    s->map = NULL;
}

/* The thread is exiting: its substitute goes, once the kernel no longer
 * has it (pthread_exit from a handler on it keeps it mapped). */
static void substitute_exit(void *unused)
{
    (void)unused;
    if (sub.map == NULL)
        return;
    stack_t off = {.ss_flags = SS_DISABLE};
    stack_t cur;
    int e = errno;
    if (real()(NULL, &cur) == 0 && cur.ss_sp == sub.stack && real()(&off, NULL) != 0) {
        errno = e;
        return;
    }
    substitute_unmap(&sub);
    errno = e;
}

static void exit_key_create(void)
{
    have_exit_key = pthread_key_create(&exit_key, substitute_exit) == 0;
    if (!have_exit_key)
        khi_warn("sigaltstack: no thread-specific key: substitute signal stacks of exiting "
                 "threads stay mapped",
                 (char *)NULL);
}

/* dlsym and pthread_once are not async-signal-safe, sigaltstack is: both
 * are done at load time, before any handler can call it. */
static __attribute__((constructor)) void sigstack_init(void)
{
    (void)real();
    pthread_once(&exit_once, exit_key_create);
}

static void warn_once(const void *sp, size_t size)
{
    static bool warned;
    if (__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
        return;
    char at[24], n[24];
    const void *in = khi_in_span(sp) ? sp : (const void *)khi_span.base;
    const struct khi_heap *d = khi_heap_of(in);
    const char *name = khi_heap_live(d) ? d->name : "(none: a destroyed domain's memory)";
    khi_warn("sigaltstack: the stack at ", khi_hex(at, (unsigned long)sp), " (", khi_dec(n, size),
             " bytes) is memory of domain \"", name,
             "\", where every signal handler would fault on its first push (handlers run with "
             "every domain closed); this thread's signals run on a substitute stack of the same "
             "size in ordinary memory instead, and sigaltstack reports the stack given",
             (char *)NULL);
}

/* Installs ss, which lies in domain memory, as sub's stack: the current
 * substitute if it is large enough, else a new one. */
static int install_substitute(const stack_t *ss, stack_t *old)
{
    struct substitute next = sub;
    bool fresh = sub.map == NULL || sub.map_len - page_size() < ss->ss_size;
    if (fresh && substitute_map(&next, ss->ss_size))
        return -1;
    stack_t k = {.ss_sp = next.stack, .ss_flags = ss->ss_flags, .ss_size = ss->ss_size};
    if (real()(&k, old) != 0) {
        int e = errno;
        if (fresh)
            substitute_unmap(&next);
        errno = e;
        return -1;
    }
    /* The kernel took the new stack, so this thread is not running on
     * the one it had. */
    if (fresh)
        substitute_unmap(&sub);
    next.user_sp = ss->ss_sp;
    next.user_size = ss->ss_size;
    sub = next;
    return 0;
}

KEYHEAP_API int sigaltstack(const stack_t *ss, stack_t *old)
{
    struct substitute was = sub;
    stack_t want; /* old may be ss */
    if (ss != NULL) {
        want = *ss;
        ss = &want;
    }
    int rc;
    if (ss != NULL && !(ss->ss_flags & SS_DISABLE) && overlaps_domains(ss->ss_sp, ss->ss_size)) {
        pthread_once(&exit_once, exit_key_create);
        int e = errno;
        rc = install_substitute(ss, old);
        if (rc != 0)
            return rc;
        if (have_exit_key)
            pthread_setspecific(exit_key, &sub); /* any non-NULL value */
        warn_once(ss->ss_sp, ss->ss_size);
        errno = e;
    } else {
        rc = real()(ss, old);
        if (rc != 0)
            return rc;
        if (ss != NULL && sub.map != NULL) {
            int e = errno;
            substitute_unmap(&sub);
            errno = e;
        }
    }
    /* What the kernel had before: the program's own stack, not ours. */
    if (old != NULL && was.map != NULL && old->ss_sp == was.stack) {
        old->ss_sp = was.user_sp;
        old->ss_size = was.user_size;
    }
    return 0;
}
