/*
 * domains/domain.c - the domain table: create, destroy, look up.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/heap.h"
#include "alloc/pkey.h"
#include "alloc/region.h"
#include "alloc/stats.h"
#include "domains/fault.h"
#include "domains/keys.h"
#include "domains/stats.h"
#include "domains/thread.h"
#include "domains/rounds.h"
#include "domains/watchdog.h"
#include "scan/scan.h"

unsigned khi_keys_ad_mask;
unsigned khi_keys_kept;
pthread_mutex_t khi_domains_lock = PTHREAD_MUTEX_INITIALIZER;

sigset_t khi_domains_lock_take(void)
{
    sigset_t block, old;
    sigfillset(&block);
    static const int keep[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    for (unsigned i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&block, keep[i]);
    sigdelset(&block, KHI_PKRU_SIGNAL);
    /* The system call itself: keyheap's own pthread_sigmask is a wrapper. */
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &block, &old, _NSIG / 8);
    pthread_mutex_lock(&khi_domains_lock);
    return old;
}

void khi_domains_lock_drop(sigset_t old)
{
    pthread_mutex_unlock(&khi_domains_lock);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, _NSIG / 8);
}
static uint64_t destroys; /* counts destroys, to reuse the oldest free slot */

/* What a domain has beyond its heap (the slot's table entry).  Guarded by
 * the domain lock. */
static struct {
    bool pkey_told;    /* keyheap_domain_pkey gave the key out */
    uint64_t freed_at; /* order of destroys, to reuse the oldest slot first */
} records[KHI_SLOTS];

#define KNOWN_FLAGS                                                                                \
    (KEYHEAP_NOSCRUB | KEYHEAP_MLOCK | KEYHEAP_WIPEONFORK | KEYHEAP_STRICT | KEYHEAP_SECRETMEM)

struct khi_heap *khi_domain_check(const keyheap_domain_t *d, const char *what)
{
    struct khi_heap *dom = khi_heap_entry(d);
    char buf[24];
    if (dom == NULL)
        khi_fatal(what, ": ", khi_hex(buf, (uintptr_t)d), " is not a keyheap domain", (char *)NULL);
    if (!khi_heap_live(dom))
        khi_fatal(what, " of destroyed domain \"", dom->name, "\"", (char *)NULL);
    return dom;
}

/* How many destroyed slots wait before reuse: a stale handle to one of the
 * last KHI_QUARANTINE destroyed domains is still caught as destroyed. */
#define KHI_QUARANTINE 4u

/*
 * The slot for a new domain.  A slot that held a domain before is reused
 * once KHI_QUARANTINE other slots were destroyed after it (the one destroyed
 * longest ago first); otherwise a never-used slot is taken.  Reusing slots
 * keeps the set of address regions small: jemalloc's page map holds a leaf
 * of metadata for every region ever used (2 MiB each when transparent huge
 * pages are on), so cycling through all 64 regions would cost up to 128 MiB.
 */
static struct khi_heap *free_slot(void)
{
    struct khi_heap *oldest = NULL, *fresh = NULL;
    unsigned waiting = 0;
    for (unsigned i = 0; i < khi_span.slots; i++) {
        struct khi_heap *d = &khi_heaps[i];
        if (khi_heap_live(d))
            continue;
        if (records[i].freed_at == 0) {
            if (fresh == NULL)
                fresh = d;
            continue;
        }
        waiting++;
        if (oldest == NULL || records[i].freed_at < records[oldest - khi_heaps].freed_at)
            oldest = d;
    }
    if (oldest != NULL && (waiting > KHI_QUARANTINE || fresh == NULL))
        return oldest;
    return fresh;
}

static bool check_args(const char *name, unsigned flags)
{
    if (name == NULL || name[0] == '\0' || (flags & ~KNOWN_FLAGS) != 0) {
        errno = EINVAL;
        return true;
    }
    if (strnlen(name, KEYHEAP_NAME_MAX + 1) > KEYHEAP_NAME_MAX) {
        errno = ENAMETOOLONG;
        return true;
    }
    return false;
}

