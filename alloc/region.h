/*
 * alloc/region.h - the reserved span and each heap's region in it.
 */
#ifndef KH_ALLOC_REGION_H
#define KH_ALLOC_REGION_H

#include "alloc/heap.h"

/* khi_span_reserve - reserves the span (PROT_NONE, MAP_NORESERVE, excluded
 * from core dumps) on first call.  Returns true on error (errno ENOMEM). */
KHI_HIDDEN bool khi_span_reserve(void);

/* khi_region_init - prepares the region and extent hooks of d's slot, on
 * the slot's first use (its arena is made after and kept); for a slot
 * that needs a new arena later, the hooks only: carving goes on where the
 * old arena stopped, so the two never share an address. */
KHI_HIDDEN void khi_region_init(struct khi_heap *d);

/* khi_region_discard - drops every page d's region ever had, with its data
 * and key tag, leaving the region PROT_NONE as reserved.  pre: the slot's
 * arena holds nothing but decommitted, retained address space, which it
 * commits (and so tags) again through the hooks when it reuses it.
 * Returns true on error. */
KHI_HIDDEN bool khi_region_discard(struct khi_heap *d);

/* khi_region_has_committed - whether any page of the used part of d's
 * region is readable or writable, asked of the kernel (/proc/self/maps):
 * after the arena was emptied, none may be.  False where it cannot tell. */
KHI_HIDDEN bool khi_region_has_committed(const struct khi_heap *d);

#endif /* KH_ALLOC_REGION_H */
