/*
 * alloc/stats.h - per-heap statistics (for keyheap_domain_stats and
 * KEYHEAP_CONF=stats_print:true, domains/stats.c).
 *
 * allocated and objects come from the block map (alloc/span.h), the
 * one exact record of which blocks are live: jemalloc's own arena counters
 * cannot give them, as they count every block a thread cache holds (a
 * whole fill of them after the first malloc of a size class, and every
 * freed block waiting in a cache or a magazine) as allocated.  committed
 * and peak are counted by the extent hooks (alloc/region.c) through the
 * functions below.
 */
#ifndef KH_ALLOC_STATS_H
#define KH_ALLOC_STATS_H

#include <stddef.h>

#include "alloc/heap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* khi_stats_commit - bytes of d's region were made readable and writable
 * (carved or committed again); raises the peak with them.  Any thread. */
KHI_HIDDEN void khi_stats_commit(const struct khi_heap *d, size_t bytes);

/* khi_stats_decommit - bytes of d's region were decommitted.  Any thread. */
KHI_HIDDEN void khi_stats_decommit(const struct khi_heap *d, size_t bytes);

/* khi_stats_reset - d's region was discarded (destroy): nothing is
 * committed, and the slot's next domain starts from a peak of 0. */
KHI_HIDDEN void khi_stats_reset(const struct khi_heap *d);

/* khi_stats_committed - bytes of d's region committed now. */
KHI_HIDDEN size_t khi_stats_committed(const struct khi_heap *d);

/* khi_heap_stats - h's statistics now: live blocks and bytes from the
 * block map, committed and peak bytes from the counters above, locked
 * bytes where h is KEYHEAP_MLOCK.  Any thread. */
KHI_HIDDEN void khi_heap_stats(struct khi_heap *h, struct keyheap_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_STATS_H */
