/*
 * domains/explicit.c - keyheap_malloc, keyheap_calloc and
 * keyheap_aligned_alloc: allocation in a domain named by its handle (NULL:
 * the default heap), whatever domain this thread is inside.
 */
#include "config.h"

#include <errno.h>

#include "alloc/malloc.h"
#include "domains/domain.h"

/* The handle's heap; NULL stays NULL (the default heap). */
static struct khi_heap *heap_or_default(const keyheap_domain_t *d, const char *what)
{
    return d == NULL ? NULL : khi_domain_check(d, what);
}

KEYHEAP_API void *keyheap_malloc(keyheap_domain_t *d, size_t size)
{
    return khi_malloc_in(heap_or_default(d, "keyheap_malloc"), size);
}

KEYHEAP_API void *keyheap_calloc(keyheap_domain_t *d, size_t n, size_t size)
{
    return khi_calloc_in(heap_or_default(d, "keyheap_calloc"), n, size);
}

KEYHEAP_API void *keyheap_aligned_alloc(keyheap_domain_t *d, size_t align, size_t size)
{
    if (!khi_is_pow2(align)) { /* before the handle is looked at */
        errno = EINVAL;
        return NULL;
    }
    return khi_aligned_alloc_in(heap_or_default(d, "keyheap_aligned_alloc"), align, size);
}
