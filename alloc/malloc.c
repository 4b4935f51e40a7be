/*
 * alloc/malloc.c - the exported malloc family.
 *
 * Each function is a thin wrapper that gives glibc's documented edge cases
 * (see include/keyheap.h) and then calls the private jemalloc directly.  The
 * wrappers for malloc and free compile to a tail jump: keyheap adds no work
 * of its own to the default heap's fast path.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc/malloc.h"
#include "include/keyheap.h"

/* The page size of x86-64 Linux; valloc and pvalloc align to it. */
#define KH_PAGE ((size_t)4096)

static inline int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

void *khi_alloc_aligned(size_t align, size_t size)
{
    /* mallocx() leaves size 0 undefined; every other entry returns a unique
     * pointer for it, so this one does too. */
    return kh_je_mallocx(size ? size : 1, khi_align_flags(align));
}

/* Like khi_alloc_aligned, but sets errno on failure as malloc does. */
static void *alloc_aligned_errno(size_t align, size_t size)
{
    void *p = khi_alloc_aligned(align, size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

KEYHEAP_API void *malloc(size_t size)
{
    return kh_je_malloc(size);
}

KEYHEAP_API void free(void *p)
{
    kh_je_free(p);
}

KEYHEAP_API void *calloc(size_t n, size_t size)
{
    /* jemalloc checks n * size for overflow and sets ENOMEM. */
    return kh_je_calloc(n, size);
}

KEYHEAP_API void *realloc(void *p, size_t size)
{
    /* glibc: realloc(p, 0) frees p and returns NULL, errno untouched. */
    if (size == 0 && p != NULL) {
        kh_je_free(p);
        return NULL;
    }
    void *q = kh_je_realloc(p, size);
    /* jemalloc leaves errno alone when the size is past its largest class. */
    if (__builtin_expect(q == NULL, 0))
        errno = ENOMEM;
    return q;
}

KEYHEAP_API void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
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
     * a power of two is rounded up to one, one too big to round is EINVAL. */
    if (align <= 16)
        return kh_je_malloc(size);
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
    return p == NULL ? 0 : kh_je_malloc_usable_size(p);
}
