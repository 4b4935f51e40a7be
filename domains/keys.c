/*
 * domains/keys.c - the key cache (domains/keys.h): thousands of domains on
 * at most 15 hardware keys, on an unmodified kernel, with any number of
 * threads.
 *
 * The pool.  keyheap takes keys from the kernel as domains need them, up to
 * KEYHEAP_CONF keys:<n>, and keeps them: a key leaves the pool only when the
 * domain holding it is destroyed (domains/domain.c then closes it in every
 * task and frees it, as before there was a cache).  Spare keys of the pool
 * count among the keys keyheap holds (khi_keys_ad_mask), so new threads are
 * born with them closed and the watchdog closes them where they are open.
 *
 * Resident and parked.  A resident domain holds a key: its memory is
 * tagged with it, its handle says KEYHEAP_ABI_LIVE and the key's PKRU bit,
 * and the inline enter opens it with one WRPKRU.  A parked domain holds
 * none: its used range is PROT_NONE with key 0 (contents, locks and
 * madvise flags kept; the commit map of alloc/span.h remembers what was
 * committed), and its handle says KEYHEAP_ABI_PARKED, which sends every
 * enter to the out-of-line path (domains/enter.c), and from there here.
 *
 * A miss.  The parked domain gets a spare key, or a fresh one from the
 * kernel, or else one evicted from a victim chosen by a clock over the
 * pool among the clean domains: those whose `used` word is clear.  Every
 * enter sets its domain's `used` word (a plain store, when it was clear),
 * and only a sweep clears it.  A domain some thread is inside, or busy in,
 * or whose key was given out (keyheap_domain_pkey: pages outside keyheap
 * may carry it), is never a victim.
 *
 *   1. A sweep, when no resident domain is clean: the `used` words of the
 *      resident domains are cleared; after a barrier on every thread
 *      (membarrier), every domain a registered thread's stack names is
 *      marked used again (domains/thread.c: a registered thread has a key
 *      of keyheap's open only for a domain its stack names, or for
 *      keyheap's own use, closed before it returns; one that had others
 *      open when it registered is signalled instead); then a round of
 *      keyheap's PKRU signal (domains/rounds.c) reaches every other task
 *      of the process: raw clones, and threads keyheap never saw.  Each
 *      handler runs at one instruction of its thread and closes those keys
 *      in its PKRU and saved frames, but for a domain its stack names:
 *      that key stays open, and the domain is marked used again.  So once
 *      the sweep is over, a domain still clean has its key closed in every
 *      task; and it stays clean only while no task opens its key again,
 *      since an enter sets `used` before its WRPKRU, and a task inherits
 *      an open key (clone) only from one inside the domain.
 *   2. An eviction of a clean domain nobody seems to use needs no round:
 *      it is marked parked (live = KEYHEAP_ABI_PARKED), then a barrier on
 *      every thread (membarrier) makes the stores of every enter before it
 *      visible, and then the registry must show no thread inside or busy in
 *      it, and `used` must still be clear.  An enter writes its frame (and
 *      `used`) before it reads the domain's state, and a busy mark is set
 *      before the residency check: a thread either is seen here, which
 *      undoes the mark (the victim keeps its key, the clock moves on), or
 *      reads the victim parked from then on, and comes here for a key.
 *   3. The victim's memory is parked (one pkey_mprotect of its used range
 *      to PROT_NONE, key 0), so no page carries the key any more;
 *   4. the newcomer's committed runs are tagged with the key (one
 *      pkey_mprotect per run; a heap's region is contiguous and jemalloc
 *      commits it mostly in one piece), then ad_bit is set and live says
 *      KEYHEAP_ABI_LIVE (release): an enter reads live before ad_bit.
 *
 * So a thread can never hold rights to a key that moved to another domain:
 * after the sweep every task has the key of a clean domain closed, none
 * opened it since (or the domain would not be clean), and after step 2
 * none can open it for the victim, which reads as parked.  The key is
 * never freed while pages carry it (step 3 comes before step 4, and
 * destroy frees only after its own round).  A sweep costs a barrier, a
 * listing of /proc/self/task and a signal per task keyheap has not
 * registered (usually none); it serves every miss until the domains it
 * cleaned were all entered again, and most misses pay only the barrier
 * and their two pkey_mprotect calls.
 *
 * When no key can be had (every key held by domains some thread is inside
 * or busy in, or given out), khi_heap_unpark waits, polling with a
 * "keyheap: ..." warning once, for a thread to leave; when this very
 * thread is inside every domain that holds a key (nesting more domains
 * than keys), no key can ever come free, and that is a fatal error.
 */
#include "config.h"

#include <errno.h>
#include <time.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/pkey.h"
#include "alloc/region.h"
#include "domains/domain.h"
#include "domains/keys.h"
#include "domains/rounds.h"
#include "domains/thread.h"

