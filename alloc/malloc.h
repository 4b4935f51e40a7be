/*
 * alloc/malloc.h - what the malloc family shares with the C++ operators
 * and with domains/ (the explicit allocation by heap, keyheap's own
 * memory).
 */
#ifndef KH_ALLOC_MALLOC_H
#define KH_ALLOC_MALLOC_H

#include <stddef.h>

#include "alloc/heap.h"
#include "alloc/je.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * khi_alloc_aligned - size bytes aligned to align.
 * pre: align is a power of two (any size, 1 included).  size may be 0.
 * Returns NULL when memory is short, without touching errno.
 */
KHI_HIDDEN void *khi_alloc_aligned(size_t align, size_t size);

static inline int khi_is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* khi_align_flags - the jemalloc flags that ask for align (a power of two). */
static inline int khi_align_flags(size_t align)
{
    return KHI_JE_LG_ALIGN(__builtin_ctzl(align));
}

/* khi_malloc_in, khi_calloc_in, khi_aligned_alloc_in - the explicit
 * allocation API (keyheap_malloc, ...: domains/explicit.c) in heap h, or
 * in the default heap where h is NULL.  pre: h is live; align is a
 * power of two.  NULL with errno ENOMEM on failure. */
KHI_HIDDEN void *khi_malloc_in(struct khi_heap *h, size_t size);
KHI_HIDDEN void *khi_calloc_in(struct khi_heap *h, size_t n, size_t size);
KHI_HIDDEN void *khi_aligned_alloc_in(struct khi_heap *h, size_t align, size_t size);

/* keyheap's own memory (the thread registry, the watchdog's lists, the
 * start records of new threads): the default heap, whatever this
 * thread's malloc target is, so never a domain's: jemalloc's own calls
 * (alloc/je.h) under the names domains/ uses for them. */
#define khi_own_malloc khi_je_malloc
#define khi_own_calloc khi_je_calloc
#define khi_own_realloc khi_je_realloc
#define khi_own_free khi_je_free

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_MALLOC_H */
