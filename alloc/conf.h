/*
 * alloc/conf.h - KEYHEAP_CONF, read once.
 */
#ifndef KH_ALLOC_CONF_H
#define KH_ALLOC_CONF_H

#include <stdbool.h>

#include "alloc/hidden.h"

struct khi_conf {
    bool pku;             /* pku:on|off - use protection keys where they work */
    bool unprotected;     /* unprotected:true|false - domains without PKU */
    bool fault_report;    /* fault_report:true|false - report SEGV_PKUERR faults */
    bool verify;          /* verify:true|false - check PKRU at every enter/leave */
    unsigned watchdog_ms; /* watchdog:<ms> - audit every thread this often; 0: off */
    bool stats_print;     /* stats_print:true|false - per-domain stats at exit */
    bool magazines;       /* magazines:true|false - per-thread magazines */
    unsigned keys;        /* keys:<n> - at most this many protection keys (1..15) */
    bool scan;            /* scan:true|false - keyheap_scan_self at the first domain */
};

/* The largest watchdog:<ms> (one hour). */
#define KHI_WATCHDOG_MAX_MS 3600000u

/* khi_conf_get - the parsed configuration (defaults where KEYHEAP_CONF is
 * silent or wrong).  Thread-safe; parses on first call. */
KHI_HIDDEN const struct khi_conf *khi_conf_get(void);

/* khi_conf_parse - parses text (KEYHEAP_CONF's syntax, NULL: nothing) into
 * *conf, which starts from the defaults; each unknown key or bad value is
 * reported with a "keyheap: KEYHEAP_CONF: ..." line and skipped.  Returns
 * the number of such problems.  Pure apart from those lines: the fuzz
 * target calls it directly. */
KHI_HIDDEN unsigned khi_conf_parse(const char *text, struct khi_conf *conf);

#endif /* KH_ALLOC_CONF_H */
