/*
 * alloc/heap.c - a heap: made and torn down, allocation, free and realloc
 * in it, its misuse checks and the guard pages of its large blocks.
 *
 * A domain's blocks come from its own jemalloc arena through this thread's
 * own cache for that domain.  jemalloc touches no user page to allocate or
 * free, so those work with the domain closed; where keyheap must write into
 * the block (zeroing, copying, scrubbing) it opens the domain's key for
 * itself around the write.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/heap.h"
#include "alloc/malloc.h"
#include "alloc/region.h"
#include "alloc/stats.h"
#include "alloc/tcache.h"

/* Blocks of a domain are at least a granule, so each has its own byte in
 * the block map. */
static inline size_t at_least_granule(size_t size)
{
    return size < KHI_GRANULE ? KHI_GRANULE : size;
}

/*
 * Guard pages after large blocks.  Every large block of a domain (bigger
 * than jemalloc's largest small size class) is followed by a PROT_NONE
 * page, so a linear overflow off its end faults (SEGV_ACCERR) instead of
 * reaching the next block.  jemalloc 5.3's own guards (san_guard_large)
 * cannot do it: they are refused for arenas with custom extent hooks
 * (ehooks_guard_will_fail), and the option is global, for the default heap
 * too.
 *
 * Large blocks are asked for page-aligned, so jemalloc puts each at the
 * start of its extent, unshifted, and the extent's last page is jemalloc's
 * cache-oblivious pad (sz_large_pad), which no block uses: that page is
 * the guard.  Without the pad (a jemalloc built with
 * --disable-cache-oblivious) a page more is asked for, and left out of the
 * usable size.  So the guard's place follows from jemalloc's usable size
 * alone, and the block map needs no more than KHI_MAP_LIVE: every domain
 * block of a large size has a guard.  Plain mprotect keeps the key tag
 * (PKU-FACTS row 5).  Each guard splits the region's mapping: a live large
 * block costs two of the process's vm.max_map_count mappings.
 *
 * jemalloc recycles a freed extent's pages (as slabs, as other blocks)
 * without calling any hook, so the guard is lifted (made read-write again)
 * before a block goes back to jemalloc; realloc lifts it and guards the
 * new end.  Small blocks are not touched.
 */
#define LG_ALIGN_MASK 0x3f        /* jemalloc's MALLOCX_LG_ALIGN_MASK */
static size_t guard_page = 4096;  /* jemalloc's page */
static size_t small_max = 14336;  /* its largest small size class */
static size_t large_min = 16384;  /* its smallest large size class */
static size_t guard_extra = 4096; /* 0 when the pad page is the guard */

static void guard_init(void)
{
    size_t n, sz = sizeof n;
    unsigned nbins;
    size_t usz = sizeof nbins;
    bool pad;
    size_t bsz = sizeof pad;
    char name[40];
    if (khi_je_ctl("arenas.page", &n, &sz, NULL, 0) == 0)
        guard_page = n;
    sz = sizeof n;
    if (khi_je_ctl("arenas.lextent.0.size", &n, &sz, NULL, 0) == 0)
        large_min = n;
    sz = sizeof n;
    if (khi_je_ctl("arenas.nbins", &nbins, &usz, NULL, 0) == 0 && nbins > 0 &&
        snprintf(name, sizeof name, "arenas.bin.%u.size", nbins - 1) < (int)sizeof name &&
        khi_je_ctl(name, &n, &sz, NULL, 0) == 0)
        small_max = n;
    if (khi_je_ctl("opt.cache_oblivious", &pad, &bsz, NULL, 0) == 0 && pad)
        guard_extra = 0;
}

/* The usable size of p, a domain block, from jemalloc's: an extra guard
 * page is not usable. */
static size_t block_usable(const void *p)
{
    size_t n = khi_je_usable_size(p);
    return n >= large_min ? n - guard_extra : n;
}

