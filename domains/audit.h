/*
 * domains/audit.h - the one set of rules by which keyheap judges a
 * thread's PKRU against its domain stack.  keyheap_audit (the calling
 * thread, on request), verify mode (every enter and leave) and the
 * watchdog's rounds (every thread, from its signal handler) all judge by
 * these functions; they differ only in what they do about a difference
 * (keyheap_audit.3: report, write the shadow back; verify: abort on more
 * rights; watchdog: take the extra rights away, never give any).
 *
 * Every function here is async-signal-safe: no lock, no allocation.
 */
#ifndef KH_DOMAINS_AUDIT_H
#define KH_DOMAINS_AUDIT_H

#include "domains/domain.h"

/* The PKRU access-disable bits of keys 1..15. */
#define KHI_AD_KEYS 0x55555554u

/* Which keys were asked of the kernel (AD bits), and which of those no
 * code has allocated: a cache for one judgement, so each key costs at
 * most one system call. */
struct khi_audit_keys {
    unsigned asked, unalloc;
};

/* khi_audit_shadow - what PKRU must be for keyheap's keys in a thread
 * whose domain stack is frames [0, n) of t: every key keyheap holds
 * closed, then each frame applied in order as keyheap_abi_enter applies
 * it; every other key as in hw. */
KHI_HIDDEN unsigned khi_audit_shadow(const struct keyheap_abi_thread *t, unsigned n, unsigned hw);

/* khi_audit_unallocated - the keys among `among` (AD bits) that no code
 * in the process has allocated, asked of the kernel (alloc/pkey.h). */
KHI_HIDDEN unsigned khi_audit_unallocated(unsigned among, struct khi_audit_keys *q);

/* khi_audit_want - the shadow, with the keys that are open in hw and that
 * no code has allocated closed as well. */
KHI_HIDDEN unsigned khi_audit_want(const struct keyheap_abi_thread *t, unsigned n, unsigned hw,
                                   struct khi_audit_keys *q);

/* khi_audit_excess - the AD bits of the keys to which pkru gives more than
 * want: reading where want has the key closed, or writing where want has
 * it closed or read-only.  Fewer rights are no excess: a signal handler
 * runs with every key closed while its thread's stack says otherwise. */
KHI_HIDDEN unsigned khi_audit_excess(unsigned pkru, unsigned want);

/* khi_audit_close - the watchdog's rule for one PKRU value of this thread
 * whose stack, where that value applies, is frames [0, n) of t: pkru
 * with the rights it has beyond khi_audit_want taken away, except on keys
 * keyheap opened for its own use in this thread (khi_internal_open).
 * Never opens anything. */
KHI_HIDDEN unsigned khi_audit_close(unsigned pkru, const struct keyheap_abi_thread *t, unsigned n,
                                    struct khi_audit_keys *q);

/* khi_key_rights - "none", "read-only" or "read-write": what PKRU value
 * pkru gives key. */
KHI_HIDDEN const char *khi_key_rights(unsigned pkru, unsigned key);

#endif /* KH_DOMAINS_AUDIT_H */
