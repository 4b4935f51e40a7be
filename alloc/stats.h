/*
 * alloc/stats.h - per-domain statistics (keyheap_domain_stats and
 * KEYHEAP_CONF=stats_print:true).
 *
 * allocated and objects come from the block map (domains/domain.h), the
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

#include "domains/domain.h"

#ifdef __cplusplus
extern "C" {
#endif

/* khi_stats_commit - bytes of d's region were made readable and writable
 * (carved or committed again); raises the peak with them.  Any thread. */
KHI_HIDDEN void khi_stats_commit(const struct keyheap_domain *d, size_t bytes);

/* khi_stats_decommit - bytes of d's region were decommitted.  Any thread. */
KHI_HIDDEN void khi_stats_decommit(const struct keyheap_domain *d, size_t bytes);

/* khi_stats_reset - d's region was discarded (destroy): nothing is
 * committed, and the slot's next domain starts from a peak of 0. */
KHI_HIDDEN void khi_stats_reset(const struct keyheap_domain *d);

/* khi_stats_committed - bytes of d's region committed now. */
KHI_HIDDEN size_t khi_stats_committed(const struct keyheap_domain *d);

/* khi_stats_at_exit - with KEYHEAP_CONF=stats_print:true, registers (once)
 * the exit handler that prints every live domain's statistics.
 * pre: the domain lock is held (keyheap_domain_create calls it). */
KHI_HIDDEN void khi_stats_at_exit(void);

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_STATS_H */
