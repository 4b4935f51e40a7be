/*
 * domains/xsave.c - the interrupted PKRU in a signal frame (xsave.h).
 *
 * uc_mcontext.fpregs points at the frame's XSAVE area: the 512-byte legacy
 * (fxsave) image, whose bytes 464..511 the kernel fills with its software
 * bytes (struct _fpx_sw_bytes: magic1, extended size, the features present,
 * the XSAVE size), then the XSAVE header, whose first field is XSTATE_BV.
 * The kernel writes the standard (non-compacted) layout, where the offset
 * of each component comes from CPUID leaf 0xD: for PKRU, subleaf 9, EBX.
 */
#include "config.h"

#include <cpuid.h>
#include <string.h>

#include "domains/xsave.h"

#define SW_BYTES 464 /* the software bytes, in the fxsave image */
#define SW_MAGIC 0   /* offsets inside them */
#define SW_FEATURES 8
#define SW_SIZE 16
#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#endif
#define XSTATE_BV 512 /* the XSAVE header follows the legacy image */

#define OFFSET_NONE 1u /* pkru_offset: the CPU has no PKRU state component */

/* The offset of PKRU in the standard XSAVE layout; 0 until asked.  Every
 * thread computes the same value, so a racing first use is harmless. */
static unsigned pkru_offset;

static unsigned offset_of_pkru(void)
{
    unsigned off = __atomic_load_n(&pkru_offset, __ATOMIC_RELAXED);
    if (off != 0)
        return off;
    off = OFFSET_NONE;
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) >= 0xd) {
        __cpuid_count(0xd, KHI_XFEATURE_PKRU, a, b, c, d);
        (void)c, (void)d;
        if (a >= sizeof(uint32_t) && b >= XSTATE_BV + 64)
            off = b;
    }
    __atomic_store_n(&pkru_offset, off, __ATOMIC_RELAXED);
    return off;
}

uint32_t *khi_xsave_pkru_slot(ucontext_t *uc, uint64_t **bv)
{
    unsigned char *fx = (unsigned char *)uc->uc_mcontext.fpregs;
    unsigned off = offset_of_pkru();
    if (fx == NULL || off == OFFSET_NONE)
        return NULL;
    uint32_t magic, size;
    uint64_t features;
    memcpy(&magic, fx + SW_BYTES + SW_MAGIC, sizeof magic);
    memcpy(&features, fx + SW_BYTES + SW_FEATURES, sizeof features);
    memcpy(&size, fx + SW_BYTES + SW_SIZE, sizeof size);
    if (magic != FP_XSTATE_MAGIC1 || !(features & (1u << KHI_XFEATURE_PKRU)) ||
        size < off + sizeof(uint32_t))
        return NULL;
    *bv = (uint64_t *)(void *)(fx + XSTATE_BV);
    return (uint32_t *)(void *)(fx + off);
}

bool khi_xsave_pkru(const ucontext_t *uc, unsigned *pkru)
{
    if (uc == NULL)
        return true;
    uint64_t *bv;
    const uint32_t *slot = khi_xsave_pkru_slot((ucontext_t *)uc, &bv);
    if (slot == NULL)
        return true;
    *pkru = (*bv & (1u << KHI_XFEATURE_PKRU)) ? *slot : 0u;
    return false;
}