static struct entry {
    int key;
    struct khi_heap *owner; /* the resident domain that holds it, or NULL: spare */
} pool[15];
static unsigned pool_len, hand;
static unsigned misses, evictions, sweeps;

static unsigned bit_of(int key)
{
    return 1u << (2 * key);
}

/* A spare entry of the pool, or a fresh key in a new one; NULL with errno
 * when there is neither. */
static struct entry *spare(void)
{
    for (unsigned i = 0; i < pool_len; i++)
        if (pool[i].owner == NULL)
            return &pool[i];
    if (pool_len >= khi_conf_get()->keys) {
        errno = ENOSPC;
        return NULL;
    }
    int key = khi_pkey_alloc();
    if (key < 0)
        return NULL;
    pool[pool_len] = (struct entry){key, NULL};
    __atomic_store_n(&khi_keys_ad_mask, khi_keys_ad_mask | bit_of(key), __ATOMIC_RELAXED);
    return &pool[pool_len++];
}

static struct entry *entry_of(const struct khi_heap *d)
{
    for (unsigned i = 0; i < pool_len; i++)
        if (pool[i].owner == d)
            return &pool[i];
    return NULL;
}

int khi_keys_for_new(void)
{
    struct entry *e = spare();
    if (e != NULL)
        return e->key;
    return pool_len != 0 ? KHI_PKEY_PARKED : -1;
}

void khi_keys_bind(struct khi_heap *d, int key)
{
    for (unsigned i = 0; i < pool_len; i++)
        if (pool[i].key == key)
            pool[i].owner = d;
}

void khi_keys_unbind(const struct khi_heap *d)
{
    struct entry *e = entry_of(d);
    if (e == NULL)
        return;
    *e = pool[--pool_len];
    if (hand >= pool_len)
        hand = 0;
}

/* Step 2 of an eviction (above): takes e's key from its domain, which is
 * clean (its used word clear since a sweep) and which no thread seemed to
 * use.  Returns whether it did (e is spare now). */
static bool evict(struct entry *e)
{
    struct khi_heap *v = e->owner;
    __atomic_store_n(&v->abi.live, KEYHEAP_ABI_PARKED, __ATOMIC_RELEASE);
    /* The barrier: a thread that enters v from now on reads it parked, or
     * its frame (and its used store), or its busy mark, is seen here. */
    bool taken = !khi_threads_using(v, true) &&
                 __atomic_load_n(&v->abi.used, __ATOMIC_RELAXED) == 0 && !khi_region_park(v);
    if (!taken) {
        __atomic_store_n(&v->abi.live, KEYHEAP_ABI_LIVE, __ATOMIC_RELEASE);
        return false;
    }
    e->owner = NULL;
    evictions++;
    return true;
}

/* Step 1: every resident domain is made clean but where a task may have
 * its key open.  Returns false when a task did not answer (or kept
 * reopening a key): then no domain is clean. */
static bool sweep(void)
{
    unsigned bits = 0;
    for (unsigned i = 0; i < pool_len; i++) {
        struct khi_heap *v = pool[i].owner;
        if (v == NULL || khi_domain_key_told(v))
            continue;
        bits |= bit_of(pool[i].key);
        __atomic_store_n(&v->abi.used, 0u, __ATOMIC_RELAXED);
    }
    if (bits == 0)
        return true;
    sweeps++;
    if (khi_sweep_keys(bits) == 0)
        return true;
    /* Some task did not answer: what this sweep cleared is used again. */
    for (unsigned i = 0; i < pool_len; i++)
        if (pool[i].owner != NULL && (bits & bit_of(pool[i].key)))
            __atomic_store_n(&pool[i].owner->abi.used, 1u, __ATOMIC_RELAXED);
    return false;
}

/* A victim's key by the clock: a spare key, or one taken from a clean
 * domain nobody uses; else, after a sweep, the same again.  NULL when
 * every owner is in use, or (*unanswered) when a task did not answer the
 * sweep. */
static struct entry *victim(bool *unanswered)
{
    for (unsigned pass = 0; pass < 2; pass++) {
        for (unsigned step = 0; step < pool_len; step++) {
            struct entry *e = &pool[hand];
            hand = (hand + 1) % pool_len;
            struct khi_heap *v = e->owner;
            if (v == NULL)
                return e;
            if (khi_domain_key_told(v) || __atomic_load_n(&v->abi.used, __ATOMIC_RELAXED) != 0 ||
                khi_threads_using(v, false))
                continue;
            if (evict(e))
                return e;
        }
        if (pass == 0 && !sweep()) {
            *unanswered = true;
            return NULL;
        }
    }
    return NULL;
}

/* Why no key can be had now: a wait helps only when some key's owner is
 * in use by a thread that may leave it: not pinned, not inside by this
 * thread, not only inside by threads that wait for a key themselves. */
