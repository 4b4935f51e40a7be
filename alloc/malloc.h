/*
 * alloc/malloc.h - helpers the malloc family shares with the C++ operators.
 */
#ifndef KH_ALLOC_MALLOC_H
#define KH_ALLOC_MALLOC_H

#include <stddef.h>

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

/* khi_align_flags - the jemalloc flags that ask for align (a power of two). */
static inline int khi_align_flags(size_t align)
{
    return KHI_JE_LG_ALIGN(__builtin_ctzl(align));
}

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_MALLOC_H */