/* Whether domains can be made at all here; sets errno and hints once. */
static bool check_mode(void)
{
    static bool hinted;
    if (khi_pku_usable() || khi_conf_get()->unprotected)
        return false;
    if (!hinted) {
        hinted = true;
        khi_warn("no usable protection keys (the CPU or kernel lacks PKU, a tool such as "
                 "valgrind hides it, or KEYHEAP_CONF has pku:off); set "
                 "KEYHEAP_CONF=unprotected:true for domains without hardware protection",
                 (char *)NULL);
    }
    errno = ENOTSUP;
    return true;
}

KEYHEAP_API keyheap_domain_t *keyheap_domain_create(const char *name, unsigned flags)
{
    if (check_args(name, flags))
        return NULL;
    int saved_errno = errno; /* a success leaves errno alone */
    khi_spawn_prepare();     /* before the lock: it takes the loader's */
    sigset_t mask = khi_domains_lock_take();
    struct khi_heap *d = NULL;
    if (check_mode() || khi_span_reserve())
        goto out;
    khi_threads_init();
    khi_heap_init();
    d = free_slot();
    if (d == NULL) {
        errno = ENOSPC;
        goto out;
    }
    int key = -1;
    if (khi_pku_usable() && (key = khi_keys_for_new()) == -1) {
        /* keyheap holds no key and the kernel gives none.  ENOSPC: every
         * key is taken; anything else (EPERM from a seccomp filter,
         * ENOSYS) is the kernel's own answer, passed on.  With keys in
         * the pool, a domain without one of its own starts parked. */
        d = NULL;
        goto out;
    }
    records[d - khi_heaps].pkey_told = false;
    if ((flags & KEYHEAP_SECRETMEM) && khi_region_secret_open(d, name)) {
        d = NULL; /* errno from memfd_secret; a key stays in the pool, spare */
        goto out;
    }
    if (khi_heap_make(d, key, flags, name)) {
        /* A key stays in the pool, spare. */
        if (flags & KEYHEAP_SECRETMEM)
            khi_region_secret_close(d);
        errno = ENOMEM;
        d = NULL;
        goto out;
    }
    if (key > 0)
        khi_keys_bind(d, key);
    d->abi.used = 1;
    __atomic_store_n(&d->abi.live, key == KHI_PKEY_PARKED ? KEYHEAP_ABI_PARKED : KEYHEAP_ABI_LIVE,
                     __ATOMIC_RELEASE);
    khi_fault_install();
    if (key != -1)
        khi_watchdog_install();
    khi_stats_at_exit();
out:
    khi_domains_lock_drop(mask);
    if (d != NULL && khi_conf_get()->scan)
        khi_scan_first(); /* KEYHEAP_CONF=scan:true, without the lock */
    if (d != NULL)
        errno = saved_errno;
    return d != NULL ? khi_handle(d) : NULL;
}

/*
 * Gives d's key back, once no thread can have it open: the key moves from
 * d to the kept keys (so threads created meanwhile are born with it
 * closed, spawn.c), every task of the process closes it (together with
 * keys kept by earlier destroys, which are tried again), and only then is
 * it freed.  A key stays kept, never to be reused, while some task did not
 * answer, or while mappings outside keyheap carry it (the program tagged
 * its own memory with keyheap_domain_pkey's answer).
 */