static enum khi_keys_wait why_not(void)
{
    if (pool_len == 0)
        return KHI_KEYS_NONE;
    bool others = false;
    for (unsigned i = 0; i < pool_len; i++) {
        const struct khi_heap *v = pool[i].owner;
        if (v == NULL)
            return KHI_KEYS_WAIT;
        if (khi_domain_key_told(v) || khi_thread_inside_self(v))
            continue;
        if (!khi_threads_stuck_in(v))
            return KHI_KEYS_WAIT;
        others = true;
    }
    return others ? KHI_KEYS_CYCLE : KHI_KEYS_DEADLOCK;
}

bool khi_keys_resident(struct khi_heap *d, enum khi_keys_wait *why)
{
    if (khi_heap_resident(d))
        return false;
    struct entry *e = spare();
    bool unanswered = false;
    if (e == NULL && pool_len != 0)
        e = victim(&unanswered);
    if (e == NULL) {
        *why = unanswered ? KHI_KEYS_UNANSWERED : why_not();
        return true;
    }
    if (khi_region_resume(d, e->key)) {
        *why = KHI_KEYS_FAILED;
        return true;
    }
    e->owner = d;
    misses++;
    __atomic_store_n(&d->abi.used, 1u, __ATOMIC_RELAXED);
    __atomic_store_n(&d->abi.live, KEYHEAP_ABI_LIVE, __ATOMIC_RELEASE);
    return false;
}

void khi_heap_unpark(struct khi_heap *h)
{
    static bool warned;
    int saved_errno = errno; /* free, realloc and enter leave errno alone */
    struct timespec step = {0, 50000};
    for (;;) {
        enum khi_keys_wait why = KHI_KEYS_WAIT;
        sigset_t mask = khi_domains_lock_take();
        khi_thread_waiting(true); /* before the check: see why_not */
        bool failed = khi_heap_live(h) && khi_keys_resident(h, &why);
        unsigned cap = khi_conf_get()->keys, held = pool_len;
        if (!failed)
            khi_thread_waiting(false);
        char n[24], c[24];
        /* The fatal errors are raised with the lock held: another thread
         * that would find the same never prints it a second time. */
        if (failed && why == KHI_KEYS_DEADLOCK)
            khi_fatal("domain \"", h->name,
                      "\" needs a protection key, but every one of keyheap's ", khi_dec(n, held),
                      " (KEYHEAP_CONF keys:", khi_dec(c, cap),
                      ") is held by a domain this thread is inside or whose key "
                      "keyheap_domain_pkey gave out: this thread cannot nest more domains "
                      "than keyheap has keys",
                      (char *)NULL);
        if (failed && why == KHI_KEYS_CYCLE)
            khi_fatal("domain \"", h->name,
                      "\" needs a protection key, but every one of keyheap's ", khi_dec(n, held),
                      " (KEYHEAP_CONF keys:", khi_dec(c, cap),
                      ") is held by a domain this thread is inside, whose key "
                      "keyheap_domain_pkey gave out, or that only threads waiting for a key "
                      "themselves are inside: threads inside domains wait for each other's keys "
                      "for ever",
                      (char *)NULL);
        if (failed && why == KHI_KEYS_NONE)
            khi_fatal("domain \"", h->name,
                      "\" needs a protection key, and keyheap holds none and the kernel gives "
                      "none (other code holds every key)",
                      (char *)NULL);
        if (failed && why == KHI_KEYS_FAILED)
            khi_fatal("domain \"", h->name,
                      "\": cannot tag its memory with a protection key "
                      "(pkey_mprotect or mlock failed)",
                      (char *)NULL);
        khi_domains_lock_drop(mask);
        if (!failed) {
            errno = saved_errno;
            return;
        }
        static bool warned_unanswered;
        if (why == KHI_KEYS_UNANSWERED &&
            !__atomic_exchange_n(&warned_unanswered, true, __ATOMIC_RELAXED))
            khi_warn("domain \"", h->name,
                     "\" waits for a protection key: a thread did not answer keyheap's PKRU "
                     "signal within a second (it blocks the signal, or is stopped), so no key "
                     "can move; it tries again (this warning is printed once)",
                     (char *)NULL);
        else if (why == KHI_KEYS_WAIT && !__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
            khi_warn("domain \"", h->name, "\" waits for a protection key: each of keyheap's ",
                     khi_dec(n, held), " (KEYHEAP_CONF keys:", khi_dec(c, cap),
                     ") is held by a domain another thread is inside; it waits until one "
                     "leaves (this warning is printed once)",
                     (char *)NULL);
        nanosleep(&step, NULL);
        if (step.tv_nsec < 1000000)
            step.tv_nsec *= 2;
    }
}

void khi_keys_counters(struct khi_keys_counters *out)
{
    sigset_t mask = khi_domains_lock_take();
    *out = (struct khi_keys_counters){pool_len, misses, evictions, sweeps};
    khi_domains_lock_drop(mask);
}
