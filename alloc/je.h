/*
 * alloc/je.h - keyheap's one interface to its private jemalloc.
 *
 * libkeyheap.so contains a copy of Debian's jemalloc 5.3 (libjemalloc_pic.a)
 * whose public symbols were renamed with the prefix "kh_je_" at build time
 * (see Makefile.am, rule alloc/kh_jemalloc.a) and which the linker turns into
 * local symbols (-Wl,--exclude-libs,ALL).  Nothing of it is exported, so a
 * program may link Debian's own libjemalloc beside keyheap.
 *
 * Only this header names jemalloc.  The declarations carry hidden visibility
 * so that calls from keyheap's wrappers are direct calls or tail jumps, never
 * through the PLT.  The flag encodings are those documented in jemalloc's
 * public API (jemalloc(3), "MALLOCX_*").
 */
#ifndef KH_ALLOC_JE_H
#define KH_ALLOC_JE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KHI_HIDDEN __attribute__((visibility("hidden")))
/* jemalloc never throws: lets C++ callers that are noexcept tail-call it. */
#define KHI_JE __attribute__((visibility("hidden"), nothrow))

KHI_JE void *kh_je_malloc(size_t size);
KHI_JE void *kh_je_calloc(size_t n, size_t size);
KHI_JE void *kh_je_realloc(void *p, size_t size);
KHI_JE void kh_je_free(void *p);
KHI_JE void *kh_je_mallocx(size_t size, int flags);
KHI_JE void kh_je_dallocx(void *p, int flags);
KHI_JE void kh_je_sdallocx(void *p, size_t size, int flags);
KHI_JE size_t kh_je_malloc_usable_size(const void *p);
KHI_JE size_t kh_je_nallocx(size_t size, int flags);
KHI_JE int kh_je_mallctl(const char *name, void *oldp, size_t *oldlenp,
                         void *newp, size_t newlen);

/* mallocx() flags: log2 of the alignment in the low bits. */
#define KHI_JE_LG_ALIGN(la) ((int)(la))

#ifdef __cplusplus
}
#endif

#endif /* KH_ALLOC_JE_H */
