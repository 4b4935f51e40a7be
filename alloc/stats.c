/*
 * alloc/stats.c - per-domain statistics: keyheap_domain_stats and the
 * exit report of KEYHEAP_CONF=stats_print:true.
 *
 * allocated and objects are counted from the block map, which says for
 * every block start of the domain's region whether the block is live (and
 * its size class when small); jemalloc's arena counters are no use here
 * (alloc/stats.h says why).  The map is read 8 bytes at a time: a call
 * costs one pass over 1/16 of the bytes the domain ever carved, plus a
 * jemalloc size lookup for each live block larger than 1 KiB.
 *
 * committed and peak are kept per slot by the extent hooks, with relaxed
 * atomics (the hooks are jemalloc's slow paths).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/heap.h"
#include "alloc/stats.h"
#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "domains/thread.h"

/* Per slot, one cache line each: bytes committed now, and the most bytes
 * committed at once since the slot's domain was created. */
static struct __attribute__((aligned(64))) counts {
    size_t committed;
    size_t peak;
} counts[KHI_SLOTS];

void khi_stats_commit(const struct keyheap_domain *d, size_t bytes)
{
    struct counts *c = &counts[d->slot];
    size_t now = __atomic_add_fetch(&c->committed, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
    while (peak < now && !__atomic_compare_exchange_n(&c->peak, &peak, now, true, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
}

void khi_stats_decommit(const struct keyheap_domain *d, size_t bytes)
{
    __atomic_sub_fetch(&counts[d->slot].committed, bytes, __ATOMIC_RELAXED);
}

size_t khi_stats_committed(const struct keyheap_domain *d)
{
    return __atomic_load_n(&counts[d->slot].committed, __ATOMIC_RELAXED);
}

void khi_stats_reset(const struct keyheap_domain *d)
{
    __atomic_store_n(&counts[d->slot].committed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&counts[d->slot].peak, 0, __ATOMIC_RELAXED);
}

/* The usable size of the live block whose map byte is at m and holds code,
 * or 0 when the block was freed meanwhile (by another thread). */
static size_t block_size(const unsigned char *m, unsigned code)
{
    const void *p =
        (const void *)(khi_span.base + ((uintptr_t)(m - khi_span.map) << KHI_GRANULE_SHIFT));
    size_t n = khi_heap_block_size(p, code);
    /* A large block freed during jemalloc's size lookup may have given a
     * meaningless size. */
    return code == KHI_MAP_LIVE && __atomic_load_n(m, __ATOMIC_RELAXED) != code ? 0 : n;
}

/* Live blocks of d and their usable bytes, from d's part of the block map
 * up to the carve pointer (nothing past it was ever handed out). */
static void count_blocks(struct keyheap_domain *d, size_t *bytes, size_t *objects)
{
    pthread_mutex_lock(&d->carve_lock);
    uintptr_t next = d->next;
    pthread_mutex_unlock(&d->carve_lock);
    *bytes = *objects = 0;
    /* A region starts on a region boundary and next is page-aligned, so
     * the range is whole aligned words of the map. */
    const uint64_t *w = (const uint64_t *)(const void *)khi_map_of((const void *)d->start);
    const uint64_t *end = (const uint64_t *)(const void *)khi_map_of((const void *)next);
    for (; w < end; w++) {
        uint64_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (v == 0)
            continue;
        for (unsigned i = 0; i < 8; i++, v >>= 8) {
            unsigned code = (unsigned)(v & 0xff);
            if (code == KHI_MAP_NONE || code == KHI_MAP_FREED)
                continue;
            size_t n = block_size((const unsigned char *)w + i, code);
            if (n != 0) {
                *bytes += n;
                *objects += 1;
            }
        }
    }
}

static void stats_of(struct keyheap_domain *d, struct keyheap_stats *out)
{
    count_blocks(d, &out->allocated, &out->objects);
    const struct counts *c = &counts[d->slot];
    out->committed = __atomic_load_n(&c->committed, __ATOMIC_RELAXED);
    out->peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
    if (out->peak < out->committed) /* read between the two updates of a commit */
        out->peak = out->committed;
    out->locked = (d->flags & KEYHEAP_MLOCK) ? out->committed : 0;
}

KEYHEAP_API int keyheap_domain_stats(const keyheap_domain_t *d, struct keyheap_stats *out)
{
    struct keyheap_domain *dom = khi_domain_check(d, "keyheap_domain_stats");
    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    stats_of(dom, out);
    return 0;
}

/* --------------------------------------------------- stats_print at exit */

/* d's name for the report, as the fault report shows it: quotes,
 * backslashes and bytes that are not printable ASCII become '?'. */
static const char *printable_name(char *buf, const struct keyheap_domain *d)
{
    size_t i = 0;
    for (; i < KEYHEAP_NAME_MAX && d->name[i] != '\0'; i++) {
        char c = d->name[i];
        buf[i] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?';
    }
    buf[i] = '\0';
    return buf;
}

/* One line per live domain, in slot order:
 *   keyheap: stats: domain "<name>" (pkey <key>): allocated <A> B in <O>
 *   objects, peak <P> B, committed <C> B, locked <L> B
 * With write(2) only (khi_warn): stdio may be gone at exit. */
static void print_all(void)
{
    pthread_mutex_lock(&khi_domains_lock);
    for (unsigned i = 0; i < KHI_SLOTS; i++) {
        struct keyheap_domain *d = &khi_domains[i];
        if (!khi_domain_live(d))
            continue;
        struct keyheap_stats s;
        stats_of(d, &s);
        char name[KEYHEAP_NAME_MAX + 1], key[24], a[24], o[24], p[24], c[24], l[24];
        if (d->pkey < 0)
            strcpy(key, "-1");
        else
            khi_dec(key, (unsigned long)d->pkey);
        khi_warn("stats: domain \"", printable_name(name, d), "\" (pkey ", key, "): allocated ",
                 khi_dec(a, s.allocated), " B in ", khi_dec(o, s.objects), " objects, peak ",
                 khi_dec(p, s.peak), " B, committed ", khi_dec(c, s.committed), " B, locked ",
                 khi_dec(l, s.locked), " B", (char *)NULL);
    }
    pthread_mutex_unlock(&khi_domains_lock);
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
