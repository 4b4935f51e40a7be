/*
 * domains/thread.h - keyheap's per-thread state beyond the inline ABI:
 * the registry of threads that use domains and their thread caches.
 */
#ifndef KH_DOMAINS_THREAD_H
#define KH_DOMAINS_THREAD_H

#include <stdbool.h>
#include <sys/types.h>

#include "domains/domain.h"

/* A magazine: a few free blocks of each small size class of one domain,
 * kept by one thread in front of its jemalloc cache for the domain, so the
 * common malloc and free in a domain are a push or a pop (jemalloc's
 * mallocx and dallocx with explicit arena and cache flags take the long
 * way).  The blocks are allocated as far as jemalloc knows; their map byte
 * says freed.  The magazine itself is ordinary memory of the default heap:
 * it holds addresses, never contents. */
#define KHI_MAG_CLASSES 20u /* jemalloc's size classes 16, 32, ... 1024 */
#define KHI_MAG_MAX 1024u   /* the largest size served from magazines */
#define KHI_MAG_DEPTH 16u   /* blocks per class */
struct khi_mag {
    unsigned char count[KHI_MAG_CLASSES];
    void *block[KHI_MAG_CLASSES][KHI_MAG_DEPTH];
};

/* This thread's explicit jemalloc cache for each domain slot, and its
 * magazine.  Only this thread touches the magazine; a domain destroy may
 * set gen to 0 (the magazine's blocks are then gone with the arena). */
struct khi_thread_tc {
    uint64_t gen;        /* the domain generation the cache belongs to; 0: none */
    int flags;           /* mallocx flags: the domain's arena and this cache */
    unsigned id;         /* jemalloc tcache index */
    struct khi_mag *mag; /* valid (emptied) whenever gen is not 0 */
};
KHI_HIDDEN extern __thread struct khi_thread_tc khi_thread_tcs[KHI_SLOTS];

/* The slot + 1 of the domain whose heap this thread is working in through
 * jemalloc (the slow paths of malloc and free, realloc, the explicit API),
 * or 0.  keyheap_domain_destroy marks the domain dead first, then waits
 * until no thread has it here (khi_threads_wait_idle); a heap call that
 * starts after the mark finds the domain dead and aborts. */
KHI_HIDDEN extern __thread unsigned khi_heap_busy;

/* Whether this thread is in the registry (or can no longer be: it is
 * exiting); khi_thread_register puts it there. */
KHI_HIDDEN extern __thread bool khi_thread_known;
KHI_HIDDEN void khi_thread_register(void);

/* khi_heap_racing_destroy - the fatal error for op on p (NULL: an
 * allocation) in d, which a keyheap_domain_destroy is destroying. */
KHI_HIDDEN __attribute__((noreturn, cold)) void
khi_heap_racing_destroy(const struct keyheap_domain *d, const void *p, const char *op);

/* khi_busy_begin - marks this thread busy in d's heap for op on p; aborts
 * when d is being destroyed.  Returns what khi_busy_end restores (the
 * marks nest).  The compiler barrier orders the mark before the check; the
 * destroying thread's membarrier orders them across CPUs, so neither side
 * needs an atomic instruction. */
static inline unsigned khi_busy_begin(const struct keyheap_domain *d, const void *p,
                                      const char *op)
{
    if (__builtin_expect(!khi_thread_known, 0))
        khi_thread_register();
    unsigned prev = khi_heap_busy;
    khi_heap_busy = d->slot + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(!khi_domain_live(d), 0))
        khi_heap_racing_destroy(d, p, op);
    return prev;
}

static inline void khi_busy_end(unsigned prev)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    khi_heap_busy = prev;
}

/* khi_threads_wait_idle - waits until no registered thread is busy in d's
 * heap.  pre: d is marked dead, the domain lock is held. */
KHI_HIDDEN void khi_threads_wait_idle(const struct keyheap_domain *d);

/* khi_thread_flags_slow - creates this thread's cache for d and returns
 * its flags; without a cache (the thread is exiting, or jemalloc has none
 * left) the flags ask for no cache. */
KHI_HIDDEN int khi_thread_flags_slow(struct keyheap_domain *d);

/* khi_thread_flags - mallocx flags for d's arena and this thread's cache. */
static inline int khi_thread_flags(struct keyheap_domain *d)
{
    const struct khi_thread_tc *tc = &khi_thread_tcs[d->slot];
    if (__builtin_expect(tc->gen == d->gen, 1))
        return tc->flags;
    return khi_thread_flags_slow(d);
}

/* khi_threads_inside - whether any thread is inside d now.  Makes every
 * other thread's earlier enters visible first (membarrier), so no atomic
 * operation is needed on the enter/leave path.  pre: the caller holds the
 * domain lock. */
KHI_HIDDEN bool khi_threads_inside(const struct keyheap_domain *d);

/* khi_threads_drop_tcaches - destroys every thread's cache for d. */
KHI_HIDDEN void khi_threads_drop_tcaches(const struct keyheap_domain *d);

/* khi_thread_shadow - what this thread's PKRU must be for keyheap's keys
 * (its domain stack applied to all-closed), with other keys' bits from hw.
 * Async-signal-safe. */
KHI_HIDDEN unsigned khi_thread_shadow(unsigned hw);

/* khi_key_rights - "none", "read-only" or "read-write": what PKRU value
 * pkru gives key.  Async-signal-safe. */
KHI_HIDDEN const char *khi_key_rights(unsigned pkru, unsigned key);

/* khi_domain_of_key - the live domain that has key, or NULL.
 * Async-signal-safe (it reads the domain table, takes no lock). */
KHI_HIDDEN const struct keyheap_domain *khi_domain_of_key(unsigned key);

/* khi_thread_tids - the tids of up to max registered threads, in out;
 * returns how many.  Takes the registry's lock. */
KHI_HIDDEN unsigned khi_thread_tids(pid_t *out, unsigned max);

/* khi_thread_registered - whether the thread with this tid entered a
 * domain or made a cache for one (and has not exited).  Takes the
 * registry's lock. */
KHI_HIDDEN bool khi_thread_registered(pid_t tid);

/* khi_spawn_prepare - loads what glibc would load lazily inside a domain
 * when a thread ends there (domains/spawn.c); once.  pre: the domain lock is
 * not held (dlopen takes the loader lock). */
KHI_HIDDEN void khi_spawn_prepare(void);

/* khi_thread_arm_exit - arms the thread-exit hook in a new thread before
 * its user code (domains/spawn.c), so that it runs in every round of
 * thread-specific-data destructors. */
KHI_HIDDEN void khi_thread_arm_exit(void);

/* khi_threads_init - registers the fork handlers and membarrier; once. */
KHI_HIDDEN void khi_threads_init(void);

/* The lock of the domain table (domains/domain.c); taken before the thread
 * registry's. */
KHI_HIDDEN extern pthread_mutex_t khi_domains_lock;

#endif /* KH_DOMAINS_THREAD_H */