/* Puts the guard after p, a large block of d of usable size n, or lifts
 * it; the guard page does not count as committed (stats.h).  Both return
 * true on failure (PROT_NONE: the kernel's limit on mappings,
 * vm.max_map_count, is reached). */
static bool guard(const struct khi_heap *d, void *p, size_t n)
{
    if (khi_region_protect(d, (char *)p + n, guard_page, false))
        return true;
    khi_stats_decommit(d, guard_page);
    return false;
}

static bool unguard(const struct khi_heap *d, void *p, size_t n)
{
    if (khi_region_protect(d, (char *)p + n, guard_page, true))
        return true;
    khi_stats_commit(d, guard_page);
    return false;
}

/* guard, for a block that stays live either way: without a mapping left
 * for the guard, it stays unguarded, counted as guarded (free lifts the
 * guard and counts the page back). */
static void guard_live(const struct khi_heap *d, void *p, size_t n)
{
    if (guard(d, p, n))
        khi_stats_decommit(d, guard_page);
}

/* p, jemalloc's answer to a request for d's arena, if it lies in d's
 * region.  jemalloc serves a thread whose own thread data it has already
 * cleaned up (a thread-specific-data destructor that runs after
 * jemalloc's: its key is the process's first, so in every round) from its
 * default arena whatever arena it was asked for (tsd "reincarnated", taken
 * as reentrant).  That block is ordinary memory: it goes back, and the
 * allocation fails, since a domain never hands out untagged memory. */
static __attribute__((cold, noinline)) void *not_in_region(const struct khi_heap *d, void *p)
{
    khi_je_dallocx(p, KHI_JE_TCACHE_NONE);
    static bool hinted;
    if (!__atomic_exchange_n(&hinted, true, __ATOMIC_RELAXED))
        khi_warn("domain \"", d->name,
                 "\": an allocation after jemalloc's own thread-exit cleanup (in a "
                 "thread-specific-data destructor) fails with ENOMEM: jemalloc then serves only "
                 "its default arena, which is not the domain's memory",
                 (char *)NULL);
    return NULL;
}

static inline void *in_region(const struct khi_heap *d, void *p)
{
    if (__builtin_expect(p != NULL && (!khi_in_span(p) || khi_heap_of(p) != d), 0))
        return not_in_region(d, p);
    return p;
}

/* A new large block of d of at least size bytes with jemalloc flags
 * flags, guarded; NULL when memory is short. */
static __attribute__((noinline)) void *large_alloc(const struct khi_heap *d, size_t size, int flags)
{
    int lg_page = __builtin_ctzl(guard_page);
    if (size > SIZE_MAX - guard_extra)
        return NULL;
    if ((flags & LG_ALIGN_MASK) < lg_page)
        flags = (flags & ~LG_ALIGN_MASK) | KHI_JE_LG_ALIGN(lg_page);
    void *p = in_region(d, khi_je_mallocx(size + guard_extra, flags));
    if (p != NULL && guard(d, p, block_usable(p))) {
        khi_je_dallocx(p, KHI_JE_TCACHE_NONE);
        static bool hinted;
        if (!__atomic_exchange_n(&hinted, true, __ATOMIC_RELAXED))
            khi_warn("domain \"", d->name,
                     "\": no guard page for a large block (mprotect failed: each live large "
                     "block takes two of the process's vm.max_map_count mappings), so the "
                     "allocation fails with ENOMEM",
                     (char *)NULL);
        return NULL;
    }
    return p;
}

/* A new block of d of size bytes aligned to align with jemalloc flags
 * flags (which say the alignment); a large one is guarded.  NULL when
 * memory is short. */
static inline void *je_alloc(const struct khi_heap *d, size_t size, size_t align, int flags)
{
    if (size > small_max || align > guard_page)
        return large_alloc(d, size, flags);
    return in_region(d, khi_je_mallocx(at_least_granule(size), flags));
}

/* Gives p back to jemalloc with flags, a large block without its guard
 * (and past the thread cache: large blocks are never taken from it). */
