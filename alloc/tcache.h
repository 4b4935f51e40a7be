/*
 * alloc/tcache.h - each thread's caches for the heaps: one explicit
 * jemalloc cache and one magazine per (thread, heap slot), and the mark a
 * thread sets while it works in a heap.
 *
 * alloc/ does not keep the list of threads: the owner of threads
 * (domains/thread.c) does, under khi_tcache_lock, and is told of each
 * thread the first time it makes a cache or marks itself busy
 * (khi_tcache_enlist, which it defines), so that a heap's teardown can
 * reach every cache and wait for every busy thread.
 */
#ifndef KH_ALLOC_TCACHE_H
#define KH_ALLOC_TCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/heap.h"

/* A magazine: a few free blocks of each small size class of one heap,
 * kept by one thread in front of its jemalloc cache for the heap, so the
 * common malloc and free in a heap are a push or a pop (jemalloc's
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

/* This thread's explicit jemalloc cache for each heap slot, and its
 * magazine.  Only this thread touches the magazine; a heap's teardown may
 * set gen to 0 (the magazine's blocks are then gone with the arena). */
struct khi_tcache {
    uint64_t gen;        /* the heap generation the cache belongs to; 0: none */
    int flags;           /* mallocx flags: the heap's arena and this cache */
    unsigned id;         /* jemalloc tcache index */
    struct khi_mag *mag; /* valid (emptied) whenever gen is not 0 */
};
KHI_HIDDEN extern __thread struct khi_tcache khi_tcaches[KHI_SLOTS];

/* Guards every thread's caches (their creation and their drop from other
 * threads); the owner of threads keeps its list under it too. */
KHI_HIDDEN extern pthread_mutex_t khi_tcache_lock;

/* The slot + 1 of the heap this thread is working in through jemalloc
 * (the slow paths of malloc and free, realloc, the explicit API), or 0.
 * A teardown marks the heap dead first, then waits until no thread has it
 * here; a heap call that starts after the mark finds it dead and aborts. */
KHI_HIDDEN extern __thread unsigned khi_heap_busy;

/* Whether this thread was enlisted (or can no longer be: it is past its
 * last exit hook). */
KHI_HIDDEN extern __thread bool khi_tcache_enlisted;

/* khi_tcache_enlist - makes this thread known to the owner of threads,
 * once.  alloc/ declares it and calls it; the owner of threads defines it
 * (domains/thread.c), so the call is direct, through no pointer a stray
 * write could change, and no header of the layer above is included. */
KHI_HIDDEN void khi_tcache_enlist(void);

/* Set by the owner of threads when this thread is past its last exit hook:
 * no cache is made for it any more (its allocations take no cache). */
KHI_HIDDEN extern __thread bool khi_tcache_final;

/* khi_heap_racing_destroy - the fatal error for op on p (NULL: an
 * allocation) in h, which a teardown is destroying. */
KHI_HIDDEN __attribute__((noreturn, cold)) void
khi_heap_racing_destroy(const struct khi_heap *h, const void *p, const char *op);

/* khi_busy_begin - marks this thread busy in h for op on p; aborts when h
 * is being destroyed.  Returns what khi_busy_end restores (the marks
 * nest).  The compiler barrier orders the mark before the check; the
 * destroying thread's membarrier orders them across CPUs, so neither side
 * needs an atomic instruction. */
static inline unsigned khi_busy_begin(const struct khi_heap *h, const void *p, const char *op)
{
    if (__builtin_expect(!khi_tcache_enlisted, 0))
        khi_tcache_enlist();
    unsigned prev = khi_heap_busy;
    khi_heap_busy = h->slot + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(!khi_heap_live(h), 0))
        khi_heap_racing_destroy(h, p, op);
    return prev;
}

static inline void khi_busy_end(unsigned prev)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    khi_heap_busy = prev;
}

/* khi_busy_resident - khi_busy_begin, with h resident for as long as the
 * mark stays (a key cache takes no key from a heap a thread is busy in):
 * a parked h gets its key back first, without the mark (khi_heap_unpark).
 * For the calls that touch h's memory: zeroing, scrubbing, copying. */
static inline unsigned khi_busy_resident(struct khi_heap *h, const void *p, const char *op)
{
    for (;;) {
        unsigned prev = khi_busy_begin(h, p, op);
        if (__builtin_expect(khi_heap_resident(h), 1))
            return prev;
        khi_busy_end(prev);
        khi_heap_unpark(h);
    }
}

/* khi_tcache_flags_slow - creates this thread's cache for h and returns
 * its flags; without a cache (the thread is past its last exit hook, or
 * jemalloc has none left) the flags ask for no cache. */
KHI_HIDDEN int khi_tcache_flags_slow(struct khi_heap *h);

/* khi_tcache_flags - mallocx flags for h's arena and this thread's cache. */
static inline int khi_tcache_flags(struct khi_heap *h)
{
    const struct khi_tcache *tc = &khi_tcaches[h->slot];
    if (__builtin_expect(tc->gen == h->gen, 1))
        return tc->flags;
    return khi_tcache_flags_slow(h);
}

/* khi_tcache_drop - destroys the cache of tcs (some thread's khi_tcaches)
 * for h, if it has one.  pre: khi_tcache_lock; h is dead and no thread is
 * busy in it. */
KHI_HIDDEN void khi_tcache_drop(struct khi_tcache *tcs, const struct khi_heap *h);

/* khi_tcache_drop_all - gives every magazine of tcs back (where its heap
 * is still alive) and destroys every cache and magazine: the thread is
 * ending (or gone, in a forked child).  pre: khi_tcache_lock. */
KHI_HIDDEN void khi_tcache_drop_all(struct khi_tcache *tcs);

#endif /* KH_ALLOC_TCACHE_H */
