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
 * region is readable or writable, asked of the kernel (/proc/self/maps),
 * or for a parked d (all PROT_NONE) marked committed in the commit map:
 * after the arena was emptied, none may be.  False where it cannot tell. */
KHI_HIDDEN bool khi_region_has_committed(const struct khi_heap *d);

/* khi_region_protect - makes [addr, addr + len), page-aligned memory of
 * d's used region, usable (as a commit does: read-write with d's key, or
 * PROT_NONE while d is parked) or not (PROT_NONE: a guard page), and
 * records it in the commit map.  Returns true on error (errno). */
KHI_HIDDEN bool khi_region_protect(const struct khi_heap *h, void *addr, size_t len, bool usable);

/* khi_region_park - takes d's key off its memory: the whole used part of
 * its region becomes PROT_NONE with key 0 (one system call; contents,
 * locks and madvise flags stay), d->pkey becomes KHI_PKEY_PARKED and its
 * ad_bit 0.  pre: d resident, no thread inside it or busy in it, its key
 * closed in every thread.  Returns true on error (d unchanged). */
KHI_HIDDEN bool khi_region_park(struct khi_heap *d);

/* khi_region_resume - gives parked d the key: every run of committed pages
 * (the commit map) becomes read-write with key, locked again for
 * KEYHEAP_MLOCK, and d->pkey and ad_bit say key.  Returns true on error
 * (d is parked again, errno set), as khi_region_park does. */
KHI_HIDDEN bool khi_region_resume(struct khi_heap *d, int key);

/* khi_region_secret_open - gives d, a slot about to become a
 * KEYHEAP_SECRETMEM heap of name, its memfd_secret file (as large as its
 * region).  Returns true on error (errno: ENOSYS, with a "keyheap: ..."
 * hint, where the kernel has no memfd_secret; what memfd_secret or
 * ftruncate failed with otherwise). */
KHI_HIDDEN bool khi_region_secret_open(const struct khi_heap *d, const char *name);

/* khi_region_secret_close - closes d's memfd_secret file (a create that
 * failed after khi_region_secret_open; khi_region_discard closes it). */
KHI_HIDDEN void khi_region_secret_close(const struct khi_heap *d);

/* khi_region_secret_dying - d, a heap about to be emptied for good: its
 * decommits need not zero the secret pages they drop (the file goes at the
 * discard).  Nothing for other heaps. */
KHI_HIDDEN void khi_region_secret_dying(struct khi_heap *d);

/* khi_region_after_fork - in a fork child: every carve lock is made anew
 * (a thread of the parent may have held one), and every live KEYHEAP_SECRETMEM
 * heap gets a memfd_secret file of its own, mapped where the parent's
 * committed pages were (the parent's are MADV_DONTFORK, so the child had
 * none): zeroes, with the heap's key.  Where that fails the heap's memory
 * is PROT_NONE in the child, with a "keyheap: ..." warning.  pre: the
 * child's only thread. */
KHI_HIDDEN void khi_region_after_fork(void);

#endif /* KH_ALLOC_REGION_H */
