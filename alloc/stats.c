/*
 * alloc/stats.c - per-heap statistics, which keyheap_domain_stats and the
 * exit report of KEYHEAP_CONF=stats_print:true (domains/stats.c) give.
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

#include <stdint.h>

#include "alloc/heap.h"
#include "alloc/stats.h"

/* Per slot, one cache line each: bytes committed now, and the most bytes
 * committed at once since the slot's domain was created. */
static struct __attribute__((aligned(64))) counts {
    size_t committed;
    size_t peak;
} counts[KHI_SLOTS];

void khi_stats_commit(const struct khi_heap *d, size_t bytes)
{
    struct counts *c = &counts[d->slot];
    size_t now = __atomic_add_fetch(&c->committed, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
    while (peak < now && !__atomic_compare_exchange_n(&c->peak, &peak, now, true, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
}

void khi_stats_decommit(const struct khi_heap *d, size_t bytes)
{
    __atomic_sub_fetch(&counts[d->slot].committed, bytes, __ATOMIC_RELAXED);
}

size_t khi_stats_committed(const struct khi_heap *d)
{
    return __atomic_load_n(&counts[d->slot].committed, __ATOMIC_RELAXED);
}

void khi_stats_reset(const struct khi_heap *d)
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
static void count_blocks(struct khi_heap *d, size_t *bytes, size_t *objects)
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

void khi_heap_stats(struct khi_heap *d, struct keyheap_stats *out)
{
    count_blocks(d, &out->allocated, &out->objects);
    const struct counts *c = &counts[d->slot];
    out->committed = __atomic_load_n(&c->committed, __ATOMIC_RELAXED);
    out->peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
    if (out->peak < out->committed) /* read between the two updates of a commit */
        out->peak = out->committed;
    out->locked = (d->flags & (KEYHEAP_MLOCK | KEYHEAP_SECRETMEM)) ? out->committed : 0;
}
