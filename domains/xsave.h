/*
 * domains/xsave.h - the interrupted PKRU in a signal frame's XSAVE area.
 *
 * The kernel saves the interrupted thread's PKRU in the XSAVE area of every
 * signal frame (uc->uc_mcontext.fpregs) and restores it from there at
 * sigreturn, edited or not (../shared/PKU-FACTS.md, rows 1 and 1c).  The
 * handler itself runs with the default PKRU, so this is the only place
 * that says what the interrupted code, or the faulting instruction, had
 * open.
 */
#ifndef KH_DOMAINS_XSAVE_H
#define KH_DOMAINS_XSAVE_H

#include <stdbool.h>
#include <stdint.h>
#include <ucontext.h>

#define KHI_XSAVE_FN __attribute__((visibility("hidden")))

/* The XSAVE state component of PKRU: bit 9 of XSTATE_BV and of the
 * frame's feature mask. */
#define KHI_XFEATURE_PKRU 9

/*
 * khi_xsave_pkru_slot - where uc's frame keeps the saved PKRU, or NULL when
 * it has none (no XSAVE frame, PKRU not among its features, a CPU without
 * PKU).  *bv gets the frame's XSTATE_BV: while its KHI_XFEATURE_PKRU bit is
 * clear, PKRU was in its init state (0, every key open), *slot is not
 * meaningful and sigreturn ignores it; whoever writes *slot sets the bit.
 * Async-signal-safe (CPUID, then plain loads).
 */
KHI_XSAVE_FN uint32_t *khi_xsave_pkru_slot(ucontext_t *uc, uint64_t **bv);

/*
 * khi_xsave_pkru - the PKRU saved in uc's frame (the init state read as 0)
 * in *pkru.  Returns true on error: uc is NULL or its frame has no PKRU.
 * Async-signal-safe.
 */
KHI_XSAVE_FN bool khi_xsave_pkru(const ucontext_t *uc, unsigned *pkru);

#endif /* KH_DOMAINS_XSAVE_H */
