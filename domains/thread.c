/*
 * domains/thread.c - the registry of threads that entered a domain or used
 * a domain's heap (their caches are alloc/tcache.c's), what is asked of all
 * of them (is any inside a domain, is any busy in its heap), the
 * thread-exit hook and the fork handlers.
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
#include "alloc/region.h"
#include "domains/domain.h"
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
    bool waiting; /* waits for a protection key (khi_heap_unpark) */
    bool stray;   /* had keys of keyheap's open that its stack did not name
                     when it registered: the key cache's sweeps signal it */
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

/* Whether this thread has a key of keyheap's open that its domain stack
 * does not name, but for keys keyheap opened for its own use: a thread
 * made without keyheap's pthread_create (raw clone with a TLS of its own)
 * got its creator's PKRU, and code may have run WRPKRU itself.  Such a
 * thread is signalled by the key cache's sweeps, which read the other
 * registered threads' stacks instead (verify mode still finds the key at
 * the thread's next enter or leave). */
static bool has_stray_keys(void)
{
    unsigned held = khi_keys_held() & ~(khi_internal_open & 0x55555555u);
    if (held == 0 || !khi_pku_usable())
        return false;
    const struct keyheap_abi_thread *self = &keyheap_abi_self;
    for (unsigned i = 0; i < self->depth && i < KEYHEAP_MAX_DEPTH; i++) {
        const struct khi_heap *h = khi_frame_heap(&self->stack[i]);
        if (h != NULL)
            held &= ~h->abi.ad_bit;
    }
    return (~keyheap_abi_rdpkru() & held) != 0;
}

static void register_self(void)
{
    if (me != NULL || khi_tcache_final)
        return;
    bool stray = has_stray_keys();
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
    t->stray = stray;
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

/* alloc/'s way to tell the registry of a thread that uses a heap. */
void khi_tcache_enlist(void)
{
    khi_thread_register();
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

/* Whether the domain stack abi names d (read without a lock: another
 * thread's stack may change under the reader, which asks again with a
 * barrier where it matters). */
static bool stack_names(const struct keyheap_abi_thread *abi, const struct khi_heap *d)
{
    unsigned depth = __atomic_load_n(&abi->depth, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < depth && i < KEYHEAP_MAX_DEPTH; i++)
        if (khi_frame_heap(&abi->stack[i]) == d)
            return true;
    return false;
}

/* Whether registered thread t is inside d or busy in its heap. */
static bool thread_uses(const struct khi_thread *t, const struct khi_heap *d)
{
    return __atomic_load_n(t->busy, __ATOMIC_RELAXED) == d->slot + 1 || stack_names(t->abi, d);
}

bool khi_threads_inside(const struct khi_heap *d)
{
    bool inside = false;
    pthread_mutex_lock(&threads_lock);
    sweep_dead();
    barrier_all_threads();
    for (struct khi_thread *t = registry.next; t != &registry && !inside; t = t->next)
        inside = stack_names(t->abi, d);
    pthread_mutex_unlock(&threads_lock);
    return inside;
}

bool khi_threads_using(const struct khi_heap *d, bool barrier)
{
    if (khi_thread_inside_self(d))
        return true;
    bool using = false;
    pthread_mutex_lock(&threads_lock);
    if (barrier)
        barrier_all_threads();
    for (struct khi_thread *t = registry.next; t != &registry && !using; t = t->next)
        using = thread_uses(t, d);
    pthread_mutex_unlock(&threads_lock);
    return using;
}

unsigned khi_threads_sweep(unsigned ad_bits, pid_t *tids, unsigned max)
{
    unsigned n = 0;
    pthread_mutex_lock(&threads_lock);
    sweep_dead();
    barrier_all_threads();
    for (struct khi_thread *t = registry.next; t != &registry; t = t->next) {
        khi_stack_keep(t->abi, __atomic_load_n(&t->abi->depth, __ATOMIC_RELAXED), ad_bits);
        if (t->stray)
            continue;
        if (n < max)
            tids[n] = t->tid;
        n++;
    }
    pthread_mutex_unlock(&threads_lock);
    return n;
}

void khi_thread_waiting(bool waiting)
{
    if (me != NULL)
        __atomic_store_n(&me->waiting, waiting, __ATOMIC_RELAXED);
}

bool khi_threads_stuck_in(const struct khi_heap *d)
{
    bool used = false, stuck = true;
    pthread_mutex_lock(&threads_lock);
    for (struct khi_thread *t = registry.next; t != &registry && stuck; t = t->next)
        if (thread_uses(t, d)) {
            used = true;
            stuck = __atomic_load_n(&t->waiting, __ATOMIC_RELAXED);
        }
    pthread_mutex_unlock(&threads_lock);
    return used && stuck;
}

bool khi_thread_inside_self(const struct khi_heap *d)
{
    return stack_names(&keyheap_abi_self, d);
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
    khi_region_after_fork();
    pthread_mutex_unlock(&threads_lock);
    pthread_mutex_unlock(&khi_domains_lock);
    khi_watchdog_after_fork();
}

static void init(void)
{
    if (pthread_key_create(&exit_key, thread_exit) != 0)
        khi_fatal("pthread_key_create failed: no thread-exit hook for domain caches", (char *)NULL);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    have_membarrier = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void khi_threads_init(void)
{
    pthread_once(&init_once, init);
}