static __attribute__((noinline)) void give_back(void *p, int flags)
{
    const struct khi_heap *d = khi_heap_of(p);
    unsigned busy = khi_busy_begin(d, p, "free");
    if (((uintptr_t)p & (guard_page - 1)) == 0) {
        size_t n = khi_je_usable_size(p);
        if (n >= large_min) {
            if (unguard(d, p, n - guard_extra)) {
                khi_busy_end(busy);
                return; /* (not seen) the block's address space stays out of use */
            }
            flags = KHI_JE_TCACHE_NONE;
        }
    }
    khi_je_dallocx(p, flags);
    khi_busy_end(busy);
}

/* The magazine classes: map code (KHI_MAP_CLASS + class) of a request of
 * 0..KHI_MAG_MAX bytes, by (size + 15) / 16, and each class's size.  Made
 * from jemalloc's own size classes at the first domain creation; if
 * jemalloc's classes are not the expected ones, every code is
 * KHI_MAP_LIVE, which no magazine serves (khi_heap_init). */
static unsigned char mag_code[KHI_MAG_MAX / KHI_GRANULE + 1];
static size_t mag_size[KHI_MAG_CLASSES];

void khi_heap_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    guard_init();
    /* Until the classes are known to be jemalloc's, and for good if they
     * are not (or KEYHEAP_CONF says magazines:false), every live block's
     * code is KHI_MAP_LIVE: no magazine, but live. */
    memset(mag_code, KHI_MAP_LIVE, sizeof mag_code);
    if (!khi_conf_get()->magazines)
        return;
    unsigned char code[sizeof mag_code];
    size_t size[KHI_MAG_CLASSES];
    unsigned classes = 0;
    for (size_t i = 0; i < sizeof code; i++) {
        size_t usable = khi_je_nallocx(at_least_granule(i * KHI_GRANULE), 0);
        if (classes == 0 || usable != size[classes - 1]) {
            if (classes == KHI_MAG_CLASSES)
                return;
            size[classes++] = usable;
        }
        code[i] = (unsigned char)(KHI_MAP_CLASS + classes - 1);
    }
    if (classes != KHI_MAG_CLASSES || size[classes - 1] != KHI_MAG_MAX)
        return;
    memcpy(mag_size, size, sizeof size);
    memcpy(mag_code, code, sizeof code);
}

struct khi_heap khi_heaps[KHI_SLOTS];
__thread unsigned khi_internal_open;

bool khi_heap_make(struct khi_heap *h, int key, unsigned flags, const char *name)
{
    h->slot = (unsigned)(h - khi_heaps);
    h->pkey = key;
    h->flags = flags;
    memcpy(h->name, name, strlen(name) + 1);
    h->gen++;
    h->free_gen =
        (flags & (KEYHEAP_NOSCRUB | KEYHEAP_STRICT)) == KEYHEAP_NOSCRUB ? h->gen : KHI_GEN_NEVER;
    if (!h->has_arena) {
        khi_region_init(h);
        if (khi_je_arena_create(&h->hooks, &h->arena))
            return true;
        h->has_arena = true;
    }
    h->abi.ad_bit = key > 0 ? 1u << (2 * key) : 0;
    return false;
}

const char *khi_heap_teardown(struct khi_heap *h)
{
    khi_region_secret_dying(h);
    if (khi_je_arena_empty(h->arena))
        return "jemalloc refused to empty the domain's arena";
    /* Emptied, every extent must have been decommitted through the hooks
     * (PROT_NONE): an extent jemalloc still believes committed would come
     * back to the slot's next heap as the PROT_NONE pages of the discard
     * below.  Such an arena is left alone for good; the next heap of the
     * slot gets a new one, which carves fresh address space. */
    if (khi_region_has_committed(h))
        h->has_arena = false;
    if (khi_region_discard(h))
        return "cannot unmap the domain's memory; its key is kept";
    h->gen++;
    h->free_gen = KHI_GEN_NEVER;
    return NULL;
}

/* The map code of a block of usable (or requested) size n with malloc's
 * alignment. */
