/*
 * domains/watchdog.c - setting PKRU in other threads, and the watchdog.
 *
 * PKRU is per thread, and no thread can write another's.  But a signal
 * handler can: the kernel saves the interrupted PKRU in the signal frame's
 * XSAVE area and restores it from there at sigreturn, edited or not
 * (../shared/PKU-FACTS.md, row 1c).  keyheap signals every thread that ever
 * used a domain (the registry of domains/thread.c) with KHI_PKRU_SIGNAL;
 * the handler edits the saved PKRU and counts itself done.  Two users:
 *
 *  - keyheap_domain_destroy closes the destroyed domain's key in every
 *    thread before it frees the key, so a thread whose PKRU went stale
 *    (code that ran WRPKRU behind keyheap's back) can never read the next
 *    domain that gets the key.
 *  - the watchdog (KEYHEAP_CONF=watchdog:<ms>), a thread that every <ms>
 *    milliseconds has every such thread audit its PKRU against its domain
 *    stack (the shadow), report mismatches and set keyheap's keys back to
 *    the shadow and keys that no code allocated back to access-disabled.
 *    Keys other code allocated are never touched.
 *
 * The handler runs with PKRU at the kernel's default (every key but 0
 * closed) and reads only key-0 memory: keyheap's tables and the thread's
 * own state.  It is async-signal-safe: no lock, no allocation; write(2)
 * for reports.
 */
#include "config.h"

#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "domains/conf.h"
#include "domains/domain.h"
#include "domains/fatal.h"
#include "domains/pkey.h"
#include "domains/thread.h"
#include "domains/watchdog.h"

/* The fxsave image's software bytes (the kernel's struct _fpx_sw_bytes):
 * magic, then the XSAVE features present, then the frame's XSAVE size; the
 * XSAVE header's XSTATE_BV follows the 512-byte legacy area. */
#define SW_BYTES 464
#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#endif
#define XSTATE_BV 512
#define XFEATURE_PKRU 9

/* One round: what every signalled thread does. */
static struct {
    unsigned close;   /* AD bits of keys to close */
    unsigned unowned; /* AD bits of keys nobody has allocated (audit rounds) */
    bool audit;       /* compare with the shadow, repair, report */
    unsigned acks;    /* threads that have answered */
} rq;
static pthread_mutex_t round_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned pkru_offset; /* of PKRU in the standard XSAVE layout; 0: unknown */
static bool installed;       /* the handler; guarded by the domain lock */
static bool watchdog_wanted; /* KEYHEAP_CONF has watchdog:<ms> */

/* The saved PKRU in the signal frame, or NULL where the frame has none. */
static uint32_t *frame_pkru(ucontext_t *uc, uint64_t **bv)
{
    unsigned char *fx = (unsigned char *)uc->uc_mcontext.fpregs;
    if (fx == NULL || pkru_offset == 0)
        return NULL;
    uint32_t magic, size;
    uint64_t features;
    memcpy(&magic, fx + SW_BYTES, sizeof magic);
    memcpy(&features, fx + SW_BYTES + 8, sizeof features);
    memcpy(&size, fx + SW_BYTES + 16, sizeof size);
    if (magic != FP_XSTATE_MAGIC1 || !(features & (1u << XFEATURE_PKRU)) ||
        size < pkru_offset + sizeof(uint32_t))
        return NULL;
    *bv = (uint64_t *)(void *)(fx + XSTATE_BV);
    return (uint32_t *)(void *)(fx + pkru_offset);
}

/* Whether the thread was interrupted inside keyheap_enter or keyheap_leave,
 * between its WRPKRU and its depth update: then PKRU is already the new
 * state and the stack still the old one, and the next round audits it. */
static bool in_transition(const struct keyheap_abi_thread *t, unsigned hw)
{
    unsigned n = t->depth;
    if (n > 0 && n <= KEYHEAP_MAX_DEPTH && hw == t->stack[n - 1].pkru)
        return true; /* a leave that has restored PKRU */
    if (n < KEYHEAP_MAX_DEPTH) {
        const struct keyheap_abi_frame *f = &t->stack[n];
        const struct keyheap_domain *d = khi_frame_domain(f);
        uintptr_t p = (uintptr_t)d, base = (uintptr_t)khi_domains;
        if (p >= base && p < base + sizeof khi_domains) {
            unsigned ad = d->abi.ad_bit, pkru = f->pkru;
            if (hw == (f->readonly ? (pkru & ~ad) | ((pkru & ad) << 1) : pkru & ~(ad * 3u)))
                return true; /* an enter that has opened its key */
        }
    }
    return false;
}

