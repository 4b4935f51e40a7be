/*
 * domains/audit.c - judging PKRU against the domain stack (audit.h), and
 * keyheap_audit.
 */
#include "config.h"

#include <stdbool.h>

#include "alloc/fatal.h"
#include "alloc/pkey.h"
#include "domains/audit.h"

unsigned khi_audit_shadow(const struct keyheap_abi_thread *t, unsigned n, unsigned hw)
{
    unsigned pkru = khi_pkru_close(hw, khi_keys_held());
    for (unsigned i = 0; i < n && i < KEYHEAP_MAX_DEPTH; i++) {
        const struct khi_heap *d = khi_frame_heap(&t->stack[i]);
        if (d == NULL)
            continue; /* an enter that has not written its frame yet */
        pkru = keyheap_abi_open(pkru, d->abi.ad_bit, t->stack[i].readonly);
    }
    return pkru;
}

unsigned khi_audit_unallocated(unsigned among, struct khi_audit_keys *q)
{
    for (unsigned key = 1; key < 16; key++) {
        unsigned ad = 1u << (2 * key);
        if (!(among & ad) || (q->asked & ad))
            continue;
        q->asked |= ad;
        if (!khi_pkey_is_allocated(key))
            q->unalloc |= ad;
    }
    return q->unalloc & among;
}

unsigned khi_audit_want(const struct keyheap_abi_thread *t, unsigned n, unsigned hw,
                        struct khi_audit_keys *q)
{
    unsigned open = ~hw & KHI_AD_KEYS;
    return khi_pkru_close(khi_audit_shadow(t, n, hw),
                          khi_audit_unallocated(open & ~khi_keys_held(), q));
}

unsigned khi_audit_excess(unsigned pkru, unsigned want)
{
    const unsigned ad = 0x55555555u;
    unsigned reads = want & ~pkru & ad;
    unsigned writes = ~pkru & ~(pkru >> 1) & (want | want >> 1) & ad;
    return reads | writes;
}

unsigned khi_audit_close(unsigned pkru, const struct keyheap_abi_thread *t, unsigned n,
                         struct khi_audit_keys *q)
{
    unsigned want = khi_audit_want(t, n, pkru, q);
    unsigned excess = khi_audit_excess(pkru, want) & ~(khi_internal_open & 0x55555555u);
    return (pkru & ~(excess * 3u)) | (want & excess * 3u);
}

const char *khi_key_rights(unsigned pkru, unsigned key)
{
    unsigned bits = (pkru >> (2 * key)) & 3u;
    return bits & 1u ? "none" : bits & 2u ? "read-only" : "read-write";
}

/* --------------------------------------------------------- keyheap_audit */

static void report(const char *what, unsigned key, const struct khi_heap *owner, unsigned hw,
                   unsigned want)
{
    char k[24];
    if (owner != NULL)
        khi_warn("audit: key ", khi_dec(k, key), " of domain \"", owner->name, "\": PKRU says ",
                 khi_key_rights(hw, key), ", the domain stack says ", khi_key_rights(want, key),
                 what, (char *)NULL);
    else
        khi_warn("audit: key ", khi_dec(k, key), what, khi_key_rights(hw, key), (char *)NULL);
}

/* Every difference counts, both ways: a key of keyheap's that the stack
 * says is open but PKRU has closed is a mismatch too, and repairing writes
 * the shadow back (this thread asked for it; the watchdog, which acts on
 * other threads, only ever closes). */
KEYHEAP_API int keyheap_audit(unsigned flags)
{
    if (!khi_pku_usable())
        return 0;
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned hw = keyheap_abi_rdpkru();
    unsigned held = khi_keys_held();
    struct khi_audit_keys q = {0, 0};
    khi_pkey_test_init();
    unsigned unalloc = khi_audit_unallocated(KHI_AD_KEYS & ~held, &q);
    unsigned want = khi_pkru_close(khi_audit_shadow(t, t->depth, hw), unalloc & ~hw);
    bool say = flags & KEYHEAP_AUDIT_REPORT, repair = flags & KEYHEAP_AUDIT_REPAIR;
    int mismatches = 0;
    for (unsigned key = 1; key < 16; key++) {
        unsigned bits = 3u << (2 * key), ad = 1u << (2 * key);
        if (held & ad) {
            const struct khi_heap *owner = khi_domain_of_key(key);
            if ((hw ^ want) & bits) {
                mismatches++;
                if (say && owner != NULL)
                    report(repair ? "; repaired" : "", key, owner, hw, want);
                else if (say)
                    report(repair ? ", kept by keyheap after a destroy, is open (now closed): "
                                  : ", kept by keyheap after a destroy, is open: ",
                           key, NULL, hw, want);
            }
        } else if (unalloc & ad) {
            if (!(hw & ad)) {
                mismatches++;
                if (say)
                    report(repair ? ", which no code has allocated, is open (now closed): "
                                  : ", which no code has allocated, is open: ",
                           key, NULL, hw, want);
            }
        } else if (say) {
            report(" belongs to other code (foreign), left alone: ", key, NULL, hw, want);
        }
    }
    if (mismatches != 0 && repair)
        keyheap_abi_wrpkru(want);
    return mismatches;
}
