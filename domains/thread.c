/*
 * domains/thread.c - per-thread domain state: the registry of threads that
 * entered a domain or used its heap, their explicit jemalloc caches (one per
 * thread and domain), the out-of-line paths of enter and leave, the audit,
 * and the thread-exit hook.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/malloc.h"
#include "alloc/pkey.h"
#include "domains/thread.h"
#include "domains/watchdog.h"

KEYHEAP_API __thread struct keyheap_abi_thread keyheap_abi_self;

/* A registered thread: one that entered a domain or made a cache for one.
 * The node is ordinary memory of the default heap, not the thread's TLS:
 * a node whose thread died without its exit hook's last round (a thread
 * that first used a domain in a late destructor round) is found dead by
 * its tid (tgkill ESRCH) and dropped without touching the dead TLS. */
struct khi_thread {
    struct khi_thread *next, *prev;
    struct keyheap_abi_thread *abi;
    struct khi_tcache *tcs;
    const unsigned *busy; /* its khi_heap_busy */
    pid_t tid;
};

static __thread struct khi_thread *me; /* this thread's node, or NULL */
static struct khi_thread registry = {&registry, &registry, NULL, NULL, NULL, 0};
/* The registry is kept under alloc/'s lock of every thread's caches: it
 * is the list through which a teardown reaches them. */
#define threads_lock khi_tcache_lock
static pthread_key_t exit_key;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool have_membarrier;

static void unlink_thread(struct khi_thread *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    khi_own_free(t);
}

/* Drops the nodes of threads that are gone.  pre: the threads lock. */
static void sweep_dead(void)
{
    pid_t pid = getpid();
    for (struct khi_thread *t = registry.next, *next; t != &registry; t = next) {
        next = t->next;
        if (syscall(SYS_tgkill, pid, t->tid, 0) != 0 && errno == ESRCH)
            unlink_thread(t);
    }
}

/* The exiting thread leaves every domain it is still inside (pthread_exit
 * or cancellation inside a domain): its remaining code runs closed, and a
 * later enter takes the slow path, which refuses (exiting). */
static void leave_all_at_exit(void)
{
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    if ((t->mode == KEYHEAP_ABI_PKU || t->mode == KEYHEAP_ABI_VERIFY) && t->depth != 0)
        keyheap_abi_wrpkru(keyheap_abi_rdpkru() | khi_keys_held());
    t->target = NULL;
    for (unsigned i = 0; i < t->depth && i < KEYHEAP_MAX_DEPTH; i++)
        t->stack[i].domain = NULL;
    t->depth = 0;
    t->mode = KEYHEAP_ABI_UNSET;
}

/*
 * pthread key destructor: the thread is exiting.  It stays registered (so
 * keyheap_domain_destroy sees its enters) through every round of
 * destructors glibc runs: other keys' destructors may still enter domains
 * (cancellation cleanups ran before the first round).  The hook re-arms
 * itself for each of the PTHREAD_DESTRUCTOR_ITERATIONS rounds and
 * unregisters in the last, after closing whatever the thread still has
 * open.
 */
static void thread_exit(void *arg)
{
    static __thread unsigned rounds;
    if (++rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(exit_key, arg);
        return;
    }
    /* A thread that never registered shares nothing: no lock. */
    bool registered = me != NULL;
    if (registered) {
        pthread_mutex_lock(&threads_lock);
        khi_tcache_drop_all(me->tcs);
        unlink_thread(me);
        me = NULL;
    }
    /* Frees after this point (later destructors) use no cache. */
    khi_tcache_final = true;
    khi_tcache_enlisted = true;
    leave_all_at_exit();
    if (registered)
        pthread_mutex_unlock(&threads_lock);
}

/* The hook counts glibc's destructor rounds by being called in each, so
 * it must be armed from the first: a thread that first used a domain in a
 * later round would otherwise never reach its last round, and its node
 * would outlive its TLS.  The value only needs to be non-NULL. */
static char armed;

void khi_thread_arm_exit(void)
{
    khi_threads_init();
    if (pthread_getspecific(exit_key) == NULL)
        pthread_setspecific(exit_key, &armed);
}

unsigned khi_thread_tids(pid_t *out, unsigned max)
{
    unsigned n = 0;
    pthread_mutex_lock(&threads_lock);
    sweep_dead();
    for (struct khi_thread *t = registry.next; t != &registry && n < max; t = t->next)
        out[n++] = t->tid;
    pthread_mutex_unlock(&threads_lock);
    return n;
}

bool khi_thread_registered(pid_t tid)
{
    bool found = false;
    pthread_mutex_lock(&threads_lock);
    sweep_dead();
    for (struct khi_thread *t = registry.next; t != &registry && !found; t = t->next)
        found = t->tid == tid;
    pthread_mutex_unlock(&threads_lock);
    return found;
}

