/*
 * alloc/heap.h - a heap: one slot of the heap table, carved from its
 * region of the span (alloc/span.h) and tagged with the protection key it
 * is given; allocation in it, and routing between the default heap and
 * the heaps.
 *
 * The table entry of a heap is also the handle of the domain that owns
 * it (domains/domain.h): its first field is the part of the entry the
 * inline enter/leave read (include/keyheap.h, struct keyheap_abi_domain).
 * alloc/ knows nothing else of domains: it is given a key and a name.
 */
#ifndef KH_ALLOC_HEAP_H
#define KH_ALLOC_HEAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc/je.h"
#include "alloc/span.h"
#include "include/keyheap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A generation no thread cache has (caches have 0, none, or the heap's
 * gen, which counts up from 1, by 2 per create and destroy: 64 bits never
 * get here). */
#define KHI_GEN_NEVER UINT64_MAX

/* 256 bytes each (no two heaps share a cache line, and an address is an
 * entry only at a multiple of the size); the fields of the hot paths come
 * first. */
struct __attribute__((aligned(256))) khi_heap {
    struct keyheap_abi_domain abi;   /* first: live, and the key's PKRU bit */
    unsigned slot;                   /* index in khi_heaps and in the span */
    uint64_t gen;                    /* bumped at every create and destroy of this slot */
    uint64_t free_gen;               /* gen when free's fast path applies (NOSCRUB and not
                                        STRICT), else KHI_GEN_NEVER */
    int pkey;                        /* the key its pages carry, -1: untagged, or
                                        KHI_PKEY_PARKED; changed under carve_lock */
    unsigned flags;                  /* KEYHEAP_* flags */
    unsigned arena;                  /* jemalloc arena index, made on the slot's first use */
    bool has_arena;                  /* the slot's arena exists */
    char name[KEYHEAP_NAME_MAX + 1]; /* for messages */

    /* The extent hooks of this heap's arena carve its region. */
    khi_extent_hooks_t hooks;   /* jemalloc gets &hooks; container_of finds us */
    pthread_mutex_t carve_lock; /* guards next */
    uintptr_t start, next, end; /* region bounds and the carve pointer */
};

KHI_HIDDEN extern struct khi_heap khi_heaps[KHI_SLOTS];
#ifndef __cplusplus
_Static_assert(sizeof(khi_heaps[0].gen) == 8 && sizeof(khi_heaps[0]) == 256,
               "64-bit generations (never KHI_GEN_NEVER) in 256-byte heaps");
#endif

/* khi_heap_of - the heap whose region holds p.  pre: khi_in_span(p). */
static inline struct khi_heap *khi_heap_of(const void *p)
{
    return &khi_heaps[khi_span_slot(p)];
}

/* khi_heap_entry - h as an entry of the heap table (live or not), or
 * NULL when it is not one. */
static inline struct khi_heap *khi_heap_entry(const void *h)
{
    uintptr_t p = (uintptr_t)h, base = (uintptr_t)khi_heaps;
    if (p - base >= sizeof khi_heaps || (p - base) % sizeof khi_heaps[0] != 0)
        return NULL;
    return (struct khi_heap *)p;
}

/* khi_frame_heap - the heap of a frame of a thread's domain stack
 * (include/keyheap.h; verify mode marks it with bit 0), or NULL: the stack is read
 * without a lock, also from signal handlers, and never trusted; a leave
 * clears its frame's domain, so a frame that an enter has counted in depth
 * but not written yet reads NULL. */
static inline struct khi_heap *khi_frame_heap(const struct keyheap_abi_frame *f)
{
    return khi_heap_entry((const void *)((uintptr_t)f->domain & ~(uintptr_t)1));
}

/* khi_heap_live - whether h is a live heap: resident (it holds its key, or
 * it is untagged) or parked (it has no key; its memory is PROT_NONE). */
static inline int khi_heap_live(const struct khi_heap *h)
{
    unsigned live = __atomic_load_n(&h->abi.live, __ATOMIC_ACQUIRE);
    return live == KEYHEAP_ABI_LIVE || live == KEYHEAP_ABI_PARKED;
}

/* khi_heap_resident - whether h is live and its memory is accessible to
 * whoever has its key open (or to all, untagged). */
static inline int khi_heap_resident(const struct khi_heap *h)
{
    return __atomic_load_n(&h->abi.live, __ATOMIC_ACQUIRE) == KEYHEAP_ABI_LIVE;
}

/* The pkey field of a parked heap: its committed pages are PROT_NONE with
 * key 0, and pages it commits stay so until it gets a key. */
#define KHI_PKEY_PARKED (-2)

/* khi_heap_unpark - gives h, a live heap that may be parked, a key again
 * (the key cache, domains/keys.c, defines it: a direct call, no pointer),
 * waiting while every key is held by a domain some thread is inside.
 * Returns with h resident, or dead (destroyed meanwhile).  pre: this
 * thread is not busy in any heap and holds no lock of keyheap. */
KHI_HIDDEN void khi_heap_unpark(struct khi_heap *h);

/* The keys this thread has open for keyheap's own use (khi_heap_open), as
 * PKRU bits: the watchdog's audit (khi_audit_close, domains/audit.c)
 * leaves them alone. */
