/*
 * alloc/malloc.c - the exported malloc family, keyheap_realloc, keyheap_free
 * and keyheap_usable_size, and the explicit allocation (by heap) behind
 * keyheap_malloc and its kin (domains/explicit.c).
 *
 * Each function gives glibc's documented edge cases (see include/keyheap.h)
 * and routes the call: allocations go to this thread's malloc target (the
 * innermost domain it entered, or the default heap), frees and resizes
 * follow the pointer (inside the domain span: that domain's heap).  On the
 * default heap's path that costs one thread-local load and test in malloc
 * and one subtraction and test in free before jumping into jemalloc.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc/fatal.h"
#include "alloc/heap.h"
#include "alloc/malloc.h"

/* The page size of x86-64 Linux; valloc and pvalloc align to it. */
#define KH_PAGE ((size_t)4096)

#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define is_pow2 khi_is_pow2

void *khi_alloc_aligned(size_t align, size_t size)
{
    struct khi_heap *d = khi_target();
    if (UNLIKELY(d != NULL)) {
        int saved = errno;
        void *p = khi_domain_alloc(d, size, align, false);
        errno = saved;
        return p;
    }
    /* mallocx() leaves size 0 undefined; every other entry returns a unique
     * pointer for it, so this one does too. */
    return khi_je_mallocx(size ? size : 1, khi_align_flags(align));
}

#ifndef KH_NO_MALLOC_REPLACEMENT
/* Like khi_alloc_aligned, but sets errno on failure as malloc does. */
static void *alloc_aligned_errno(size_t align, size_t size)
{
    void *p = khi_alloc_aligned(align, size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}
#endif

void *khi_malloc(size_t size)
{
    struct khi_heap *d = khi_target();
    if (UNLIKELY(d != NULL))
        return khi_domain_malloc(d, size);
    return khi_je_malloc(size);
}

void khi_free(void *p)
{
    if (UNLIKELY(khi_in_span(p))) {
        khi_domain_free(p);
        return;
    }
    khi_je_free(p);
}

static void *calloc_in(struct khi_heap *d, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return khi_domain_alloc(d, total, 1, true);
}

/* The bodies of realloc and malloc_usable_size, which keyheap_realloc and
 * keyheap_usable_size share with them. */
static void *realloc_any(void *p, size_t size)
{
    if (p == NULL)
        return khi_malloc(size);
    /* glibc: realloc(p, 0) frees p and returns NULL, errno untouched. */
    if (size == 0) {
        khi_free(p);
        return NULL;
    }
    if (UNLIKELY(khi_in_span(p)))
        return khi_domain_realloc(p, size);
    void *q = khi_je_realloc(p, size);
    /* jemalloc leaves errno alone when the size is past its largest class. */
    if (UNLIKELY(q == NULL))
        errno = ENOMEM;
    return q;
}

static size_t usable_size_any(const void *p)
{
    if (p == NULL)
        return 0;
    if (UNLIKELY(khi_in_span(p)))
        return khi_domain_usable(p);
    return khi_je_usable_size(p);
}

/* The exported malloc family: left out of a build configured with
 * --disable-malloc-replacement, where another allocator (AddressSanitizer's)
 * owns these names and only the keyheap_* API below is keyheap's. */
#ifndef KH_NO_MALLOC_REPLACEMENT
KEYHEAP_API void *malloc(size_t size)
{
    return khi_malloc(size);
}

KEYHEAP_API void free(void *p)
{
    khi_free(p);
}

KEYHEAP_API void *calloc(size_t n, size_t size)
{
    struct khi_heap *d = khi_target();
    if (UNLIKELY(d != NULL))
        return calloc_in(d, n, size);
    /* jemalloc checks n * size for overflow and sets ENOMEM. */
    return khi_je_calloc(n, size);
}

KEYHEAP_API void *realloc(void *p, size_t size)
{
    return realloc_any(p, size);
}

KEYHEAP_API void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_any(p, total);
}

KEYHEAP_API int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || !is_pow2(align))
        return EINVAL;
    /* POSIX: errno is not changed; the result is the return value. */
    int saved = errno;
    void *p = khi_alloc_aligned(align, size);
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

KEYHEAP_API void *aligned_alloc(size_t align, size_t size)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return alloc_aligned_errno(align, size);
}

