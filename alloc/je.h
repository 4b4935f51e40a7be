/*
 * alloc/je.h - keyheap's one interface to its private jemalloc, and the one
 * file that calls it.
 *
 * libkeyheap.so contains a copy of Debian's jemalloc 5.3 (libjemalloc_pic.a)
 * whose public symbols were renamed with the prefix "kh_je_" at build time
 * (see Makefile.am, rule alloc/kh_jemalloc.a) and which the linker turns into
 * local symbols (-Wl,--exclude-libs,ALL).  Nothing of it is exported, so a
 * program may link Debian's own libjemalloc beside keyheap.
 *
 * Every call into it is one of the inline khi_je_* functions below; no
 * other file names a kh_je_ function.  The declarations carry hidden
 * visibility so that calls from keyheap's wrappers are direct calls or
 * tail jumps, never through the PLT.  The flag encodings are those
 * documented in jemalloc's public API (jemalloc(3), "MALLOCX_*").
 */
#ifndef KH_ALLOC_JE_H
#define KH_ALLOC_JE_H

#include "alloc/hidden.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* jemalloc never throws: lets C++ callers that are noexcept tail-call it. */
#define KHI_JE __attribute__((visibility("hidden"), nothrow))

KHI_JE void *kh_je_malloc(size_t size);
KHI_JE void *kh_je_calloc(size_t n, size_t size);
KHI_JE void *kh_je_realloc(void *p, size_t size);
KHI_JE void kh_je_free(void *p);
KHI_JE void *kh_je_mallocx(size_t size, int flags);
KHI_JE size_t kh_je_xallocx(void *p, size_t size, size_t extra, int flags);
KHI_JE void kh_je_dallocx(void *p, int flags);
KHI_JE void kh_je_sdallocx(void *p, size_t size, int flags);
KHI_JE size_t kh_je_malloc_usable_size(const void *p);
KHI_JE size_t kh_je_nallocx(size_t size, int flags);
KHI_JE int kh_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* The calls.  Inline: malloc's default path stays a tail jump into
 * jemalloc. */
static inline void *khi_je_malloc(size_t size)
{
    return kh_je_malloc(size);
}
static inline void *khi_je_calloc(size_t n, size_t size)
{
    return kh_je_calloc(n, size);
}
static inline void *khi_je_realloc(void *p, size_t size)
{
    return kh_je_realloc(p, size);
}
static inline void khi_je_free(void *p)
{
    kh_je_free(p);
}
static inline void *khi_je_mallocx(size_t size, int flags)
{
    return kh_je_mallocx(size, flags);
}
static inline size_t khi_je_xallocx(void *p, size_t size, size_t extra, int flags)
{
    return kh_je_xallocx(p, size, extra, flags);
}
static inline void khi_je_dallocx(void *p, int flags)
{
    kh_je_dallocx(p, flags);
}
static inline void khi_je_sdallocx(void *p, size_t size, int flags)
{
    kh_je_sdallocx(p, size, flags);
}
static inline size_t khi_je_usable_size(const void *p)
{
    return kh_je_malloc_usable_size(p);
}
static inline size_t khi_je_nallocx(size_t size, int flags)
{
    return kh_je_nallocx(size, flags);
}
/* mallctl: 0 on success, an errno value on error. */
static inline int khi_je_ctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
                             size_t newlen)
{
    return kh_je_mallctl(name, oldp, oldlenp, newp, newlen);
}

/* mallocx() flags: log2 of the alignment in the low bits, zeroing, an
 * explicit thread cache (or none) and an explicit arena. */
#define KHI_JE_LG_ALIGN(la) ((int)(la))
#define KHI_JE_ZERO ((int)0x40)
#define KHI_JE_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define KHI_JE_TCACHE_NONE KHI_JE_TCACHE(-1)
#define KHI_JE_ARENA(a) ((int)(((a) + 1) << 20))

/* Extent hooks (jemalloc(3), "arena.<i>.extent_hooks"): every call that
 * gets or returns address space for an arena.  Functions returning bool
 * return true on error (or to refuse). */
typedef struct khi_extent_hooks khi_extent_hooks_t;
struct khi_extent_hooks {
    void *(*alloc)(khi_extent_hooks_t *, void *new_addr, size_t size, size_t alignment, bool *zero,
                   bool *commit, unsigned arena_ind);
    bool (*dalloc)(khi_extent_hooks_t *, void *addr, size_t size, bool committed,
                   unsigned arena_ind);
    void (*destroy)(khi_extent_hooks_t *, void *addr, size_t size, bool committed,
                    unsigned arena_ind);
    bool (*commit)(khi_extent_hooks_t *, void *addr, size_t size, size_t offset, size_t length,
                   unsigned arena_ind);
    bool (*decommit)(khi_extent_hooks_t *, void *addr, size_t size, size_t offset, size_t length,
                     unsigned arena_ind);
    bool (*purge_lazy)(khi_extent_hooks_t *, void *addr, size_t size, size_t offset, size_t length,
                       unsigned arena_ind);
    bool (*purge_forced)(khi_extent_hooks_t *, void *addr, size_t size, size_t offset,
                         size_t length, unsigned arena_ind);
    bool (*split)(khi_extent_hooks_t *, void *addr, size_t size, size_t size_a, size_t size_b,
                  bool committed, unsigned arena_ind);
    bool (*merge)(khi_extent_hooks_t *, void *addr_a, size_t size_a, void *addr_b, size_t size_b,
                  bool committed, unsigned arena_ind);
};

/*
 * khi_je_arena_create - a new arena whose user extents all come from hooks
 * while its metadata stays on ordinary pages.  Returns true on error.
 * khi_je_arena_empty - frees every allocation of the arena and purges it,
 * so that all its address space is retained and decommitted (through its
 * hooks).  The arena itself stays, to be used again.  Returns true on error.
 * khi_je_tcache_create / _destroy - explicit thread caches.
 */
KHI_HIDDEN bool khi_je_arena_create(khi_extent_hooks_t *hooks, unsigned *arena);
KHI_HIDDEN bool khi_je_arena_empty(unsigned arena);
KHI_HIDDEN bool khi_je_tcache_create(unsigned *tcache);
KHI_HIDDEN void khi_je_tcache_destroy(unsigned tcache);

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_JE_H */
