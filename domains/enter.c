/*
 * domains/enter.c - the out-of-line paths of keyheap_enter and
 * keyheap_leave (include/keyheap.h has the inline ones): a thread's first
 * enter, a bad handle, nesting too deep, verify mode, and a leave that
 * does not match.
 */
#include "config.h"

#include <stdint.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/pkey.h"
#include "alloc/tcache.h"
#include "domains/keys.h"
#include "domains/audit.h"
#include "domains/thread.h"

static const char *name_or_address(const keyheap_domain_t *d, char *buf)
{
    const struct khi_heap *dom = khi_heap_entry(d);
    return dom != NULL ? dom->name : khi_hex(buf, (uintptr_t)d);
}

/* verify mode: before every enter and leave, the register must give no key
 * more than the shadow does (what: "keyheap_enter(\"x\")", ...).  Fewer
 * is no mismatch: a signal handler runs with every key closed while the
 * domain stack is still the interrupted code's. */
static void verify(const char *op, const struct khi_heap *d)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned hw = keyheap_abi_rdpkru(), want = khi_audit_shadow(t, t->depth, hw);
    unsigned more = khi_audit_excess(hw, want);
    if (more == 0)
        return;
    unsigned key = (unsigned)__builtin_ctz(more) / 2;
    const struct khi_heap *owner = khi_domain_of_key(key);
    char h[24], w[24], k[24];
    khi_fatal("KEYHEAP_CONF verify: at ", op, "(\"", d->name, "\") PKRU is ", khi_hex(h, hw),
              " but the domain stack says ", khi_hex(w, want), ": key ", khi_dec(k, key),
              " of domain \"", owner != NULL ? owner->name : "?", "\" is ", khi_key_rights(hw, key),
              " instead of ", khi_key_rights(want, key), (char *)NULL);
}

/* The enter itself, as keyheap_abi_enter does it (the order is the key
 * cache's argument, domains/keys.c), with the frame marked in verify mode
 * so that its leave comes to keyheap_abi_leave_slow.  Returns false, with
 * the frame taken back, when d is not resident. */
static bool try_enter(struct keyheap_abi_thread *t, keyheap_domain_t *d, unsigned readonly)
{
    struct keyheap_abi_domain *a = (struct keyheap_abi_domain *)(void *)d;
    unsigned n = t->depth;
    struct keyheap_abi_frame *f = &t->stack[n];
    t->depth = n + 1; /* first, as keyheap_abi_enter does */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    f->domain = t->mode == KEYHEAP_ABI_VERIFY ? (keyheap_domain_t *)((uintptr_t)d | 1) : d;
    f->target = t->target;
    f->readonly = readonly;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    unsigned live = *(volatile const unsigned *)&a->live;
    unsigned ad_bit = *(volatile const unsigned *)&a->ad_bit;
    if (live != KEYHEAP_ABI_LIVE) {
        f->domain = NULL;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        t->depth = n;
        return false;
    }
    a->used = 1;
    if (t->mode == KEYHEAP_ABI_PKU || t->mode == KEYHEAP_ABI_VERIFY) {
        unsigned pkru = keyheap_abi_rdpkru();
        f->pkru = pkru;
        keyheap_abi_wrpkru(keyheap_abi_open(pkru, ad_bit, readonly));
    }
    if (!readonly)
        t->target = d;
    return true;
}

KEYHEAP_API void keyheap_abi_enter_slow(keyheap_domain_t *d, unsigned readonly)
{
    const char *op = readonly ? "keyheap_enter_ro" : "keyheap_enter";
    struct khi_heap *dom = khi_domain_check(d, op);
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    if (t->depth >= KEYHEAP_MAX_DEPTH)
        khi_fatal(op, "(\"", dom->name, "\"): domains nested deeper than KEYHEAP_MAX_DEPTH (64)",
                  (char *)NULL);
    if (t->mode == KEYHEAP_ABI_UNSET) {
        if (khi_tcache_final)
            khi_fatal(op, "(\"", dom->name,
                      "\") in a thread that is exiting, after keyheap's last thread-exit hook "
                      "(the last round of thread-specific-data destructors): enter domains "
                      "in earlier destructors or before the thread ends",
                      (char *)NULL);
        khi_thread_register();
        t->mode = !khi_pku_usable()        ? KEYHEAP_ABI_SOFT
                  : khi_conf_get()->verify ? KEYHEAP_ABI_VERIFY
                                           : KEYHEAP_ABI_PKU;
    }
    if (t->mode == KEYHEAP_ABI_VERIFY)
        verify(op, dom);
    /* A parked domain gets a key (the key cache), and the enter is tried
     * again: another thread's miss may take the key back in between. */
    while (!try_enter(t, d, readonly)) {
        khi_heap_unpark(dom);
        khi_domain_check(d, op); /* destroyed meanwhile: the same abort */
    }
}

KEYHEAP_API void keyheap_abi_leave_slow(keyheap_domain_t *d)
{
    char a[24], b[24];
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    if (t->depth == 0)
        khi_fatal("keyheap_leave(\"", name_or_address(d, a), "\") without a matching keyheap_enter",
                  (char *)NULL);
    struct keyheap_abi_frame *f = &t->stack[t->depth - 1];
    if (f->domain != (keyheap_domain_t *)((uintptr_t)d | 1))
        khi_fatal("keyheap_leave(\"", name_or_address(d, a),
                  "\") does not match the innermost keyheap_enter(\"",
                  name_or_address((keyheap_domain_t *)khi_frame_heap(f), b), "\")", (char *)NULL);
    /* A frame of verify mode. */
    verify("keyheap_leave", khi_frame_heap(f));
    keyheap_abi_wrpkru(f->pkru);
    t->target = f->target;
    f->domain = NULL; /* as keyheap_leave does */
    t->depth--;
}

KEYHEAP_API keyheap_domain_t *keyheap_current(void)
{
    return keyheap_abi_self.target;
}
