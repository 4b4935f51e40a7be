/*
 * domains/domain.h - the domain table, shared by domains/ and alloc/.
 */
#ifndef KH_DOMAINS_DOMAIN_H
#define KH_DOMAINS_DOMAIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/je.h"
#include "include/keyheap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Domain slots, and the address region each slot owns: slot i owns
 * [khi_span.base + (i << khi_span.shift), + (1 << khi_span.shift)).
 * Regions are 16 GiB (a 1 TiB span) where the kernel allows it; where it
 * does not (valgrind manages only a few tens of GiB for the whole program),
 * they are halved until the span fits, down to 64 MiB. */
#define KHI_SLOTS 64u

/* A generation no thread cache has (caches have 0, none, or the domain's
 * gen, which counts up from 1, by 2 per create and destroy: 64 bits never
 * get here). */
#define KHI_GEN_NEVER UINT64_MAX
#define KHI_REGION_SHIFT_MAX 34u /* 16 GiB of address space per domain */
#define KHI_REGION_SHIFT_MIN 26u /* 64 MiB */

/* 256 bytes each (a power of two: the slot of an address is a shift away,
 * and no two domains share a cache line); the fields of the hot paths come
 * first. */
struct __attribute__((aligned(256))) keyheap_domain {
    struct keyheap_abi_domain abi; /* first: read by the inline fast path */
    unsigned slot;                 /* index in khi_domains and in the span */
    uint64_t gen;                  /* bumped at every create and destroy of this slot */
    uint64_t free_gen;             /* gen when free's fast path applies (NOSCRUB and not
                                      STRICT), else KHI_GEN_NEVER */
    int pkey;                      /* hardware key, or -1 when unprotected */
    unsigned flags;                /* KEYHEAP_* flags */
    unsigned arena;                /* jemalloc arena index, made on the slot's first use */
    bool has_arena;                /* the slot's arena exists */
    bool pkey_told;                /* keyheap_domain_pkey gave the key out */
    uint64_t freed_at;             /* order of destroys, to reuse the oldest slot first */
    char name[KEYHEAP_NAME_MAX + 1];

    /* The extent hooks of this domain's arena carve its region. */
    khi_extent_hooks_t hooks;   /* jemalloc gets &hooks; container_of finds us */
    pthread_mutex_t carve_lock; /* guards next */
    uintptr_t start, next, end; /* region bounds and the carve pointer */
};

KHI_HIDDEN extern struct keyheap_domain khi_domains[KHI_SLOTS];
#ifndef __cplusplus
_Static_assert(sizeof(khi_domains[0].gen) == 8 && sizeof(khi_domains[0]) == 256,
               "64-bit generations (never KHI_GEN_NEVER) in 256-byte domains");
#endif

/* The span: its start, length and region size, in one cache line.  Until
 * it is reserved, size is 0 (so the test below is false for every pointer),
 * and base is an address at the top of the address space where no user
 * pointer can be, in case a thread sees the new size before the new base. */
struct khi_span {
    uintptr_t base;
    uintptr_t size;     /* KHI_SLOTS << shift, or 0 */
    unsigned shift;     /* log2 of the region size */
    unsigned char *map; /* the block map, below */
};
KHI_HIDDEN extern struct khi_span khi_span;

/* khi_in_span - whether p lies in some domain's region.  One subtraction and
 * one comparison: the test free() makes on every call. */
static inline int khi_in_span(const void *p)
{
    return (uintptr_t)p - khi_span.base < khi_span.size;
}

/* khi_slot_of - the domain slot of p.  pre: khi_in_span(p). */
static inline struct keyheap_domain *khi_slot_of(const void *p)
{
    return &khi_domains[((uintptr_t)p - khi_span.base) >> khi_span.shift];
}

/* The block map: one byte per KHI_GRANULE bytes of the span, outside every
 * domain's memory (key 0, readable everywhere), saying which addresses are
 * the start of a block that is live (and its size class if small), or was
 * freed.  Domain blocks are at
 * least KHI_GRANULE bytes and KHI_GRANULE-aligned, so each block has its own
 * byte: free, realloc and malloc_usable_size check it in O(1), and no two
 * threads write the same byte for different blocks (plain stores).  The map
 * is reserved with the span (MAP_NORESERVE): only the parts that describe
 * used memory take pages.  A destroyed domain's part is zeroed. */
#define KHI_GRANULE_SHIFT 4u
#define KHI_GRANULE ((size_t)1 << KHI_GRANULE_SHIFT)
/* A live block's byte also tells its size class when it is small enough
 * for the magazines (domains/thread.h): KHI_MAP_CLASS + class. */
enum { KHI_MAP_NONE = 0, KHI_MAP_LIVE = 1, KHI_MAP_CLASS = 2, KHI_MAP_FREED = 0xff };