KEYHEAP_API void *memalign(size_t align, size_t size)
{
    /* glibc's rules: small alignments are malloc's, an alignment that is not
     * a power of two is rounded up to one, one too big to round is EINVAL.
     * Only up to 8: jemalloc's 8-byte size class is 8-aligned, so
     * memalign(16, 4) must ask for the alignment (fuzz/api.c found it). */
    if (align <= 8)
        return khi_malloc(size);
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(align))
        align = (size_t)1 << (64 - __builtin_clzl(align));
    return alloc_aligned_errno(align, size);
}

KEYHEAP_API void *valloc(size_t size)
{
    return alloc_aligned_errno(KH_PAGE, size);
}

KEYHEAP_API void *pvalloc(size_t size)
{
    if (size > SIZE_MAX - (KH_PAGE - 1)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = (size + KH_PAGE - 1) & ~(KH_PAGE - 1);
    return alloc_aligned_errno(KH_PAGE, rounded ? rounded : KH_PAGE);
}

KEYHEAP_API size_t malloc_usable_size(void *p)
{
    return usable_size_any(p);
}
#endif /* KH_NO_MALLOC_REPLACEMENT */

/* ------------------------------------------------ explicit allocation */

void *khi_malloc_in(struct khi_heap *h, size_t size)
{
    if (h == NULL)
        return khi_je_malloc(size);
    return khi_domain_alloc(h, size, 1, false);
}

void *khi_calloc_in(struct khi_heap *h, size_t n, size_t size)
{
    if (h == NULL)
        return khi_je_calloc(n, size);
    return calloc_in(h, n, size);
}

void *khi_aligned_alloc_in(struct khi_heap *h, size_t align, size_t size)
{
    if (h == NULL) {
        void *p = khi_je_mallocx(size ? size : 1, khi_align_flags(align));
        if (p == NULL)
            errno = ENOMEM;
        return p;
    }
    return khi_domain_alloc(h, size, align, false);
}

KEYHEAP_API void *keyheap_realloc(void *p, size_t size)
{
    return realloc_any(p, size);
}

KEYHEAP_API void keyheap_free(void *p)
{
    khi_free(p);
}

KEYHEAP_API size_t keyheap_usable_size(const void *p)
{
    return usable_size_any(p);
}

/* ---------------------------------------- C23's sized deallocation */

/*
 * free_sized(p, size) and free_aligned_sized(p, alignment, size) (C23
 * 7.24.3.4, 7.24.3.5): free(p), told the size (and alignment) p was
 * requested with; any other is undefined behaviour.  glibc 2.36 lacks
 * them, so programs built for C23 get them from keyheap (exported with the
 * rest of the family, so not with --disable-malloc-replacement).
 *
 * On the default heap they are plain free, the same test and jump: the
 * size is not passed on to jemalloc (sdallocx).  sdallocx trusts it: it
 * files the block under the size class of the size given, without looking
 * the block up, so a wrong size from a buggy caller would put the block on
 * the wrong class's free list and jemalloc would later hand it out as a
 * bigger block than it is: heap corruption.  A malloc replacement must not
 * turn a caller's undefined behaviour into that, and checking the size
 * would cost the lookup sdallocx saves.  In a domain the size (and
 * alignment) is checked against the block, which aborts on a mismatch it
 * can see (alloc/heap.c, "C23's sized deallocation").
 */
#ifndef KH_NO_MALLOC_REPLACEMENT
/* Not declared by glibc 2.36's <stdlib.h>. */
KEYHEAP_API void free_sized(void *p, size_t size);
KEYHEAP_API void free_aligned_sized(void *p, size_t align, size_t size);

KEYHEAP_API void free_sized(void *p, size_t size)
{
    if (UNLIKELY(khi_in_span(p))) {
        khi_domain_free_sized(p, size);
        return;
    }
    khi_je_free(p);
}

KEYHEAP_API void free_aligned_sized(void *p, size_t align, size_t size)
{
    if (UNLIKELY(khi_in_span(p))) {
        khi_domain_free_aligned_sized(p, align, size);
        return;
    }
    khi_je_free(p);
}
#endif /* KH_NO_MALLOC_REPLACEMENT */