static inline unsigned char map_code(size_t n)
{
    return n <= KHI_MAG_MAX ? mag_code[(n + KHI_GRANULE - 1) >> KHI_GRANULE_SHIFT] : KHI_MAP_LIVE;
}

static inline bool is_live(unsigned char code)
{
    return code != KHI_MAP_NONE && code != KHI_MAP_FREED;
}

static __attribute__((noreturn, cold, noinline)) void dead_heap(const void *p, const char *what)
{
    char buf[24];
    khi_fatal("use-after-destroy ", what, " of ", khi_hex(buf, (unsigned long)p), " in domain \"",
              khi_heap_of(p)->name, "\"", (char *)NULL);
}

/* Whether p lies inside a live block of d (not at its start): the nearest
 * block start below p in the map, if live, must reach past p.  That start
 * is in p's own granule when p is not granule-aligned (1..15 bytes into a
 * block), else in an earlier one.  A scan of the map, on the way to a
 * fatal error only. */
static bool interior(const struct khi_heap *d, const void *p)
{
    if ((uintptr_t)p <= d->start)
        return false;
    const unsigned char *first = khi_map_of((const void *)d->start);
    const unsigned char *m = khi_map_of((const char *)p - 1);
    while (m > first && *m == KHI_MAP_NONE)
        m--;
    if (!is_live(*m))
        return false;
    uintptr_t start = khi_span.base + ((uintptr_t)(m - khi_span.map) << KHI_GRANULE_SHIFT);
    return (uintptr_t)p < start + block_usable((void *)start);
}

/* The fatal error for op (free, realloc, ...) on p, which the block map
 * does not show as a live block of a live domain:
 *   keyheap: <kind> <op> of <address> in domain "<name>"   */
static __attribute__((noreturn, cold, noinline)) void misuse(const void *p, const char *op)
{
    struct khi_heap *d = khi_heap_of(p);
    if (!khi_heap_live(d))
        dead_heap(p, op);
    const char *kind;
    bool aligned = ((uintptr_t)p & (KHI_GRANULE - 1)) == 0; /* could be a block's start */
    if (aligned && *khi_map_of(p) == KHI_MAP_FREED)
        kind = op[0] == 'f' ? "double " : "use-after-free ";
    else if (interior(d, p))
        kind = "interior-pointer ";
    else
        kind = "wild ";
    char buf[24];
    khi_fatal(kind, op, " of ", khi_hex(buf, (unsigned long)p), " in domain \"", d->name, "\"",
              (char *)NULL);
}

/* The domain of p, a live block, and p's map byte; anything else is fatal
 * (misuse).  The map byte and p's alignment decide: a destroyed domain's
 * part of the map is all zeroes (khi_region_discard), so its blocks are not
 * live; and a byte stands for a whole granule, so p 1..15 bytes past a
 * block's start has that block's byte, but blocks start granule-aligned.
 * One comparison tests both: a live byte (1..0xfe) less one is at most
 * 0xfd, and p's offset in its granule, shifted to the top bits, makes any
 * misaligned p more. */
_Static_assert(KHI_MAP_NONE == 0 && KHI_MAP_FREED == 0xff, "live map bytes are 1..0xfe");
static inline struct khi_heap *live_block(const void *p, const char *op, unsigned char **map)
{
    uintptr_t off = (uintptr_t)p - khi_span.base;
    unsigned char *m = khi_span.map + (off >> KHI_GRANULE_SHIFT);
    uintptr_t misaligned = (uintptr_t)p << (sizeof(uintptr_t) * 8 - KHI_GRANULE_SHIFT);
    if (__builtin_expect((misaligned | (*m - 1u)) > KHI_MAP_FREED - 2u, 0))
        misuse(p, op);
    *map = m;
    return &khi_heaps[off >> khi_span.shift];
}

/* Whether this thread has d open read-write (KEYHEAP_STRICT). */
static bool thread_inside(const struct khi_heap *d)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    for (unsigned i = t->depth; i-- > 0;)
        if (khi_frame_heap(&t->stack[i]) == d && !t->stack[i].readonly)
            return true;
    return false;
}