/* khi_map_of - p's byte in the block map.  pre: khi_in_span(p). */
static inline unsigned char *khi_map_of(const void *p)
{
    return khi_span.map + (((uintptr_t)p - khi_span.base) >> KHI_GRANULE_SHIFT);
}

/* khi_table_entry - h as an entry of the domain table (live or not), or
 * NULL when it is not one. */
static inline struct keyheap_domain *khi_table_entry(const void *h)
{
    uintptr_t p = (uintptr_t)h, base = (uintptr_t)khi_domains;
    if (p - base >= sizeof khi_domains || (p - base) % sizeof khi_domains[0] != 0)
        return NULL;
    return (struct keyheap_domain *)p;
}

/* khi_frame_domain - the domain of a frame of a thread's domain stack
 * (verify mode marks it with bit 0; keyheap.h), or NULL: the stack is read
 * without a lock, also from signal handlers, and never trusted; a leave
 * clears its frame's domain, so a frame that an enter has counted in depth
 * but not written yet reads NULL. */
static inline struct keyheap_domain *khi_frame_domain(const struct keyheap_abi_frame *f)
{
    return khi_table_entry((const void *)((uintptr_t)f->domain & ~(uintptr_t)1));
}

static inline int khi_domain_live(const struct keyheap_domain *d)
{
    return __atomic_load_n(&d->abi.live, __ATOMIC_ACQUIRE) == KEYHEAP_ABI_LIVE;
}

/* khi_dead_domain - the fatal error for what (free, realloc, ...) of p, in a
 * destroyed domain's region. */
KHI_HIDDEN __attribute__((noreturn, cold)) void khi_dead_domain(const void *p, const char *what);

/* khi_domain_check - d as a live domain of the table, or a fatal error that
 * names what (the entry point) was called with a bad handle. */
KHI_HIDDEN struct keyheap_domain *khi_domain_check(const keyheap_domain_t *d, const char *what);

/* The PKRU access-disable bits of every key keyheap's live domains hold. */
KHI_HIDDEN extern unsigned khi_keys_ad_mask;

/* The access-disable bits of keys keyheap keeps without a domain: keys of
 * destroyed domains that some thread may still have open (a close round
 * went unanswered, or pages outside keyheap carry the key).  They are
 * never freed or reused, and are closed wherever keyheap can. */
KHI_HIDDEN extern unsigned khi_keys_kept;

/* khi_keys_held - the access-disable bits of every key keyheap holds: its
 * live domains' and the kept ones.  Any thread, no lock. */
static inline unsigned khi_keys_held(void)
{
    return __atomic_load_n(&khi_keys_ad_mask, __ATOMIC_RELAXED) |
           __atomic_load_n(&khi_keys_kept, __ATOMIC_RELAXED);
}

/* khi_pkru_close - pkru with the keys of ad_bits access-disabled. */
static inline unsigned khi_pkru_close(unsigned pkru, unsigned ad_bits)
{
    return (pkru & ~(ad_bits * 3u)) | ad_bits;
}

/* The keys this thread has open for keyheap's own use (khi_domain_open), as
 * PKRU bits: the watchdog's audit (domains/watchdog.c) leaves them alone. */
KHI_HIDDEN extern __thread unsigned khi_internal_open;

/* What khi_domain_close restores. */
struct khi_open {
    unsigned pkru, prev;
};

/* khi_domain_open - opens d read-write in this thread for keyheap's own use
 * (scrubbing, copying, zeroing, mlock); returns what khi_domain_close
 * restores.  Nests.  Nothing happens for unprotected domains. */
static inline struct khi_open khi_domain_open(const struct keyheap_domain *d)
{
    struct khi_open o = {0, khi_internal_open};
    if (d->abi.ad_bit == 0)
        return o;
    khi_internal_open = o.prev | d->abi.ad_bit * 3u;
    __asm__ volatile("" ::: "memory"); /* marked before it is open */
    o.pkru = keyheap_abi_rdpkru();
    keyheap_abi_wrpkru(o.pkru & ~(d->abi.ad_bit * 3u));
    return o;
}

static inline void khi_domain_close(const struct keyheap_domain *d, struct khi_open o)
{
    /* d's key back as it was; every other key as it is now: a close round
     * may have closed one meanwhile, and o.pkru must not reopen it. */
    unsigned bits = d->abi.ad_bit * 3u;
    if (bits != 0)
        keyheap_abi_wrpkru((keyheap_abi_rdpkru() & ~bits) | (o.pkru & bits));
    __asm__ volatile("" ::: "memory"); /* closed before it is unmarked */
    khi_internal_open = o.prev;
}

#ifdef __cplusplus
}
#endif

#endif /* KH_DOMAINS_DOMAIN_H */