static void register_self(void)
{
    if (me != NULL || khi_tcache_final)
        return;
    khi_tcache_enlisted = true;
    khi_threads_init();
    struct khi_thread *t = khi_own_calloc(1, sizeof *t);
    if (t == NULL)
        khi_fatal("out of memory for the thread registry: a thread that enters a domain must "
                  "be visible to keyheap_domain_destroy",
                  (char *)NULL);
    t->abi = &keyheap_abi_self;
    t->tcs = khi_tcaches;
    t->busy = &khi_heap_busy;
    t->tid = (pid_t)syscall(SYS_gettid);
    pthread_mutex_lock(&threads_lock);
    t->next = registry.next;
    t->prev = &registry;
    registry.next->prev = t;
    registry.next = t;
    me = t;
    pthread_mutex_unlock(&threads_lock);
    pthread_setspecific(exit_key, t);
}

void khi_thread_register(void)
{
    register_self();
    khi_tcache_enlisted = true;
}

/* A full memory barrier on every CPU running a thread of this process. */
static void barrier_all_threads(void)
{
    if (have_membarrier && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return;
    /* Without membarrier: changing a page's protection makes the kernel
     * flush the TLB of every CPU using this address space, by interrupt,
     * which serialises them as well. */
    static char *page;
    if (page == NULL)
        page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && page != NULL) {
        *(volatile char *)page = 1;
        mprotect(page, 4096, PROT_READ);
        mprotect(page, 4096, PROT_READ | PROT_WRITE);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool khi_threads_inside(const struct khi_heap *d)
{
    bool inside = false;
    pthread_mutex_lock(&threads_lock);
    sweep_dead();
    barrier_all_threads();
    for (struct khi_thread *t = registry.next; t != &registry && !inside; t = t->next) {
        unsigned depth = __atomic_load_n(&t->abi->depth, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < depth && i < KEYHEAP_MAX_DEPTH; i++)
            if (((uintptr_t)__atomic_load_n(&t->abi->stack[i].domain, __ATOMIC_RELAXED) &
                 ~(uintptr_t)1) == (uintptr_t)d)
                inside = true;
    }
    pthread_mutex_unlock(&threads_lock);
    return inside;
}

void khi_threads_wait_idle(const struct khi_heap *d)
{
    struct timespec step = {0, 100000};
    for (;;) {
        bool busy = false;
        pthread_mutex_lock(&threads_lock);
        sweep_dead();
        barrier_all_threads();
        for (struct khi_thread *t = registry.next; t != &registry && !busy; t = t->next)
            busy = __atomic_load_n(t->busy, __ATOMIC_RELAXED) == d->slot + 1;
        pthread_mutex_unlock(&threads_lock);
        if (!busy)
            return;
        nanosleep(&step, NULL);
    }
}

void khi_threads_drop_tcaches(const struct khi_heap *d)
{
    pthread_mutex_lock(&threads_lock);
    sweep_dead();
    for (struct khi_thread *t = registry.next; t != &registry; t = t->next)
        khi_tcache_drop(t->tcs, d);
    pthread_mutex_unlock(&threads_lock);
}

/* fork: the child has one thread; the others' caches are unreachable. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&khi_domains_lock);
    pthread_mutex_lock(&threads_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&threads_lock);
    pthread_mutex_unlock(&khi_domains_lock);
}

static void fork_child(void)
{
    struct khi_thread *t = registry.next;
    while (t != &registry) {
        struct khi_thread *next = t->next;
        if (t != me) {
            khi_tcache_drop_all(t->tcs);
            unlink_thread(t);
        }
        t = next;
    }
    if (me != NULL)
        me->tid = (pid_t)syscall(SYS_gettid);
    pthread_mutex_unlock(&threads_lock);
    pthread_mutex_unlock(&khi_domains_lock);
    khi_watchdog_after_fork();
}

static void init(void)
{
    khi_tcache_enlist = khi_thread_register;
    if (pthread_key_create(&exit_key, thread_exit) != 0)
        khi_fatal("pthread_key_create failed: no thread-exit hook for domain caches", (char *)NULL);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    have_membarrier = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void khi_threads_init(void)
{
    pthread_once(&init_once, init);
}

/* ------------------------------------------------------- enter and leave */

static const char *name_or_address(const keyheap_domain_t *d, char *buf)
{
    const struct khi_heap *dom = khi_heap_entry(d);
    return dom != NULL ? dom->name : khi_hex(buf, (uintptr_t)d);
}

/* All closed, then every frame of the stack applied in order, as
 * keyheap_abi_enter applies it. */
unsigned khi_thread_shadow(unsigned hw)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned pkru = khi_pkru_close(hw, khi_keys_held());
    for (unsigned i = 0; i < t->depth && i < KEYHEAP_MAX_DEPTH; i++) {
        const struct khi_heap *d = khi_frame_heap(&t->stack[i]);
        if (d == NULL)
            continue; /* an enter that has not written its frame yet */
        unsigned ad = d->abi.ad_bit;
        pkru = t->stack[i].readonly ? (pkru & ~ad) | ((pkru & ad) << 1) : pkru & ~(ad * 3u);
    }
    return pkru;
}

const char *khi_key_rights(unsigned pkru, unsigned key)
{
    unsigned bits = (pkru >> (2 * key)) & 3u;
    return bits & 1u ? "none" : bits & 2u ? "read-only" : "read-write";
}

/* The access-disable bits of the keys to which pkru gives more than want:
 * reading where want has the key closed, or writing where want has it
 * closed or read-only. */
static unsigned more_rights(unsigned pkru, unsigned want)
{
    const unsigned ad = 0x55555555u;
    unsigned reads = want & ~pkru & ad;
    unsigned writes = ~pkru & ~(pkru >> 1) & (want | want >> 1) & ad;
    return reads | writes;
}

/* verify mode: before every enter and leave, the register must give no key
 * more than the shadow does (what: "keyheap_enter(\"x\")", ...).  Fewer
 * is no mismatch: a signal handler runs with every key closed while the
 * domain stack is still the interrupted code's. */
static void verify(const char *op, const struct khi_heap *d)
{
    unsigned hw = keyheap_abi_rdpkru(), want = khi_thread_shadow(hw);
    unsigned more = more_rights(hw, want);
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

KEYHEAP_API void keyheap_abi_enter_slow(keyheap_domain_t *d, unsigned readonly)
{
    struct khi_heap *dom =
        khi_domain_check(d, readonly ? "keyheap_enter_ro" : "keyheap_enter");
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    if (t->depth >= KEYHEAP_MAX_DEPTH)
        khi_fatal(readonly ? "keyheap_enter_ro(\"" : "keyheap_enter(\"", dom->name,
                  "\"): domains nested deeper than KEYHEAP_MAX_DEPTH (64)", (char *)NULL);
    if (t->mode == KEYHEAP_ABI_UNSET) {
        if (khi_tcache_final)
            khi_fatal(readonly ? "keyheap_enter_ro(\"" : "keyheap_enter(\"", dom->name,
                      "\") in a thread that is exiting, after keyheap's last thread-exit hook "
                      "(the last round of thread-specific-data destructors): enter domains "
                      "in earlier destructors or before the thread ends",
                      (char *)NULL);
        register_self();
        t->mode = !khi_pku_usable()        ? KEYHEAP_ABI_SOFT
                  : khi_conf_get()->verify ? KEYHEAP_ABI_VERIFY
                                           : KEYHEAP_ABI_PKU;
    }
    if (t->mode != KEYHEAP_ABI_VERIFY) {
        keyheap_abi_enter(d, readonly);
        return;
    }
    /* Verify mode: what keyheap_abi_enter does, with the check first and
     * the frame marked, so that its leave comes to keyheap_abi_leave_slow. */
    verify(readonly ? "keyheap_enter_ro" : "keyheap_enter", dom);
    struct keyheap_abi_frame *f = &t->stack[t->depth];
    t->depth++; /* first, as keyheap_abi_enter does */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    f->domain = (keyheap_domain_t *)((uintptr_t)d | 1);
    f->target = t->target;
    f->readonly = readonly;
    unsigned pkru = keyheap_abi_rdpkru(), ad = dom->abi.ad_bit;
    f->pkru = pkru;
    keyheap_abi_wrpkru(readonly ? (pkru & ~ad) | ((pkru & ad) << 1) : pkru & ~(ad * 3u));
    if (!readonly)
        t->target = d;
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

/* --------------------------------------------------------------- audit */

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

KEYHEAP_API int keyheap_audit(unsigned flags)
{
    if (!khi_pku_usable())
        return 0;
    unsigned hw = keyheap_abi_rdpkru();
    unsigned want = khi_thread_shadow(hw);
    unsigned allocated = khi_pkeys_allocated();
    bool say = flags & KEYHEAP_AUDIT_REPORT;
    const char *fix = flags & KEYHEAP_AUDIT_REPAIR ? "; repaired" : "";
    int mismatches = 0;
    for (unsigned key = 1; key < 16; key++) {
        unsigned bits = 3u << (2 * key), ad = 1u << (2 * key);
        if (khi_keys_held() & ad) {
            const struct khi_heap *owner = khi_domain_of_key(key);
            if ((hw ^ want) & bits) {
                mismatches++;
                if (say && owner != NULL)
                    report(fix, key, owner, hw, want);
                else if (say)
                    report(flags & KEYHEAP_AUDIT_REPAIR
                               ? ", kept by keyheap after a destroy, is open (now closed): "
                               : ", kept by keyheap after a destroy, is open: ",
                           key, NULL, hw, want);
            }
        } else if (!(allocated & (1u << key))) {
            if (!(hw & ad)) {
                mismatches++;
                want = (want & ~bits) | ad;
                if (say)
                    report(flags & KEYHEAP_AUDIT_REPAIR
                               ? ", which no code has allocated, is open (now closed): "
                               : ", which no code has allocated, is open: ",
                           key, NULL, hw, want);
            }
        } else if (say) {
            report(" belongs to other code (foreign), left alone: ", key, NULL, hw, want);
        }
    }
    if (mismatches != 0 && (flags & KEYHEAP_AUDIT_REPAIR))
        keyheap_abi_wrpkru(want);
    return mismatches;
}
