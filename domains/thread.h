/*
 * domains/thread.h - the registry of threads that entered a domain or used
 * a domain's heap, and what is asked of all of them.
 */
#ifndef KH_DOMAINS_THREAD_H
#define KH_DOMAINS_THREAD_H

#include <stdbool.h>
#include <sys/types.h>

#include "alloc/tcache.h"
#include "domains/domain.h"

/* khi_thread_register - puts this thread in the registry (once; never
 * after its last exit hook).  alloc/ calls it through khi_tcache_enlist,
 * defined beside it. */
KHI_HIDDEN void khi_thread_register(void);

/* khi_threads_wait_idle - waits until no registered thread is busy in d's
 * heap.  pre: d is marked dead, the domain lock is held. */
KHI_HIDDEN void khi_threads_wait_idle(const struct khi_heap *d);

/* khi_threads_inside - whether any thread is inside d now.  Makes every
 * other thread's earlier enters visible first (membarrier), so no atomic
 * operation is needed on the enter/leave path.  pre: the caller holds the
 * domain lock. */
KHI_HIDDEN bool khi_threads_inside(const struct khi_heap *d);

/* khi_threads_using - whether some thread is inside d or busy in it: a
 * scan of the registry.  With barrier, every thread's earlier stores
 * (frames, busy marks) are made visible first (membarrier), so that a
 * thread that is not seen inside or busy will read what the caller stored
 * before (the key cache: d marked parked); without, it is a plain scan
 * (the choice of a candidate). */
KHI_HIDDEN bool khi_threads_using(const struct khi_heap *d, bool barrier);

/* khi_stack_keep - of a sweep's keys (ad bits), those that thread t (its
 * keyheap_abi_thread, the first depth frames) keeps: the key of a domain
 * its stack names (an enter writes its frame before it reads the domain's
 * state, so a thread anywhere in an enter is seen inside), whose domain is
 * marked used again, since the thread may open it after the sweep without
 * the domain's used word saying so.  Returns the keys it does not keep.
 * Reads only key-0 memory (the domain table): from keyheap's signal
 * handler (a thread's own stack) and from khi_threads_sweep (every
 * registered thread's). */
static inline unsigned khi_stack_keep(const struct keyheap_abi_thread *t, unsigned depth,
                                      unsigned bits)
{
    for (unsigned i = 0; i < depth && i < KEYHEAP_MAX_DEPTH; i++) {
        struct khi_heap *h = khi_frame_heap(&t->stack[i]);
        unsigned bit = h != NULL ? __atomic_load_n(&h->abi.ad_bit, __ATOMIC_RELAXED) & bits : 0;
        if (bit != 0) {
            bits &= ~bit;
            __atomic_store_n(&h->abi.used, 1u, __ATOMIC_RELAXED);
        }
    }
    return bits;
}

/* khi_threads_sweep - the key cache's sweep of the registered threads
 * (domains/keys.c): after a barrier on every thread (membarrier), every
 * resident domain that a registered thread's stack names and whose key is
 * among ad_bits is marked used.  Writes the registered threads' tids to
 * tids (up to max) and returns how many there are: those need no signal,
 * since a registered thread has a key of keyheap's open only for a domain
 * its stack names or for keyheap's own use (a thread that had others open
 * when it registered is left out, and signalled: it was made by a raw
 * clone inside a domain, or ran WRPKRU itself).  pre: the domain lock; the domains' used words
 * were cleared before the call. */
KHI_HIDDEN unsigned khi_threads_sweep(unsigned ad_bits, pid_t *tids, unsigned max);

/* khi_thread_waiting - marks this thread as waiting for a protection key
 * (khi_heap_unpark), or not.  pre: the domain lock. */
KHI_HIDDEN void khi_thread_waiting(bool waiting);

/* khi_threads_stuck_in - whether some thread is inside d (or busy in it)
 * and every such thread waits for a protection key: none of them will
 * leave d.  pre: the domain lock (under which threads mark themselves). */
KHI_HIDDEN bool khi_threads_stuck_in(const struct khi_heap *d);

/* khi_thread_inside_self - whether this thread's domain stack names d. */
KHI_HIDDEN bool khi_thread_inside_self(const struct khi_heap *d);

/* khi_threads_drop_tcaches - destroys every thread's cache for d. */
KHI_HIDDEN void khi_threads_drop_tcaches(const struct khi_heap *d);

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

#endif /* KH_DOMAINS_THREAD_H */
