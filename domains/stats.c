/*
 * domains/stats.c - keyheap_domain_stats, and every live domain's
 * statistics at exit (KEYHEAP_CONF=stats_print:true).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/stats.h"
#include "domains/domain.h"
#include "domains/stats.h"

KEYHEAP_API int keyheap_domain_stats(const keyheap_domain_t *d, struct keyheap_stats *out)
{
    struct khi_heap *dom = khi_domain_check(d, "keyheap_domain_stats");
    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    khi_heap_stats(dom, out);
    return 0;
}

/* --------------------------------------------------- stats_print at exit */

/* d's name for the report, as the fault report shows it: quotes,
 * backslashes and bytes that are not printable ASCII become '?'. */
static const char *printable_name(char *buf, const struct khi_heap *d)
{
    size_t i = 0;
    for (; i < KEYHEAP_NAME_MAX && d->name[i] != '\0'; i++) {
        char c = d->name[i];
        buf[i] = khi_name_char(c);
    }
    buf[i] = '\0';
    return buf;
}

/* One line per live domain, in slot order:
 *   keyheap: stats: domain "<name>" (pkey <key>): allocated <A> B in <O>
 *   objects, peak <P> B, committed <C> B, locked <L> B
 * ("pkey none, parked" for a domain the key cache parked). 
 * With write(2) only (khi_warn): stdio may be gone at exit. */
static void print_all(void)
{
    sigset_t mask = khi_domains_lock_take();
    for (unsigned i = 0; i < KHI_SLOTS; i++) {
        struct khi_heap *d = &khi_heaps[i];
        if (!khi_heap_live(d))
            continue;
        struct keyheap_stats s;
        khi_heap_stats(d, &s);
        char name[KEYHEAP_NAME_MAX + 1], key[24], a[24], o[24], p[24], c[24], l[24];
        if (d->pkey == KHI_PKEY_PARKED)
            strcpy(key, "none, parked");
        else if (d->pkey < 0)
            strcpy(key, "-1");
        else
            khi_dec(key, (unsigned long)d->pkey);
        khi_warn("stats: domain \"", printable_name(name, d), "\" (pkey ", key, "): allocated ",
                 khi_dec(a, s.allocated), " B in ", khi_dec(o, s.objects), " objects, peak ",
                 khi_dec(p, s.peak), " B, committed ", khi_dec(c, s.committed), " B, locked ",
                 khi_dec(l, s.locked), " B", (char *)NULL);
    }
    khi_domains_lock_drop(mask);
}

void khi_stats_at_exit(void)
{
    static bool registered; /* under the domain lock */
    if (registered || !khi_conf_get()->stats_print)
        return;
    registered = true;
    /* atexit may allocate its list: in the default heap, not in a domain
     * this thread is inside (exit would read it with the domain closed). */
    keyheap_domain_t *target = keyheap_abi_self.target;
    keyheap_abi_self.target = NULL;
    if (atexit(print_all) != 0)
        khi_warn("KEYHEAP_CONF: stats_print: atexit failed; no statistics at exit", (char *)NULL);
    keyheap_abi_self.target = target;
}
