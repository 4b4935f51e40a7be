/*
 * domains/domain.h - domains: a heap of alloc/ (its table entry is the
 * domain's handle) with a protection key of its own, and the keys keyheap
 * holds.
 */
#ifndef KH_DOMAINS_DOMAIN_H
#define KH_DOMAINS_DOMAIN_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/heap.h"
#include "include/keyheap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A domain's handle is its heap's table entry: the public type is never
 * defined, only converted. */
static inline keyheap_domain_t *khi_handle(struct khi_heap *h)
{
    return (keyheap_domain_t *)(void *)h;
}

/* khi_domain_check - d as a live domain of the table, or a fatal error that
 * names what (the entry point) was called with a bad handle. */
KHI_HIDDEN struct khi_heap *khi_domain_check(const keyheap_domain_t *d, const char *what);

/* khi_domain_of_key - the live domain that has key, or NULL.
 * Async-signal-safe (it reads the domain table, takes no lock). */
KHI_HIDDEN const struct khi_heap *khi_domain_of_key(unsigned key);

/* khi_domain_key_told - whether keyheap_domain_pkey gave d's key out: d
 * then keeps it until it is destroyed.  pre: the domain lock. */
KHI_HIDDEN bool khi_domain_key_told(const struct khi_heap *d);

/* khi_name_char - c as a report shows a byte of a domain's name: quotes,
 * backslashes and bytes that are not printable ASCII become '?'. */
static inline char khi_name_char(char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?';
}

/* The PKRU access-disable bits of every key in keyheap's pool (the key
 * cache, domains/keys.h): its resident domains' and its spare keys. */
KHI_HIDDEN extern unsigned khi_keys_ad_mask;

/* The access-disable bits of keys keyheap keeps without a domain: keys of
 * destroyed domains that some thread may still have open (a close round
 * went unanswered, or pages outside keyheap carry the key).  They are
 * never freed or reused, and are closed wherever keyheap can. */
KHI_HIDDEN extern unsigned khi_keys_kept;

/* khi_keys_held - the access-disable bits of every key keyheap holds: its
 * live domains' and the kept ones.  Any thread, no lock. */
static inline unsigned khi_keys_held(void)
{
    return __atomic_load_n(&khi_keys_ad_mask, __ATOMIC_RELAXED) |
           __atomic_load_n(&khi_keys_kept, __ATOMIC_RELAXED);
}

/* khi_pkru_close - pkru with the keys of ad_bits access-disabled. */
static inline unsigned khi_pkru_close(unsigned pkru, unsigned ad_bits)
{
    return (pkru & ~(ad_bits * 3u)) | ad_bits;
}

/* The lock of the domain table (domains/domain.c); taken before the thread
 * registry's. */
KHI_HIDDEN extern pthread_mutex_t khi_domains_lock;

/* khi_domains_lock_take - takes the domain lock with the calling thread's
 * asynchronous signals blocked (all but keyheap's PKRU signal, whose
 * handler takes no lock, and the synchronous ones: SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGTRAP, SIGSYS) until khi_domains_lock_drop: a signal
 * handler may enter a parked domain, which takes the lock, and must not
 * find it held by the code it interrupted.  Returns the mask to restore. */
KHI_HIDDEN sigset_t khi_domains_lock_take(void);
KHI_HIDDEN void khi_domains_lock_drop(sigset_t old);

#ifdef __cplusplus
}
#endif

#endif /* KH_DOMAINS_DOMAIN_H */
