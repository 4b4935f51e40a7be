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
 * pool: every enter sets its domain's `used` word (a plain store, once per
 * sweep), the clock clears it and passes such a domain over once, and a
 * domain some thread is inside, or busy in, or whose key was given out
 * (keyheap_domain_pkey: pages outside keyheap may carry it), is never a
 * victim.  Eviction:
 *
 *   1. the victim is marked parked (live = KEYHEAP_ABI_PARKED), and its key
 *      is put among the kept keys (khi_keys_kept), which rounds may close;
 *   2. a round of keyheap's PKRU signal (domains/rounds.c) reaches every
 *      task of the process.  Each handler runs at one instruction of its
 *      thread: if the thread's domain stack names the victim, or it is busy
 *      in the victim's heap, it keeps the key and refuses; otherwise it
 *      closes the key in its PKRU and saved frames.  An enter writes its
 *      frame before it reads the domain's state (include/keyheap.h), and a
 *      busy mark is set before the residency check, so a thread that did
 *      not refuse reads the victim parked from then on and comes here;
 *   3. any refusal (or a task that did not answer, or a key still reopened
 *      after the round's passes) undoes 1: the victim stays resident and the
 *      clock moves on;
 *   4. the victim's memory is parked (one pkey_mprotect of its used range
 *      to PROT_NONE, key 0), so no page carries the key any more;
 *   5. the newcomer's committed runs are tagged with the key (one
 *      pkey_mprotect per run; a heap's region is contiguous and jemalloc
 *      commits it mostly in one piece), then ad_bit is set and live says
 *      KEYHEAP_ABI_LIVE (release): an enter reads live before ad_bit.
 *
 * So a thread can never hold rights to a key that moved to another domain:
 * after step 2 every task has the key closed, or is inside the victim and
 * the key does not move; and no task can open it again for the victim,
 * which reads as parked.  The key is never freed while pages carry it
 * (step 4 comes before step 5, and destroy frees only after its own round).
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
static unsigned misses, evictions;

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

/* Steps 1 to 4 of the eviction of e's domain (above).  Returns
 * KHI_EVICT_CLOSED when the key was taken (e is spare now). */
static enum khi_evict_round evict(struct entry *e)
{
    struct khi_heap *v = e->owner;
    unsigned bit = bit_of(e->key);
    __atomic_store_n(&v->abi.live, KEYHEAP_ABI_PARKED, __ATOMIC_RELEASE);
    __atomic_store_n(&khi_keys_kept, khi_keys_kept | bit, __ATOMIC_RELEASE);
    enum khi_evict_round r = khi_close_key_evicting(bit, v);
    if (r == KHI_EVICT_CLOSED && khi_region_park(v))
        r = KHI_EVICT_REFUSED; /* not parked: it keeps its key */
    __atomic_store_n(&khi_keys_kept, khi_keys_kept & ~bit, __ATOMIC_RELEASE);
    if (r != KHI_EVICT_CLOSED) {
        __atomic_store_n(&v->abi.live, KEYHEAP_ABI_LIVE, __ATOMIC_RELEASE);
        return r;
    }
    e->owner = NULL;
    evictions++;
    return r;
}

/* A victim's key by the clock: two sweeps, the first may only clear used
 * words.  NULL when every owner is in use, or (*unanswered) when a task
 * did not answer a round: each round waits a second for it, so the search
 * stops there. */
static struct entry *victim(bool *unanswered)
{
    for (unsigned step = 0; step < 2 * pool_len + 1; step++) {
        struct entry *e = &pool[hand];
        hand = (hand + 1) % pool_len;
        struct khi_heap *v = e->owner;
        if (v == NULL)
            return e;
        if (khi_domain_key_told(v))
            continue;
        if (__atomic_load_n(&v->abi.used, __ATOMIC_RELAXED) != 0) {
            __atomic_store_n(&v->abi.used, 0u, __ATOMIC_RELAXED);
            continue;
        }
        if (khi_threads_using(v))
            continue;
        enum khi_evict_round r = evict(e);
        if (r == KHI_EVICT_CLOSED)
            return e;
        if (r == KHI_EVICT_UNANSWERED) {
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
    if (khi_region_resume(d, e->key) == 0) {
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
            khi_fatal("domain \"", h->name, "\" needs a protection key, but every one of keyheap's ",
                      khi_dec(n, held), " (KEYHEAP_CONF keys:", khi_dec(c, cap),
                      ") is held by a domain this thread is inside or whose key "
                      "keyheap_domain_pkey gave out: this thread cannot nest more domains "
                      "than keyheap has keys",
                      (char *)NULL);
        if (failed && why == KHI_KEYS_CYCLE)
            khi_fatal("domain \"", h->name, "\" needs a protection key, but every one of keyheap's ",
                      khi_dec(n, held), " (KEYHEAP_CONF keys:", khi_dec(c, cap),
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
            khi_fatal("domain \"", h->name, "\": cannot tag its memory with a protection key "
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
    *out = (struct khi_keys_counters){pool_len, misses, evictions};
    khi_domains_lock_drop(mask);
}