/* The audit of one thread's saved PKRU: what it must be. */
static unsigned audit(unsigned hw)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned want = khi_thread_shadow(hw);
    if (want == hw || in_transition(t, hw))
        want = hw;
    /* Keys keyheap itself opened for a moment (scrubbing) stay as they are. */
    unsigned internal = khi_internal_open;
    want = (want & ~internal) | (hw & internal);
    for (unsigned key = 1; key < 16; key++) {
        unsigned ad = 1u << (2 * key);
        if ((rq.unowned & ad) && !(internal & ad) && !(hw & ad))
            want = (want & ~(ad * 3u)) | ad;
    }
    if (want == hw)
        return hw;
    char tid[24], k[24];
    khi_dec(tid, (unsigned long)syscall(SYS_gettid));
    for (unsigned key = 1; key < 16; key++) {
        unsigned bits = 3u << (2 * key);
        if (((hw ^ want) & bits) == 0)
            continue;
        const struct keyheap_domain *d = khi_domain_of_key(key);
        const char *owner = d != NULL ? d->name : NULL;
        khi_dec(k, key);
        if (owner != NULL)
            khi_warn("watchdog: thread ", tid, ": key ", k, " of domain \"", owner, "\" was ",
                     khi_key_rights(hw, key), ", the domain stack says ", khi_key_rights(want, key),
                     "; reset", (char *)NULL);
        else
            khi_warn("watchdog: thread ", tid, ": key ", k, ", which no code has allocated, was ",
                     khi_key_rights(hw, key), "; closed", (char *)NULL);
    }
    return want;
}

static void on_signal(int sig, siginfo_t *info, void *ctx)
{
    (void)sig, (void)info;
    int saved_errno = errno;
    uint64_t *bv;
    uint32_t *slot = frame_pkru(ctx, &bv);
    if (slot != NULL) {
        /* A PKRU in its initial state is 0 and not stored. */
        unsigned hw = (*bv & (1u << XFEATURE_PKRU)) ? *slot : 0;
        unsigned want = rq.audit ? audit(hw) : hw;
        for (unsigned key = 1; key < 16; key++) {
            unsigned ad = 1u << (2 * key);
            if (rq.close & ad)
                want = (want & ~(ad * 3u)) | ad;
        }
        if (want != hw) {
            *slot = want;
            *bv |= 1u << XFEATURE_PKRU;
        }
    }
    __atomic_add_fetch(&rq.acks, 1, __ATOMIC_RELEASE);
    errno = saved_errno;
}

/* One round: signal every registered thread and wait for their answers.
 * Returns how many did not answer. */
static unsigned run_round(unsigned close, bool audit_too)
{
    pthread_mutex_lock(&round_lock);
    rq.close = close;
    rq.audit = audit_too;
    rq.unowned = 0;
    if (audit_too) {
        unsigned allocated = khi_pkeys_allocated();
        for (unsigned key = 1; key < 16; key++)
            if (!(allocated & (1u << key)))
                rq.unowned |= 1u << (2 * key);
    }
    __atomic_store_n(&rq.acks, 0, __ATOMIC_RELEASE);
    unsigned missing = khi_threads_signal_all(KHI_PKRU_SIGNAL, &rq.acks, 1000);
    pthread_mutex_unlock(&round_lock);
    return missing;
}

unsigned khi_close_key_everywhere(unsigned ad_bits)
{
    if (!installed)
        return 0;
    return run_round(ad_bits, false);
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    unsigned ms = khi_conf_get()->watchdog_ms;
    struct timespec period = {ms / 1000, (long)(ms % 1000) * 1000000L};
    unsigned complained = 0;
    for (;;) {
        nanosleep(&period, NULL);
        unsigned missing = run_round(0, true);
        if (missing != 0 && complained++ == 0) {
            char n[24];
            khi_warn("watchdog: ", khi_dec(n, missing),
                     " thread(s) did not answer the PKRU signal (blocked?) and were not audited",
                     (char *)NULL);
        }
    }
    return NULL;
}

static void start_watchdog(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, watchdog_main, NULL) != 0)
        khi_warn("KEYHEAP_CONF watchdog: cannot start the watchdog thread", (char *)NULL);
    pthread_attr_destroy(&attr);
}

void khi_watchdog_install(void)
{
    if (installed)
        return;
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) >= 0xd) {
        __cpuid_count(0xd, XFEATURE_PKRU, a, b, c, d);
        (void)c, (void)d;
        if (a >= sizeof(uint32_t))
            pkru_offset = b;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    if (sigaction(KHI_PKRU_SIGNAL, &sa, NULL) != 0)
        return;
    installed = true;
    if (khi_conf_get()->watchdog_ms != 0) {
        watchdog_wanted = true;
        start_watchdog();
    }
}

void khi_watchdog_after_fork(void)
{
    /* The child's round state may be mid-round in a thread that is gone. */
    pthread_mutex_init(&round_lock, NULL);
    if (watchdog_wanted)
        start_watchdog();
}
