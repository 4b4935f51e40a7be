/*
 * domains/stats.h - every live domain's statistics at exit.
 */
#ifndef KH_DOMAINS_STATS_H
#define KH_DOMAINS_STATS_H

#include "alloc/hidden.h"

/* khi_stats_at_exit - with KEYHEAP_CONF=stats_print:true, registers (once)
 * the exit handler that prints every live domain's statistics.
 * pre: the domain lock is held (keyheap_domain_create calls it). */
KHI_HIDDEN void khi_stats_at_exit(void);

#endif /* KH_DOMAINS_STATS_H */
