/*
 * alloc/tcache.c - each thread's caches for the heaps (alloc/tcache.h).
 */
#include "config.h"

#include <string.h>

#include "alloc/fatal.h"
#include "alloc/tcache.h"

__thread struct khi_tcache khi_tcaches[KHI_SLOTS];
__thread unsigned khi_heap_busy;
__thread bool khi_tcache_enlisted;
__thread bool khi_tcache_final;
pthread_mutex_t khi_tcache_lock = PTHREAD_MUTEX_INITIALIZER;

int khi_tcache_flags_slow(struct khi_heap *h)
{
    int no_cache = KHI_JE_ARENA(h->arena) | KHI_JE_TCACHE_NONE;
    if (khi_tcache_final)
        return no_cache;
    khi_tcache_enlist();
    unsigned id;
    pthread_mutex_lock(&khi_tcache_lock);
    struct khi_tcache *tc = &khi_tcaches[h->slot];
    if (tc->gen != 0) /* a cache of a destroyed heap that used this slot */
        khi_je_tcache_destroy(tc->id);
    tc->gen = 0;
    if (tc->mag == NULL)
        tc->mag = khi_je_malloc(sizeof *tc->mag);
    if (tc->mag == NULL || khi_je_tcache_create(&id)) {
        pthread_mutex_unlock(&khi_tcache_lock);
        return no_cache;
    }
    memset(tc->mag->count, 0, sizeof tc->mag->count);
    tc->id = id;
    tc->flags = KHI_JE_ARENA(h->arena) | KHI_JE_TCACHE((int)id);
    tc->gen = h->gen;
    pthread_mutex_unlock(&khi_tcache_lock);
    return tc->flags;
}

void khi_tcache_drop(struct khi_tcache *tcs, const struct khi_heap *h)
{
    struct khi_tcache *tc = &tcs[h->slot];
    if (tc->gen == h->gen) {
        khi_je_tcache_destroy(tc->id);
        tc->gen = 0;
    }
}

/* Gives the blocks of tc's magazine back to jemalloc, when they still
 * exist: when the heap that owns them is alive, in the same generation.
 * (A teardown resets its arena, and every magazine's blocks with it.)
 * pre: khi_tcache_lock is held, so no teardown drops caches meanwhile. */
static void flush_magazine(struct khi_tcache *tc, unsigned slot)
{
    const struct khi_heap *h = &khi_heaps[slot];
    if (tc->gen == 0 || tc->gen != h->gen || !khi_heap_live(h))
        return;
    for (unsigned c = 0; c < KHI_MAG_CLASSES; c++) {
        for (unsigned i = 0; i < tc->mag->count[c]; i++)
            khi_je_dallocx(tc->mag->block[c][i], tc->flags);
        tc->mag->count[c] = 0;
    }
}

void khi_tcache_drop_all(struct khi_tcache *tcs)
{
    for (unsigned s = 0; s < KHI_SLOTS; s++) {
        struct khi_tcache *tc = &tcs[s];
        if (tc->gen != 0) {
            flush_magazine(tc, s);
            khi_je_tcache_destroy(tc->id);
            tc->gen = 0;
        }
        khi_je_free(tc->mag);
        tc->mag = NULL;
    }
}

void khi_heap_racing_destroy(const struct khi_heap *h, const void *p, const char *op)
{
    char buf[24];
    if (p != NULL)
        khi_fatal(op, " of ", khi_hex(buf, (unsigned long)p), " in domain \"", h->name,
                  "\" while keyheap_domain_destroy destroys it (no thread may use a domain "
                  "that is being destroyed)",
                  (char *)NULL);
    khi_fatal(op, " in domain \"", h->name,
              "\" while keyheap_domain_destroy destroys it (no thread may use a domain that is "
              "being destroyed)",
              (char *)NULL);
}
