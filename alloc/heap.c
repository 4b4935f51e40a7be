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

void khi_dead_domain(const void *p, const char *what)
{
    char buf[24];
    khi_fatal(what, " of ", khi_hex(buf, (unsigned long)p), " in destroyed domain \"",
              khi_slot_of(p)->name, "\"", (char *)NULL);
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

static void scrub(const struct keyheap_domain *d, void *p, size_t n)
{
    if (!(d->flags & KEYHEAP_NOSCRUB))
        explicit_bzero(p, n);
}

void *khi_domain_malloc(struct keyheap_domain *d, size_t size)
{
    void *p = kh_je_mallocx(size ? size : 1, khi_thread_flags(d));
    if (__builtin_expect(p == NULL, 0))
        errno = ENOMEM;
    return p;
}

/* Zeroes a block, with the key open, and frees it. */
static __attribute__((noinline)) void free_scrubbed(struct keyheap_domain *d, void *p, int flags)
{
    size_t n = kh_je_malloc_usable_size(p);
    unsigned pkru = khi_domain_open(d);
    explicit_bzero(p, n);
    khi_domain_close(d, pkru);
    kh_je_dallocx(p, flags);
}

/* This thread's first free into d: make its cache first. */
static __attribute__((noinline)) void free_first(struct keyheap_domain *d, void *p)
{
    int flags = khi_thread_flags_slow(d);
    if (d->flags & KEYHEAP_NOSCRUB)
        kh_je_dallocx(p, flags);
    else
        free_scrubbed(d, p, flags);
}

/* The uncommon cases leave by tail calls, so the common one saves no
 * registers and ends in a jump into jemalloc. */
void khi_domain_free(void *p)
{
    struct keyheap_domain *d = khi_live_slot(p, "free");
    const struct khi_thread_tc *tc = &khi_thread_tcs[d->slot];
    if (__builtin_expect(tc->gen != d->gen, 0)) {
        free_first(d, p);
        return;
    }
    if (!(d->flags & KEYHEAP_NOSCRUB)) {
        free_scrubbed(d, p, tc->flags);
        return;
    }
    kh_je_dallocx(p, tc->flags);
}

void *khi_domain_realloc(void *p, size_t size)
{
    struct keyheap_domain *d = khi_live_slot(p, "realloc");
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
    khi_live_slot(p, "malloc_usable_size");
    return kh_je_malloc_usable_size(p);
}