KHI_HIDDEN extern __thread unsigned khi_internal_open;

/* What khi_heap_close restores. */
struct khi_open {
    unsigned pkru, prev, bits;
};

/* khi_heap_open - opens h read-write in this thread for keyheap's own use
 * (scrubbing, copying, zeroing, mlock); returns what khi_heap_close
 * restores.  Nests.  Nothing happens for untagged (or parked) heaps.  The
 * one place that opens a key for keyheap itself.  pre: h keeps its key
 * until the close: this thread is inside h, busy in it and saw it
 * resident (khi_busy_resident), or holds its carve lock. */
static inline struct khi_open khi_heap_open(const struct khi_heap *h)
{
    struct khi_open o = {0, khi_internal_open, h->abi.ad_bit * 3u};
    if (o.bits == 0)
        return o;
    khi_internal_open = o.prev | o.bits;
    __asm__ volatile("" ::: "memory"); /* marked before it is open */
    o.pkru = keyheap_abi_rdpkru();
    keyheap_abi_wrpkru(o.pkru & ~o.bits);
    return o;
}

static inline void khi_heap_close(const struct khi_heap *h, struct khi_open o)
{
    /* h's key back as it was; every other key as it is now: a close round
     * may have closed one meanwhile, and o.pkru must not reopen it. */
    (void)h;
    if (o.bits != 0)
        keyheap_abi_wrpkru((keyheap_abi_rdpkru() & ~o.bits) | (o.pkru & o.bits));
    __asm__ volatile("" ::: "memory"); /* closed before it is unmarked */
    khi_internal_open = o.prev;
}

/* khi_target - this thread's malloc target, or NULL (the default heap). */
static inline struct khi_heap *khi_target(void)
{
    return (struct khi_heap *)keyheap_abi_self.target;
}

/* khi_heap_init - learns jemalloc's small size classes for the magazines,
 * once.  pre: the domain lock is held (it is called at domain creation). */
KHI_HIDDEN void khi_heap_init(void);

/* khi_heap_make - makes h, a slot that holds no live heap, a new heap of
 * flags (KEYHEAP_*) named name (for messages), whose pages carry key (-1:
 * untagged).  The slot's arena is made on its first use and kept.
 * Everything but liveness: the caller publishes abi.live.  Returns true on
 * error (jemalloc made no arena). */
KHI_HIDDEN bool khi_heap_make(struct khi_heap *h, int key, unsigned flags, const char *name);

/* khi_heap_teardown - frees every block of h and drops its pages, data
 * and key tags, so that the key carries no page of h any more.  pre: h is
 * marked dead, no thread is busy in it, and every thread's cache for it
 * is dropped.  Returns NULL, or what failed (then h's key must be kept). */
KHI_HIDDEN const char *khi_heap_teardown(struct khi_heap *h);

/*
 * khi_domain_alloc - size bytes (0 allowed) aligned to align (a power of
 * two; 1 for malloc's alignment) in d's heap, zeroed when zero is true.
 * pre: d is live.  Returns NULL with errno ENOMEM on failure.
 */
KHI_HIDDEN void *khi_domain_alloc(struct khi_heap *d, size_t size, size_t align, bool zero);

/* khi_domain_malloc - malloc in d: the path of malloc inside a domain,
 * out of line so that malloc's default path stays a test and a jump.
 * pre: d is live.  NULL with errno ENOMEM on failure. */
KHI_HIDDEN void *khi_domain_malloc(struct khi_heap *d, size_t size);

/* khi_domain_free - frees p, a block of some domain, scrubbing it unless
 * the domain has KEYHEAP_NOSCRUB.  pre: khi_in_span(p).  Aborts when p's
 * domain was destroyed. */
KHI_HIDDEN void khi_domain_free(void *p);

/* khi_domain_realloc - resizes p within its domain; NULL with errno ENOMEM
 * (p untouched) on failure.  pre: khi_in_span(p), size > 0. */
KHI_HIDDEN void *khi_domain_realloc(void *p, size_t size);

/* khi_domain_usable - the usable size of p.  pre: khi_in_span(p). */
KHI_HIDDEN size_t khi_domain_usable(const void *p);

/* khi_heap_block_size - the usable size of p, a block whose block-map byte
 * was code (live), as khi_domain_usable gives it, without its checks: for
 * alloc/stats.c, which reads the map while other threads may free. */
KHI_HIDDEN size_t khi_heap_block_size(const void *p, unsigned code);

/* khi_malloc / khi_free - the routed malloc and free the C++ operators
 * share with malloc.c. */
KHI_HIDDEN void *khi_malloc(size_t size);
KHI_HIDDEN void khi_free(void *p);

/* khi_domain_free_sized / khi_domain_free_aligned_sized - free_sized and
 * free_aligned_sized of p, a block of some domain: abort ("keyheap:
 * wrong-size ..." / "wrong-alignment ...") when size is more than the
 * block's usable size, or (aligned) align is not a power of two or p not
 * aligned to it; otherwise khi_domain_free(p).  A p that is no live block
 * gets free's own message.  pre: khi_in_span(p). */
KHI_HIDDEN void khi_domain_free_sized(void *p, size_t size);
KHI_HIDDEN void khi_domain_free_aligned_sized(void *p, size_t align, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_HEAP_H */
