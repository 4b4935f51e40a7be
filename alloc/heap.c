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

static struct keyheap_domain *live_domain_of(const void *p, const char *what)
{
    struct keyheap_domain *d = khi_slot_of(p);
    if (__builtin_expect(!khi_domain_live(d), 0)) {
        char buf[24];
        khi_fatal(what, " of ", khi_hex(buf, (unsigned long)p), " in destroyed domain \"",
                  d->name, "\"", (char *)NULL);
    }
    return d;
}

void *khi_domain_alloc(struct keyheap_domain *d, size_t size, size_t align, bool zero)
{
    int flags = khi_thread_flags(d);
    if (align > 1)
        flags |= khi_align_flags(align);
    void *p;
    if (zero) {
        /* jemalloc zeroes recycled memory with memset: open the key. */
        unsigned pkru = khi_domain_open(d);
        p = kh_je_mallocx(size ? size : 1, flags | KHI_JE_ZERO);
        khi_domain_close(d, pkru);
    } else {
        p = kh_je_mallocx(size ? size : 1, flags);
    }
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

static void scrub(struct keyheap_domain *d, void *p, size_t n)
{
    if (!(d->flags & KEYHEAP_NOSCRUB))
        explicit_bzero(p, n);
}

void khi_domain_free(void *p)
{
    struct keyheap_domain *d = live_domain_of(p, "free");
    int flags = khi_thread_flags(d);
    if (!(d->flags & KEYHEAP_NOSCRUB)) {
        size_t n = kh_je_malloc_usable_size(p);
        unsigned pkru = khi_domain_open(d);
        scrub(d, p, n);
        khi_domain_close(d, pkru);
    }
    kh_je_dallocx(p, flags);
}

void *khi_domain_realloc(void *p, size_t size)
{
    struct keyheap_domain *d = live_domain_of(p, "realloc");
    int flags = khi_thread_flags(d);
    size_t old = kh_je_malloc_usable_size(p);
    unsigned pkru = khi_domain_open(d);
    void *q = p;
    /* Shrinking in place hands the tail back to the heap: scrub it first. */
    if (size < old)
        scrub(d, (char *)p + size, old - size);
    if (kh_je_xallocx(p, size, 0, flags) < size) {
        q = kh_je_mallocx(size, flags);
        if (q != NULL) {
            memcpy(q, p, old < size ? old : size);
            scrub(d, p, old);
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
    live_domain_of(p, "malloc_usable_size");
    return kh_je_malloc_usable_size(p);
}
