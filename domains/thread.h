/*
 * domains/thread.h - keyheap's per-thread state beyond the inline ABI:
 * the registry of threads that use domains and their thread caches.
 */
#ifndef KH_DOMAINS_THREAD_H
#define KH_DOMAINS_THREAD_H

#include <stdbool.h>

#include "domains/domain.h"

/* No explicit thread cache: the thread is exiting or none could be made. */
#define KHI_NO_TCACHE (~0u)

/* khi_thread_tcache - this thread's explicit jemalloc cache for d, created
 * on first use; KHI_NO_TCACHE when there can be none. */
KHI_HIDDEN unsigned khi_thread_tcache_slow(struct keyheap_domain *d);

struct khi_thread_tc {
    unsigned gen; /* the domain generation the cache belongs to; 0: none */
    unsigned id;  /* jemalloc tcache index */
};
KHI_HIDDEN extern __thread struct khi_thread_tc khi_thread_tcs[KHI_SLOTS];

static inline unsigned khi_thread_tcache(struct keyheap_domain *d)
{
    struct khi_thread_tc *tc = &khi_thread_tcs[d->slot];
    if (__builtin_expect(tc->gen == d->gen, 1))
        return tc->id;
    return khi_thread_tcache_slow(d);
}

/* khi_thread_flags - mallocx flags for d's arena and this thread's cache. */
static inline int khi_thread_flags(struct keyheap_domain *d)
{
    unsigned tc = khi_thread_tcache(d);
    return KHI_JE_ARENA(d->arena) |
           (tc == KHI_NO_TCACHE ? KHI_JE_TCACHE_NONE : KHI_JE_TCACHE((int)tc));
}

/* khi_threads_inside - whether any thread is inside d now.  Makes every
 * other thread's earlier enters visible first (membarrier), so no atomic
 * operation is needed on the enter/leave path.  pre: the caller holds the
 * domain lock. */
KHI_HIDDEN bool khi_threads_inside(const struct keyheap_domain *d);

/* khi_threads_drop_tcaches - destroys every thread's cache for d. */
KHI_HIDDEN void khi_threads_drop_tcaches(const struct keyheap_domain *d);

/* khi_threads_init - registers the fork handlers and membarrier; once. */
KHI_HIDDEN void khi_threads_init(void);

/* The lock of the domain table (domains/domain.c); taken before the thread
 * registry's. */
KHI_HIDDEN extern pthread_mutex_t khi_domains_lock;

#endif /* KH_DOMAINS_THREAD_H */
