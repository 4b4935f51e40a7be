/*
 * alloc/heap.c - allocation in domain heaps.
 *
 * A domain's blocks come from its own jemalloc arena through this thread's
 * own cache for that domain.  jemalloc touches no user page to allocate or
 * free, so those work with the domain closed; where keyheap must write into
 * the block (zeroing, copying, scrubbing) it opens the domain's key for
 * itself around the write.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "alloc/heap.h"
#include "alloc/malloc.h"
#include "domains/fatal.h"
#include "domains/thread.h"

/* Blocks of a domain are at least a granule, so each has its own byte in
 * the block map. */
static inline size_t at_least_granule(size_t size)
{
    return size < KHI_GRANULE ? KHI_GRANULE : size;
}

/* The magazine classes: map code (KHI_MAP_CLASS + class) of a request of
 * 0..KHI_MAG_MAX bytes, by (size + 15) / 16, and each class's size.  Made
 * from jemalloc's own size classes at the first domain creation; until
 * then (and if jemalloc's classes were not the expected ones) every code is
 * KHI_MAP_LIVE, which no magazine serves. */
static unsigned char mag_code[KHI_MAG_MAX / KHI_GRANULE + 1];
static size_t mag_size[KHI_MAG_CLASSES];

void khi_heap_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    unsigned char code[sizeof mag_code];
    size_t size[KHI_MAG_CLASSES];
    unsigned classes = 0;
    for (size_t i = 0; i < sizeof code; i++) {
        size_t usable = kh_je_nallocx(at_least_granule(i * KHI_GRANULE), 0);
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

void khi_dead_domain(const void *p, const char *what)
{
    char buf[24];
    khi_fatal("use-after-destroy ", what, " of ", khi_hex(buf, (unsigned long)p), " in domain \"",
              khi_slot_of(p)->name, "\"", (char *)NULL);
}

/* Whether p lies inside a live block of d (not at its start): the nearest
 * block start below p in the map, if live, must reach past p.  A scan of
 * the map, on the way to a fatal error only. */
static bool interior(const struct keyheap_domain *d, const void *p)
{
    const unsigned char *first = khi_map_of((const void *)d->start), *m = khi_map_of(p);
    while (m > first && *--m == KHI_MAP_NONE) {
    }
    if (!is_live(*m))
        return false;
    uintptr_t start = khi_span.base + ((uintptr_t)(m - khi_span.map) << KHI_GRANULE_SHIFT);
    return (uintptr_t)p < start + kh_je_malloc_usable_size((void *)start);
}

/* The fatal error for op (free, realloc, ...) on p, which the block map
 * does not show as a live block of a live domain:
 *   keyheap: <kind> <op> of <address> in domain "<name>"   */
static __attribute__((noreturn, cold, noinline)) void misuse(const void *p, const char *op)
{
    struct keyheap_domain *d = khi_slot_of(p);
    if (!khi_domain_live(d))
        khi_dead_domain(p, op);
    const char *kind;
    if (*khi_map_of(p) == KHI_MAP_FREED)
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
 * (misuse).  The map byte alone decides: a destroyed domain's part of the
 * map is all zeroes (khi_region_discard), so its blocks are not live. */
static inline struct keyheap_domain *live_block(const void *p, const char *op, unsigned char **map)
{
    uintptr_t off = (uintptr_t)p - khi_span.base;
    unsigned char *m = khi_span.map + (off >> KHI_GRANULE_SHIFT);
    if (__builtin_expect(!is_live(*m), 0))
        misuse(p, op);
    *map = m;
    return &khi_domains[off >> khi_span.shift];
}

/* Whether this thread has d open read-write (KEYHEAP_STRICT). */
static bool thread_inside(const struct keyheap_domain *d)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    for (unsigned i = t->depth; i-- > 0;)
        if (t->stack[i].domain == (const keyheap_domain_t *)d && !t->stack[i].readonly)
            return true;
    return false;
}

static __attribute__((noreturn, cold, noinline)) void strict_outside(const struct keyheap_domain *d,
                                                                     const void *p)
{
    char buf[24];
    khi_fatal("outside free of ", khi_hex(buf, (unsigned long)p), " in domain \"", d->name,
              "\" (KEYHEAP_STRICT: free only inside the domain)", (char *)NULL);
}

/* A new block of code's class from jemalloc, through this thread's cache. */
static __attribute__((noinline)) void *malloc_slow(struct keyheap_domain *d, size_t size)
{
    void *p = kh_je_mallocx(at_least_granule(size), khi_thread_flags(d));
    if (__builtin_expect(p == NULL, 0)) {
        errno = ENOMEM;
        return NULL;
    }
    *khi_map_of(p) = map_code(size);
    return p;
}

/* The common case is a pop from this thread's magazine. */
void *khi_domain_malloc(struct keyheap_domain *d, size_t size)
{
    const struct khi_thread_tc *tc = &khi_thread_tcs[d->slot];
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

void *khi_domain_alloc(struct keyheap_domain *d, size_t size, size_t align, bool zero)
{
    if (align <= 1 && !zero)
        return khi_domain_malloc(d, size);
    int flags = khi_thread_flags(d);
    if (align > 1)
        flags |= khi_align_flags(align);
    void *p;
    if (zero) {
        /* jemalloc zeroes recycled memory with memset: open the key. */
        unsigned pkru = khi_domain_open(d);
        p = kh_je_mallocx(at_least_granule(size), flags | KHI_JE_ZERO);
        khi_domain_close(d, pkru);
    } else {
        p = kh_je_mallocx(at_least_granule(size), flags);
    }
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* Over-aligned blocks stay out of the magazines. */
    *khi_map_of(p) = align <= KHI_GRANULE ? map_code(size) : KHI_MAP_LIVE;
    return p;
}

static void scrub(const struct keyheap_domain *d, void *p, size_t n)
{
    if (!(d->flags & KEYHEAP_NOSCRUB))
        explicit_bzero(p, n);
}

/* Puts p, of map code code, in tc's magazine or gives it to jemalloc. */
static inline void release(const struct khi_thread_tc *tc, void *p, unsigned code)
{
    unsigned c = code - KHI_MAP_CLASS;
    if (c < KHI_MAG_CLASSES && tc->mag->count[c] < KHI_MAG_DEPTH) {
        tc->mag->block[c][tc->mag->count[c]++] = p;
        return;
    }
    kh_je_dallocx(p, tc->flags);
}

/* The uncommon cases of free: a STRICT domain, scrubbing, or this thread's
 * first free into d (which makes its cache first).  The map byte already
 * says freed. */
static __attribute__((noinline)) void free_slow(struct keyheap_domain *d, void *p, unsigned code)
{
    if ((d->flags & KEYHEAP_STRICT) && !thread_inside(d)) {
        *khi_map_of(p) = (unsigned char)code; /* the block stays as it was */
        strict_outside(d, p);
    }
    if (!(d->flags & KEYHEAP_NOSCRUB)) {
        size_t n =
            code >= KHI_MAP_CLASS ? mag_size[code - KHI_MAP_CLASS] : kh_je_malloc_usable_size(p);
        unsigned pkru = khi_domain_open(d);
        explicit_bzero(p, n);
        khi_domain_close(d, pkru);
    }
    int flags = khi_thread_flags(d);
    const struct khi_thread_tc *tc = &khi_thread_tcs[d->slot];
    if (tc->gen == d->gen)
        release(tc, p, code);
    else
        kh_je_dallocx(p, flags); /* no cache: the thread is exiting */
}

/* The common case (a NOSCRUB domain, not STRICT, this thread's cache made:
 * d->free_gen says all three) is a push to this thread's magazine. */
void khi_domain_free(void *p)
{
    unsigned char *map;
    struct keyheap_domain *d = live_block(p, "free", &map);
    unsigned code = *map;
    *map = KHI_MAP_FREED;
    const struct khi_thread_tc *tc = &khi_thread_tcs[d->slot];
    if (__builtin_expect(tc->gen != d->free_gen, 0)) {
        free_slow(d, p, code);
        return;
    }
    release(tc, p, code);
}

void *khi_domain_realloc(void *p, size_t size)
{
    unsigned char *map;
    struct keyheap_domain *d = live_block(p, "realloc", &map);
    int flags = khi_thread_flags(d);
    size = at_least_granule(size);
    size_t old = kh_je_malloc_usable_size(p);
    unsigned pkru = khi_domain_open(d);
    void *q = p;
    /* Shrinking in place hands the tail back to the heap: scrub it first. */
    if (size < old)
        scrub(d, (char *)p + size, old - size);
    size_t now = kh_je_xallocx(p, size, 0, flags);
    if (now >= size) {
        *map = map_code(now);
    } else {
        q = kh_je_mallocx(size, flags);
        if (q != NULL) {
            memcpy(q, p, old < size ? old : size);
            scrub(d, p, old);
            *khi_map_of(q) = map_code(size);
            *map = KHI_MAP_FREED;
            kh_je_dallocx(p, flags);
        }
    }
    khi_domain_close(d, pkru);
    if (q == NULL)
        errno = ENOMEM;
    return q;
}

size_t khi_domain_usable(const void *p)
{
    unsigned char *map;
    live_block(p, "malloc_usable_size", &map);
    if (*map >= KHI_MAP_CLASS && *map < KHI_MAP_FREED)
        return mag_size[*map - KHI_MAP_CLASS];
    return kh_je_malloc_usable_size(p);
}
