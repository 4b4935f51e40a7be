/*
 * alloc/heap.h - allocation in a domain's heap, and routing between the
 * default heap and the domains.
 */
#ifndef KH_ALLOC_HEAP_H
#define KH_ALLOC_HEAP_H

#include <stdbool.h>
#include <stddef.h>

#include "domains/domain.h"

#ifdef __cplusplus
extern "C" {
#endif

/* khi_target - this thread's malloc target, or NULL (the default heap). */
static inline struct keyheap_domain *khi_target(void)
{
    return (struct keyheap_domain *)keyheap_abi_self.target;
}

/* khi_heap_init - learns jemalloc's small size classes for the magazines,
 * once.  pre: the domain lock is held (it is called at domain creation). */
KHI_HIDDEN void khi_heap_init(void);

/*
 * khi_domain_alloc - size bytes (0 allowed) aligned to align (a power of
 * two; 1 for malloc's alignment) in d's heap, zeroed when zero is true.
 * pre: d is live.  Returns NULL with errno ENOMEM on failure.
 */
KHI_HIDDEN void *khi_domain_alloc(struct keyheap_domain *d, size_t size, size_t align, bool zero);

/* khi_domain_malloc - malloc in d: the path of malloc inside a domain,
 * out of line so that malloc's default path stays a test and a jump.
 * pre: d is live.  NULL with errno ENOMEM on failure. */
KHI_HIDDEN void *khi_domain_malloc(struct keyheap_domain *d, size_t size);

/* khi_domain_free - frees p, a block of some domain, scrubbing it unless
 * the domain has KEYHEAP_NOSCRUB.  pre: khi_in_span(p).  Aborts when p's
 * domain was destroyed. */
KHI_HIDDEN void khi_domain_free(void *p);

/* khi_domain_realloc - resizes p within its domain; NULL with errno ENOMEM
 * (p untouched) on failure.  pre: khi_in_span(p), size > 0. */
KHI_HIDDEN void *khi_domain_realloc(void *p, size_t size);

/* khi_domain_usable - the usable size of p.  pre: khi_in_span(p). */
KHI_HIDDEN size_t khi_domain_usable(const void *p);

/* khi_heap_block_size - the usable size of p, a block whose block-map byte
 * was code (live), as khi_domain_usable gives it, without its checks: for
 * alloc/stats.c, which reads the map while other threads may free. */
KHI_HIDDEN size_t khi_heap_block_size(const void *p, unsigned code);

/* khi_malloc / khi_free - the routed malloc and free the C++ operators
 * share with malloc.c. */
KHI_HIDDEN void *khi_malloc(size_t size);
KHI_HIDDEN void khi_free(void *p);

/* khi_domain_free_sized / khi_domain_free_aligned_sized - free_sized and
 * free_aligned_sized of p, a block of some domain: abort ("keyheap:
 * wrong-size ..." / "wrong-alignment ...") when size is more than the
 * block's usable size, or (aligned) align is not a power of two or p not
 * aligned to it; otherwise khi_domain_free(p).  A p that is no live block
 * gets free's own message.  pre: khi_in_span(p). */
KHI_HIDDEN void khi_domain_free_sized(void *p, size_t size);
KHI_HIDDEN void khi_domain_free_aligned_sized(void *p, size_t align, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_HEAP_H */