static __attribute__((noreturn, cold, noinline)) void strict_outside(const struct khi_heap *d,
                                                                     const void *p)
{
    char buf[24];
    khi_fatal("outside free of ", khi_hex(buf, (unsigned long)p), " in domain \"", d->name,
              "\" (KEYHEAP_STRICT: free only inside the domain)", (char *)NULL);
}

/* A new block of code's class from jemalloc, through this thread's cache. */
static __attribute__((noinline)) void *malloc_slow(struct khi_heap *d, size_t size)
{
    unsigned busy = khi_busy_begin(d, NULL, "malloc");
    void *p = je_alloc(d, size, 1, khi_tcache_flags(d));
    if (__builtin_expect(p != NULL, 1))
        *khi_map_of(p) = map_code(size);
    khi_busy_end(busy);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

/* The common case is a pop from this thread's magazine. */
void *khi_domain_malloc(struct khi_heap *d, size_t size)
{
    const struct khi_tcache *tc = &khi_tcaches[d->slot];
    if (__builtin_expect(size <= KHI_MAG_MAX && tc->gen == d->gen, 1)) {
        unsigned code = mag_code[(size + KHI_GRANULE - 1) >> KHI_GRANULE_SHIFT];
        unsigned c = code - KHI_MAP_CLASS; /* huge when code is KHI_MAP_LIVE */
        if (__builtin_expect(c < KHI_MAG_CLASSES && tc->mag->count[c] != 0, 1)) {
            unsigned n = --tc->mag->count[c];
            void *p = tc->mag->block[c][n];
            *khi_map_of(p) = (unsigned char)code;
            return p;
        }
    }
    return malloc_slow(d, size);
}

static void *domain_alloc(struct khi_heap *d, size_t size, size_t align, bool zero)
{
    if (align <= 1 && !zero)
        return khi_domain_malloc(d, size);
    int flags = khi_tcache_flags(d);
    if (align > 1)
        flags |= khi_align_flags(align);
    void *p;
    if (zero) {
        /* jemalloc zeroes recycled memory with memset: open the key. */
        struct khi_open pkru = khi_heap_open(d);
        p = je_alloc(d, size, align, flags | KHI_JE_ZERO);
        khi_heap_close(d, pkru);
    } else {
        p = je_alloc(d, size, align, flags);
    }
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* Over-aligned blocks stay out of the magazines. */
    *khi_map_of(p) = align <= KHI_GRANULE ? map_code(size) : KHI_MAP_LIVE;
    return p;
}

/* The explicit API's way in, and calloc's and the aligned family's: not
 * the path of plain malloc inside a domain (khi_domain_malloc), so it can
 * afford the busy mark around even a magazine pop. */
void *khi_domain_alloc(struct khi_heap *d, size_t size, size_t align, bool zero)
{
    /* Zeroing touches the memory; a KEYHEAP_MLOCK domain locks what it
     * commits, which needs its key: both need d resident. */
    unsigned busy = zero || (d->flags & KEYHEAP_MLOCK)
                        ? khi_busy_resident(d, NULL, zero ? "calloc" : "malloc")
                        : khi_busy_begin(d, NULL, "malloc");
    void *p = domain_alloc(d, size, align, zero);
    khi_busy_end(busy);
    return p;
}

static void scrub(const struct khi_heap *d, void *p, size_t n)
{
    if (!(d->flags & KEYHEAP_NOSCRUB))
        explicit_bzero(p, n);
}

/* Puts p, of map code code, in tc's magazine or gives it to jemalloc. */
static inline void release(const struct khi_tcache *tc, void *p, unsigned code)
{
    unsigned c = code - KHI_MAP_CLASS;
    if (c < KHI_MAG_CLASSES && tc->mag->count[c] < KHI_MAG_DEPTH) {
        tc->mag->block[c][tc->mag->count[c]++] = p;
        return;
    }
    give_back(p, tc->flags);
}

/* The uncommon cases of free: a STRICT domain, scrubbing, or this thread's
 * first free into d (which makes its cache first).  The map byte already
 * says freed. */
static __attribute__((noinline)) void free_slow(struct khi_heap *d, void *p, unsigned code)
{
    if ((d->flags & KEYHEAP_STRICT) && !thread_inside(d)) {
        *khi_map_of(p) = (unsigned char)code; /* the block stays as it was */
        strict_outside(d, p);
    }
    unsigned busy = d->flags & KEYHEAP_NOSCRUB ? khi_busy_begin(d, p, "free")
                                               : khi_busy_resident(d, p, "free");
    if (!(d->flags & KEYHEAP_NOSCRUB)) {
        size_t n = code >= KHI_MAP_CLASS ? mag_size[code - KHI_MAP_CLASS] : block_usable(p);
        struct khi_open pkru = khi_heap_open(d);
        explicit_bzero(p, n);
        khi_heap_close(d, pkru);
    }
    int flags = khi_tcache_flags(d);
    const struct khi_tcache *tc = &khi_tcaches[d->slot];
    if (tc->gen == d->gen)
        release(tc, p, code);
    else
        give_back(p, flags); /* no cache: the thread is exiting */
    khi_busy_end(busy);
}

/* The common case (a NOSCRUB domain, not STRICT, this thread's cache made:
 * d->free_gen says all three) is a push to this thread's magazine. */
void khi_domain_free(void *p)
{
    unsigned char *map;
    struct khi_heap *d = live_block(p, "free", &map);
    unsigned code = *map;
    *map = KHI_MAP_FREED;
    const struct khi_tcache *tc = &khi_tcaches[d->slot];
    if (__builtin_expect(tc->gen != d->free_gen, 0)) {
        free_slow(d, p, code);
        return;
    }
    release(tc, p, code);
}

static void *domain_realloc(struct khi_heap *d, unsigned char *map, void *p, size_t size)
{
    int flags = khi_tcache_flags(d);
    size = at_least_granule(size);
    size_t old = khi_je_usable_size(p);
    /* A large block stays large in place: its guard is lifted, as jemalloc
     * may hand that page out, and put after the new end. */
    bool guarded = old >= large_min;
    size_t extra = guarded ? guard_extra : 0;
    old -= extra;
    if (guarded && (size > SIZE_MAX - extra || unguard(d, p, old))) {
        errno = ENOMEM;
        return NULL;
    }
    struct khi_open pkru = khi_heap_open(d);
    void *q = p;
    /* Shrinking in place hands the tail back to the heap: scrub it first. */
    if (size < old)
        scrub(d, (char *)p + size, old - size);
    size_t now = khi_je_xallocx(p, size + extra, 0, flags) - extra;
    if (now >= size && !(guarded && guard(d, p, now))) {
        *map = map_code(now);
    } else {
        q = je_alloc(d, size, 1, flags);
        if (q != NULL) {
            memcpy(q, p, now < size ? now : size);
            scrub(d, p, now);
            *khi_map_of(q) = map_code(size);
            *map = KHI_MAP_FREED;
            khi_je_dallocx(p, guarded ? KHI_JE_TCACHE_NONE : flags);
        } else if (guarded) {
            guard_live(d, p, now);
            if (now >= size)
                q = p; /* resized in place all the same */
        }
    }
    khi_heap_close(d, pkru);
    if (q == NULL)
        errno = ENOMEM;
    return q;
}

void *khi_domain_realloc(void *p, size_t size)
{
    unsigned char *map;
    struct khi_heap *d = live_block(p, "realloc", &map);
    unsigned busy = khi_busy_resident(d, p, "realloc");
    void *q = domain_realloc(d, map, p, size);
    khi_busy_end(busy);
    return q;
}

size_t khi_domain_usable(const void *p)
{
    unsigned char *map;
    live_block(p, "malloc_usable_size", &map);
    if (*map >= KHI_MAP_CLASS && *map < KHI_MAP_FREED)
        return mag_size[*map - KHI_MAP_CLASS];
    return block_usable(p);
}

size_t khi_heap_block_size(const void *p, unsigned code)
{
    unsigned c = code - KHI_MAP_CLASS;
    return c < KHI_MAG_CLASSES ? mag_size[c] : block_usable(p);
}

/* ------------------------------------------- C23's sized deallocation */

/*
 * What free_sized and free_aligned_sized check in a domain before they
 * free as free does.  C23 makes a size (or alignment) other than the
 * block's requested one undefined; in a domain it is a misuse, caught when
 * keyheap can tell.  It can tell only when the size is more than the
 * block's usable size: a smaller one is indistinguishable from a right
 * one, because realloc keeps a block in place when it shrinks (a 20000-byte
 * block reallocated to 100 bytes keeps its 20480 usable bytes, a 100-byte
 * one reallocated to 20 its 112), and the block map does not keep the
 * requested size.  So every size from 0 to the usable size is accepted
 * (for a fresh block of 17 bytes, in the 32-byte class: 0 to 32), and any
 * more aborts.  For free_aligned_sized the alignment must be a power of
 * two (aligned_alloc refuses any other) and the block aligned to it.
 *
 * The line follows misuse()'s:
 *   keyheap: wrong-size <op> of <address> in domain "<name>" (size <n>,
 *            but the block's usable size is <m>)
 *   keyheap: wrong-alignment free_aligned_sized of <address> in domain
 *            "<name>" (alignment <a> is not a power of two)
 *   keyheap: wrong-alignment free_aligned_sized of <address> in domain
 *            "<name>" (alignment <a>, but the block is not aligned to it)
 * and a p that is not a live block gets free's own line (misuse(p,
 * "free")): double, interior-pointer, wild, use-after-destroy.
 */
static __attribute__((noreturn, cold, noinline)) void
wrong_size(const struct khi_heap *d, const void *p, const char *op, size_t size, size_t usable)
{
    char buf[24], n[24], m[24];
    khi_fatal("wrong-size ", op, " of ", khi_hex(buf, (unsigned long)p), " in domain \"", d->name,
              "\" (size ", khi_dec(n, size), ", but the block's usable size is ",
              khi_dec(m, usable), ")", (char *)NULL);
}

static __attribute__((noreturn, cold, noinline)) void wrong_alignment(const struct khi_heap *d,
                                                                      const void *p, size_t align)
{
    char buf[24], a[24];
    khi_fatal("wrong-alignment free_aligned_sized of ", khi_hex(buf, (unsigned long)p),
              " in domain \"", d->name, "\" (alignment ", khi_dec(a, align),
              khi_is_pow2(align) ? ", but the block is not aligned to it)"
                                 : " is not a power of two)",
              (char *)NULL);
}

/* Checks size (and align, when aligned) against p's block, then frees it
 * with khi_domain_free, all under one busy mark, so that a concurrent
 * destroy cannot take the block between check and free. */
static void free_checked(void *p, bool aligned, size_t align, size_t size, const char *op)
{
    unsigned char *map;
    struct khi_heap *d = live_block(p, "free", &map);
    unsigned busy = khi_busy_begin(d, p, "free");
    if (aligned && (!khi_is_pow2(align) || ((uintptr_t)p & (align - 1)) != 0))
        wrong_alignment(d, p, align);
    size_t usable = khi_heap_block_size(p, *map);
    if (size > usable)
        wrong_size(d, p, op, size, usable);
    /* The checks are done: free marks itself as it needs, and may give a
     * parked d its key, which no thread may wait for while busy in d. */
    khi_busy_end(busy);
    khi_domain_free(p);
}

void khi_domain_free_sized(void *p, size_t size)
{
    free_checked(p, false, 0, size, "free_sized");
}

void khi_domain_free_aligned_sized(void *p, size_t align, size_t size)
{
    free_checked(p, true, align, size, "free_aligned_sized");
}
