/*
 * domains/conf.h - KEYHEAP_CONF, read once.
 */
#ifndef KH_DOMAINS_CONF_H
#define KH_DOMAINS_CONF_H

#include <stdbool.h>

struct khi_conf {
    bool pku;         /* pku:on|off - use protection keys where they work */
    bool unprotected; /* unprotected:true|false - domains without PKU */
};

/* khi_conf_get - the parsed configuration (defaults where KEYHEAP_CONF is
 * silent or wrong).  Thread-safe; parses on first call. */
__attribute__((visibility("hidden"))) const struct khi_conf *khi_conf_get(void);

#endif /* KH_DOMAINS_CONF_H */
