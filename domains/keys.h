/*
 * domains/keys.h - the key cache: more domains than protection keys.
 *
 * keyheap takes at most KEYHEAP_CONF keys:<n> hardware keys (15 by
 * default, fewer where other code holds some) and keeps them in a pool.  A
 * domain that holds one of them is resident; one without is parked: its
 * memory is PROT_NONE (contents kept), and entering it takes a key, a
 * spare one or one evicted from the least recently entered resident
 * domain that no thread is inside (domains/keys.c explains the protocol).
 * Everything here runs under the domain lock.
 */
#ifndef KH_DOMAINS_KEYS_H
#define KH_DOMAINS_KEYS_H

#include <stdbool.h>

#include "alloc/heap.h"

/* khi_keys_for_new - a key for a new domain: a spare one of the pool, or
 * a fresh one from the kernel while the pool is below keys:<n>.  Returns
 * the key; KHI_PKEY_PARKED when every key is held (the domain starts
 * parked); -1 with errno when keyheap holds no key and the kernel gives
 * none (ENOSPC, or the kernel's own error).  pre: the domain lock. */
KHI_HIDDEN int khi_keys_for_new(void);

/* khi_keys_bind - records that d (made with key from khi_keys_for_new)
 * holds it.  pre: the domain lock. */
KHI_HIDDEN void khi_keys_bind(struct khi_heap *d, int key);

/* khi_keys_unbind - takes d's key out of the pool for good (d is being
 * destroyed; the caller gives the key back to the kernel).  pre: the
 * domain lock. */
KHI_HIDDEN void khi_keys_unbind(const struct khi_heap *d);

/* Why khi_keys_resident failed. */
enum khi_keys_wait {
    KHI_KEYS_WAIT,     /* every key is held by a domain another thread is inside
                          (or busy in): one will come free */
    KHI_KEYS_DEADLOCK, /* every key is held by a domain this thread is inside or
                          whose key was given out: none can come free */
    KHI_KEYS_CYCLE,    /* as KHI_KEYS_DEADLOCK, with some keys held by domains
                          that only threads waiting for a key are inside */
    KHI_KEYS_UNANSWERED, /* a task did not answer an eviction's round (it
                            blocks keyheap's signal?): wait and try again */
    KHI_KEYS_NONE,     /* keyheap holds no key and the kernel gives none */
    KHI_KEYS_FAILED,   /* the memory could not be re-tagged (errno) */
};

/* khi_keys_resident - makes d resident: a key for it, evicting where
 * needed.  Returns true on failure, with the reason in *why.  pre: the
 * domain lock; d is live. */
KHI_HIDDEN bool khi_keys_resident(struct khi_heap *d, enum khi_keys_wait *why);

/* Counters of the key cache, for the benchmarks and tests: keys in the
 * pool, misses (a parked domain got a key), evictions and sweeps (rounds
 * that made resident domains clean). */
struct khi_keys_counters {
    unsigned pool, misses, evictions, sweeps;
};
KHI_HIDDEN void khi_keys_counters(struct khi_keys_counters *out);

#endif /* KH_DOMAINS_KEYS_H */