static void release_key(struct khi_heap *d)
{
    char n[24], k[24];
    unsigned ad = d->abi.ad_bit;
    __atomic_store_n(&khi_keys_kept, khi_keys_kept | ad, __ATOMIC_RELAXED);
    __atomic_store_n(&khi_keys_ad_mask, khi_keys_ad_mask & ~ad, __ATOMIC_RELAXED);
    unsigned closing = khi_keys_kept;
    unsigned missing = khi_close_key_everywhere(closing);
    if (missing != 0) {
        khi_warn("keyheap_domain_destroy(\"", d->name, "\"): ", khi_dec(n, missing),
                 " thread(s) did not answer keyheap's PKRU signal (blocked?), so key ",
                 khi_dec(k, (unsigned long)d->pkey),
                 " may still be open there: it is kept, not reused, and freed at a later "
                 "destroy that every thread answers",
                 (char *)NULL);
        return;
    }
    unsigned freed = 0;
    for (unsigned key = 1; key < 16; key++) {
        unsigned bit = 1u << (2 * key);
        if (!(closing & bit))
            continue;
        unsigned maps = (key == (unsigned)d->pkey && !records[d->slot].pkey_told)
                            ? 0
                            : khi_pkey_mappings((int)key);
        if (maps != 0) {
            if (key == (unsigned)d->pkey)
                khi_warn("keyheap_domain_destroy(\"", d->name, "\"): ", khi_dec(n, maps),
                         " mapping(s) outside the domain still carry its key ", khi_dec(k, key),
                         " (pkey_mprotect with keyheap_domain_pkey's answer): the key is "
                         "kept, never to be reused, so no later domain shares those pages",
                         (char *)NULL);
            continue;
        }
        khi_pkey_free((int)key);
        freed |= bit;
    }
    __atomic_store_n(&khi_keys_kept, khi_keys_kept & ~freed, __ATOMIC_RELAXED);
}

KEYHEAP_API int keyheap_domain_destroy(keyheap_domain_t *handle)
{
    sigset_t mask = khi_domains_lock_take();
    struct khi_heap *d = khi_domain_check(handle, "keyheap_domain_destroy");
    if (khi_threads_inside(d)) {
        khi_domains_lock_drop(mask);
        errno = EBUSY;
        return -1;
    }
    /* Order matters: the domain is dead first, so that a heap call that
     * starts in another thread (a contract violation) aborts with a
     * message, and the calls already running end before their caches go;
     * caches hold objects of the arena; emptying the arena decommits all
     * its extents through the hooks; the region is discarded (pages, data
     * and tags gone) before the key can be handed out again. */
    __atomic_store_n(&d->abi.live, 0u, __ATOMIC_RELEASE);
    khi_threads_wait_idle(d);
    khi_threads_drop_tcaches(d);
    const char *why = khi_heap_teardown(d);
    if (why != NULL)
        khi_fatal("keyheap_domain_destroy(\"", d->name, "\"): ", why, (char *)NULL);
    if (d->pkey > 0) {
        khi_keys_unbind(d);
        release_key(d);
    }
    records[d->slot].freed_at = ++destroys;
    khi_domains_lock_drop(mask);
    return 0;
}

KEYHEAP_API const char *keyheap_domain_name(const keyheap_domain_t *d)
{
    return khi_domain_check(d, "keyheap_domain_name")->name;
}

KEYHEAP_API int keyheap_domain_pkey(const keyheap_domain_t *d)
{
    int saved_errno = errno;
    sigset_t mask = khi_domains_lock_take();
    struct khi_heap *dom = khi_domain_check(d, "keyheap_domain_pkey");
    enum khi_keys_wait why;
    int key = -1;
    /* A parked domain gets a key first; a domain whose key was given out
     * keeps it until it is destroyed (pages outside keyheap may carry it
     * now), so the key cache never takes it. */
    if (khi_keys_resident(dom, &why)) {
        errno = why == KHI_KEYS_FAILED ? ENOMEM : EAGAIN;
    } else {
        records[dom->slot].pkey_told = true;
        key = dom->pkey;
        errno = saved_errno;
    }
    khi_domains_lock_drop(mask);
    return key;
}

bool khi_domain_key_told(const struct khi_heap *d)
{
    return records[d->slot].pkey_told;
}

KEYHEAP_API keyheap_domain_t *keyheap_domain_of(const void *p)
{
    if (!khi_in_span(p))
        return NULL;
    struct khi_heap *d = khi_heap_of(p);
    return khi_heap_live(d) ? khi_handle(d) : NULL;
}

const struct khi_heap *khi_domain_of_key(unsigned key)
{
    for (unsigned s = 0; s < KHI_SLOTS; s++)
        if (khi_heap_live(&khi_heaps[s]) && khi_heaps[s].pkey == (int)key)
            return &khi_heaps[s];
    return NULL;
}

KEYHEAP_API const char *keyheap_version(void)
{
    return PACKAGE_VERSION;
}
