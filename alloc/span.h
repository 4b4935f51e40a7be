/*
 * alloc/span.h - the reserved span of address space, one fixed region of
 * it per heap slot, and the block map that describes it.
 */
#ifndef KH_ALLOC_SPAN_H
#define KH_ALLOC_SPAN_H

#include <stdint.h>

#include "alloc/hidden.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Heap slots, and the address region each slot owns: slot i owns
 * [khi_span.base + (i << khi_span.shift), + (1 << khi_span.shift)).
 * 1024 slots of 4 GiB (a 4 TiB span, plus 256 GiB of block map and 128 MiB
 * of commit map, all PROT_NONE or untouched MAP_NORESERVE) where the
 * kernel allows it; the regions are halved until the span fits, down to
 * 512 MiB; where even that does not fit (valgrind manages only a few tens
 * of GiB for the whole program; a strict overcommit policy charges the
 * maps), 64 slots, halved from 512 MiB down to 64 MiB.  Domains are not
 * limited by the 15 protection keys (the key cache, domains/keys.c): the
 * slots are the limit. */
#define KHI_SLOTS 1024u
#define KHI_SLOTS_SHORT 64u
#define KHI_REGION_SHIFT_MAX 32u /* 4 GiB of address space per heap */
#define KHI_REGION_SHIFT_MID 29u /* 512 MiB */
#define KHI_REGION_SHIFT_MIN 26u /* 64 MiB */

/* The span: its start, length and region size, in one cache line.  Until
 * it is reserved, size is 0 (so the test below is false for every pointer),
 * and base is an address at the top of the address space where no user
 * pointer can be, in case a thread sees the new size before the new base. */
struct khi_span {
    uintptr_t base;
    uintptr_t size;     /* KHI_SLOTS << shift, or 0 */
    unsigned shift;     /* log2 of the region size */
    unsigned slots;     /* KHI_SLOTS, or KHI_SLOTS_SHORT where the span is short */
    unsigned char *map; /* the block map, below */
    uint64_t *committed; /* the commit map, below */
};
KHI_HIDDEN extern struct khi_span khi_span;

/* khi_in_span - whether p lies in some heap's region.  One subtraction and
 * one comparison: the test free() makes on every call. */
static inline int khi_in_span(const void *p)
{
    return (uintptr_t)p - khi_span.base < khi_span.size;
}

/* khi_span_slot - the slot whose region holds p.  pre: khi_in_span(p). */
static inline unsigned khi_span_slot(const void *p)
{
    return (unsigned)(((uintptr_t)p - khi_span.base) >> khi_span.shift);
}

/* The block map: one byte per KHI_GRANULE bytes of the span, outside every
 * heap's memory (key 0, readable everywhere), saying which addresses are
 * the start of a block that is live (and its size class if small), or was
 * freed.  Heap blocks are at least KHI_GRANULE bytes and KHI_GRANULE-aligned,
 * so each block has its own byte: free, realloc and malloc_usable_size check
 * it in O(1), and no two threads write the same byte for different blocks
 * (plain stores).  The map is reserved with the span (MAP_NORESERVE): only
 * the parts that describe used memory take pages.  A discarded region's part
 * is zeroed. */
#define KHI_GRANULE_SHIFT 4u
#define KHI_GRANULE ((size_t)1 << KHI_GRANULE_SHIFT)
/* A live block's byte also tells its size class when it is small enough
 * for the magazines (alloc/tcache.h): KHI_MAP_CLASS + class. */
enum { KHI_MAP_NONE = 0, KHI_MAP_LIVE = 1, KHI_MAP_CLASS = 2, KHI_MAP_FREED = 0xff };

/* khi_map_of - p's byte in the block map.  pre: khi_in_span(p). */
static inline unsigned char *khi_map_of(const void *p)
{
    return khi_span.map + (((uintptr_t)p - khi_span.base) >> KHI_GRANULE_SHIFT);
}

/* The commit map: one bit per page of the span, set while the page is
 * committed (jemalloc holds it as usable memory: read-write with its
 * heap's key, or PROT_NONE while the heap is parked), clear for carved but
 * uncommitted space, decommitted extents, guard pages and never-carved
 * space.  Each heap's bits are changed under its carve lock only; a heap's
 * region covers whole words (a region is at least 32 MiB).  Parking a heap
 * makes its whole used range PROT_NONE in one call; the map says what to
 * make read-write again, run by run, when it gets a key back. */
#define KHI_PAGE_SHIFT 12u

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_SPAN_H */
