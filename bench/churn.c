/*
 * bench/churn.c - a malloc/free churn benchmark for any allocator.
 *
 * The program is linked to no allocator: bench/run.sh picks one with
 * LD_PRELOAD (or none, for glibc), and this program reports which shared
 * object really provides malloc, so a preload that silently did not take
 * effect is caught.
 *
 * Usage: churn WORKLOAD THREADS [-n OPS] [-p POOL] [-r REPS] [-R ROUNDS]
 *
 * Workloads (every size comes from one skewed distribution, see size_pick):
 *   churn    each thread keeps POOL live blocks and OPS times frees a random
 *            one and allocates a new one in its place, writing to it.
 *   xthread  blocks cross threads: with 2 threads, one producer mallocs and
 *            writes OPS blocks and hands them through a single-producer,
 *            single-consumer ring to one consumer, which reads and frees
 *            them.  With 1 thread, that thread alternates the two roles on
 *            the same ring, a ring-full at a time: the same work and queue
 *            cost without the cross-thread free, so the two rows show what a
 *            remote free costs.
 *   stress   THREADS threads (e.g. 8 on 2 cores) live for one of ROUNDS
 *            rounds each; every operation makes a short-, medium- or
 *            long-lived object, some are swapped through a shared exchange
 *            array for another thread to free, and each thread's medium-lived
 *            objects are inherited, and freed, by a thread of the next round
 *            after their allocating thread has exited.
 *
 * One line of key=value pairs is printed: ns_per_op is wall time of the
 * timed phase divided by the number of malloc+free pairs (all threads
 * together), the median over REPS repetitions in this process;
 * maxrss_kib is the process's peak RSS (getrusage).  Peak RSS belongs to the
 * whole process, so run each (workload, allocator) in a process of its own.
 * For judging noise it also prints cpu_ns_per_op (CPU time of all threads
 * per pair over the same phase; spinning on the ring counts) and nivcsw, the
 * number of involuntary context switches (preemptions) during the runs,
 * and proc_cpu_ms, the CPU time of the whole process, from which run.sh
 * tells how much of the machine other jobs took meanwhile, and for runs with
 * 2 or more threads xcore_rtt_ns, the cache-line round trip between the
 * first two CPUs just before and just after (see xcore_rtt_ns).
 *
 * The benchmark's own bookkeeping (pools, ring, exchange array) comes from
 * mmap, not malloc, so only the workload's blocks reach the allocator.
 * All randomness is a fixed-seed xorshift per thread: every allocator gets
 * the same sequence of sizes and slots.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* dladdr, RTLD_DEFAULT */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CACHELINE 64
#define PAGE 4096u
#define SEED UINT64_C(0x6b657968656170) /* "keyheap" */
#define MAX_THREADS 64
#define MAX_REPS 31

/* ------------------------------------------------------------ utilities */

/* Writes "churn: MSG" with write(2), no allocation, and aborts. */
static _Noreturn void fatal(const char *msg)
{
    static const char prefix[] = "churn: ";
    ssize_t ignored = write(2, prefix, sizeof prefix - 1);
    ignored = write(2, msg, strlen(msg));
    ignored = write(2, "\n", 1);
    (void)ignored;
    abort();
}

/* Zeroed memory for the benchmark's own tables, from the kernel. */
static void *bk_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fatal("mmap of bookkeeping memory failed");
    return p;
}

static void bk_free(void *p, size_t bytes)
{
    munmap(p, bytes);
}

static double clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * A timed phase: wall clock and the whole process's CPU time (every thread,
 * jemalloc's background threads too) at its start and end.  Each thread
 * reads its own, right where its work starts and stops, and the phase is
 * the union of the threads' spans: a thread that wakes late from a barrier
 * on a busy machine cannot shrink or stretch it.
 */
struct span {
    double wall0, wall1, cpu0, cpu1;
};

static void span_begin(struct span *s)
{
    s->wall0 = clock_ns(CLOCK_MONOTONIC);
    s->cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void span_end(struct span *s)
{
    s->wall1 = clock_ns(CLOCK_MONOTONIC);
    s->cpu1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

/* Widens *into to cover *s as well. */
static void span_merge(struct span *into, const struct span *s)
{
    if (s->wall0 < into->wall0) into->wall0 = s->wall0;
    if (s->cpu0 < into->cpu0) into->cpu0 = s->cpu0;
    if (s->wall1 > into->wall1) into->wall1 = s->wall1;
    if (s->cpu1 > into->cpu1) into->cpu1 = s->cpu1;
}

static inline void cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

/* Spin briefly, then give the core away: 2 cores may host more threads. */
static inline void backoff(unsigned *spins)
{
    if (++*spins < 128)
        cpu_relax();
    else
        sched_yield();
}

/* ------------------------------------------------------------ randomness */

/* xorshift64*: small, fast, and the same on every run. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint64_t rng_seed(unsigned stream)
{
    uint64_t s = SEED ^ (UINT64_C(0x9E3779B97F4A7C15) * (stream + 1));
    return s ? s : 1;
}

/* Bounded value in [0, n) from the high bits (n far below 2^32). */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rng_next(s) >> 32) * n) >> 32);
}

/*
 * The size mix, skewed toward small blocks as real programs are:
 * 70% 8-128 B, 20% 129-512 B, 8% 513 B-4 KiB, 2% 4-64 KiB.  Mean about 1 KiB,
 * but the few large blocks hold most of the bytes.
 */
static inline size_t size_pick(uint64_t *s)
{
    uint32_t p = rng_below(s, 1000);
    if (p < 700)
        return 8 + rng_below(s, 121);
    if (p < 900)
        return 129 + rng_below(s, 384);
    if (p < 980)
        return 513 + rng_below(s, 3584);
    return 4097 + rng_below(s, 61440);
}

/* The stress mix: size_pick, and one in 500 objects 64 KiB-1 MiB. */
static inline size_t size_pick_wide(uint64_t *s)
{
    if (rng_below(s, 500) == 0)
        return 65537 + rng_below(s, 983040);
    return size_pick(s);
}

/* ------------------------------------------------------------ blocks */

/*
 * Every block is written when it is made and checked before it is freed:
 * the first 8 bytes hold its size and a check word, the last 8 their
 * complement, and one byte of every further page is written, so every page
 * of the block is really touched (and counted in RSS) at small cost.
 */
static inline uint64_t stamp_of(size_t n)
{
    return ((uint64_t)n << 32) | ((uint32_t)n * 0x9E3779B1u ^ 0xA5A5A5A5u);
}

static inline void block_fill(unsigned char *p, size_t n)
{
    uint64_t h = stamp_of(n);
    memcpy(p, &h, sizeof h);
    for (size_t off = PAGE; off + 8 < n; off += PAGE)
        p[off] = (unsigned char)(off >> 12);
    if (n >= 16) {
        h = ~h;
        memcpy(p + n - 8, &h, sizeof h);
    }
}

/* Returns the block's size after checking both stamps; aborts if broken. */
static inline size_t block_check(const unsigned char *p)
{
    uint64_t h, t;
    memcpy(&h, p, sizeof h);
    size_t n = (size_t)(h >> 32);
    if (n < 8 || h != stamp_of(n))
        fatal("a block's head stamp was overwritten");
    if (n >= 16) {
        memcpy(&t, p + n - 8, sizeof t);
        if (t != ~h)
            fatal("a block's tail stamp was overwritten");
    }
    return n;
}

static inline void *block_new(size_t n)
{
    unsigned char *p = malloc(n);
    if (p == NULL)
        fatal("malloc returned NULL");
    block_fill(p, n);
    return p;
}

static inline void block_free(void *p)
{
    block_check(p);
    free(p);
}

/* ------------------------------------------------------------ run state */

struct config {
    const char *workload;
    unsigned threads;
    unsigned long ops;    /* per thread (churn, stress round) or total */
    unsigned long pool;   /* live blocks per thread */
    unsigned reps;
    unsigned rounds;      /* stress only */
};

struct worker {
    const struct config *cfg;
    unsigned id;
    pthread_barrier_t *go;
    _Alignas(CACHELINE) unsigned long done;
    struct span span;
};

/* ------------------------------------------------------------ churn */

static void *churn_thread(void *arg)
{
    struct worker *w = arg;
    unsigned long pool = w->cfg->pool;
    void **slot = bk_alloc(pool * sizeof *slot);
    uint64_t rng = rng_seed(w->id);

    for (unsigned long i = 0; i < pool; i++)
        slot[i] = block_new(size_pick(&rng));
    pthread_barrier_wait(w->go);

    span_begin(&w->span);
    for (unsigned long i = 0; i < w->cfg->ops; i++) {
        uint32_t j = rng_below(&rng, (uint32_t)pool);
        block_free(slot[j]);
        slot[j] = block_new(size_pick(&rng));
    }
    span_end(&w->span);
    w->done = w->cfg->ops;
    pthread_barrier_wait(w->go);    /* nobody frees its pool early */

    for (unsigned long i = 0; i < pool; i++)
        block_free(slot[i]);
    bk_free(slot, pool * sizeof *slot);
    return NULL;
}

/* Runs fn on cfg->threads threads; returns the union of their timed
 * phases, and the pairs done in them in *pairs. */
static struct span run_phased(const struct config *cfg, void *(*fn)(void *),
                              unsigned long *pairs)
{
    pthread_t tid[MAX_THREADS];
    struct worker *w = bk_alloc(cfg->threads * sizeof *w);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, cfg->threads + 1);

    for (unsigned i = 0; i < cfg->threads; i++) {
        w[i] = (struct worker){ .cfg = cfg, .id = i, .go = &go };
        if (pthread_create(&tid[i], NULL, fn, &w[i]) != 0)
            fatal("pthread_create failed");
    }
    pthread_barrier_wait(&go);      /* everyone has filled its pool */
    pthread_barrier_wait(&go);      /* everyone has finished its ops */
    *pairs = 0;
    struct span all = w[0].span;
    for (unsigned i = 0; i < cfg->threads; i++) {
        pthread_join(tid[i], NULL);
        *pairs += w[i].done;
        span_merge(&all, &w[i].span);
    }
    pthread_barrier_destroy(&go);
    bk_free(w, cfg->threads * sizeof *w);
    return all;
}

/* ------------------------------------------------------------ xthread */

/*
 * Single-producer single-consumer ring of block pointers.  Each side keeps
 * its own index in a line of its own and a cached copy of the other's, and
 * publishes its index every RING_PUBLISH items, so the ring costs a few ns
 * per block, the same for every allocator.
 */
#define RING_CAP 1024u
#define RING_PUBLISH 16u

struct ring {
    _Alignas(CACHELINE) _Atomic unsigned long head;   /* consumer's */
    _Alignas(CACHELINE) _Atomic unsigned long tail;   /* producer's */
    _Alignas(CACHELINE) void *item[RING_CAP];
};

struct ring_producer {
    struct ring *r;
    unsigned long tail, head_seen;
};

struct ring_consumer {
    struct ring *r;
    unsigned long head, tail_seen;
};

static inline void ring_push(struct ring_producer *p, void *item)
{
    unsigned spins = 0;
    while (p->tail - p->head_seen == RING_CAP) {
        /* Full: publish everything first, so the consumer can drain it. */
        atomic_store_explicit(&p->r->tail, p->tail, memory_order_release);
        p->head_seen = atomic_load_explicit(&p->r->head, memory_order_acquire);
        if (p->tail - p->head_seen == RING_CAP)
            backoff(&spins);
    }
    p->r->item[p->tail % RING_CAP] = item;
    p->tail++;
    if (p->tail % RING_PUBLISH == 0)
        atomic_store_explicit(&p->r->tail, p->tail, memory_order_release);
}

static inline void ring_flush(struct ring_producer *p)
{
    atomic_store_explicit(&p->r->tail, p->tail, memory_order_release);
}

static inline void *ring_pop(struct ring_consumer *c)
{
    unsigned spins = 0;
    while (c->head == c->tail_seen) {
        c->tail_seen = atomic_load_explicit(&c->r->tail, memory_order_acquire);
        if (c->head == c->tail_seen)
            backoff(&spins);
    }
    void *item = c->r->item[c->head % RING_CAP];
    c->head++;
    if (c->head % RING_PUBLISH == 0 || c->head == c->tail_seen)
        atomic_store_explicit(&c->r->head, c->head, memory_order_release);
    return item;
}

struct xthread_shared {
    struct ring *ring;
    unsigned long ops;
    pthread_barrier_t go;
    struct span producer, consumer;
};

static void *xthread_producer(void *arg)
{
    struct xthread_shared *x = arg;
    struct ring_producer p = { .r = x->ring };
    uint64_t rng = rng_seed(0);
    pthread_barrier_wait(&x->go);
    span_begin(&x->producer);
    for (unsigned long i = 0; i < x->ops; i++)
        ring_push(&p, block_new(size_pick(&rng)));
    ring_flush(&p);
    span_end(&x->producer);
    return NULL;
}

static void *xthread_consumer(void *arg)
{
    struct xthread_shared *x = arg;
    struct ring_consumer c = { .r = x->ring };
    pthread_barrier_wait(&x->go);
    span_begin(&x->consumer);
    for (unsigned long i = 0; i < x->ops; i++)
        block_free(ring_pop(&c));
    span_end(&x->consumer);
    return NULL;
}

/* One thread, both roles: fill the ring, then drain it, until done. */
static void xthread_alternate(struct xthread_shared *x)
{
    struct ring_producer p = { .r = x->ring };
    struct ring_consumer c = { .r = x->ring };
    uint64_t rng = rng_seed(0);
    for (unsigned long done = 0; done < x->ops;) {
        unsigned long batch = x->ops - done < RING_CAP ? x->ops - done : RING_CAP;
        for (unsigned long i = 0; i < batch; i++)
            ring_push(&p, block_new(size_pick(&rng)));
        ring_flush(&p);
        for (unsigned long i = 0; i < batch; i++)
            block_free(ring_pop(&c));
        done += batch;
    }
}

static struct span run_xthread(const struct config *cfg, unsigned long *pairs)
{
    struct xthread_shared *x = bk_alloc(sizeof *x);
    x->ring = bk_alloc(sizeof *x->ring);
    x->ops = cfg->ops;
    struct span t;
    if (cfg->threads == 1) {
        span_begin(&t);
        xthread_alternate(x);
        span_end(&t);
    } else {
        pthread_t prod, cons;
        pthread_barrier_init(&x->go, NULL, 3);
        if (pthread_create(&prod, NULL, xthread_producer, x) != 0 ||
            pthread_create(&cons, NULL, xthread_consumer, x) != 0)
            fatal("pthread_create failed");
        pthread_barrier_wait(&x->go);
        pthread_join(prod, NULL);
        pthread_join(cons, NULL);
        t = x->producer;
        span_merge(&t, &x->consumer);
        pthread_barrier_destroy(&x->go);
    }
    *pairs = cfg->ops;
    bk_free(x->ring, sizeof *x->ring);
    bk_free(x, sizeof *x);
    return t;
}

/* ------------------------------------------------------------ stress */

/*
 * Per operation a thread draws one of:
 *   45% a short-lived object: made and freed at once;
 *   35% a medium-lived one: replaces a random slot of its pool, and the pool
 *       outlives the thread (the next round's thread i+1 inherits it);
 *   15% a shared one: swapped into a random cell of the exchange array, and
 *       whatever was there (usually another thread's) is freed;
 *    5% a long-lived one: replaces a random slot of a small table that lives
 *       for the whole run, shared by all rounds of the same thread index.
 */
#define XCHG_CELLS 4096u
#define LONG_SLOTS 256u

struct stress_shared {
    const struct config *cfg;
    _Atomic(void *) *xchg;             /* XCHG_CELLS cells */
    void **pool[MAX_THREADS];          /* medium-lived, handed on per round */
    void **longlived[MAX_THREADS];     /* LONG_SLOTS per thread index */
    unsigned round;
};

struct stress_worker {
    struct stress_shared *sh;
    unsigned id;
    unsigned long done;
};

static inline void slot_replace(void **slot, void *p)
{
    if (*slot != NULL)
        block_free(*slot);
    *slot = p;
}

static void *stress_thread(void *arg)
{
    struct stress_worker *w = arg;
    struct stress_shared *sh = w->sh;
    unsigned n = sh->cfg->threads;
    /* Inherit the pool a thread of the previous round left behind. */
    void **pool = sh->pool[(w->id + 1) % n];
    void **longlived = sh->longlived[w->id];
    uint64_t rng = rng_seed(1000u * sh->round + w->id);
    uint32_t npool = (uint32_t)sh->cfg->pool;

    for (unsigned long i = 0; i < sh->cfg->ops; i++) {
        uint32_t kind = rng_below(&rng, 100);
        void *p = block_new(size_pick_wide(&rng));
        if (kind < 45) {
            block_free(p);
        } else if (kind < 80) {
            slot_replace(&pool[rng_below(&rng, npool)], p);
        } else if (kind < 95) {
            uint32_t c = rng_below(&rng, XCHG_CELLS);
            void *old = atomic_exchange_explicit(&sh->xchg[c], p,
                                                 memory_order_acq_rel);
            if (old != NULL)
                block_free(old);
        } else {
            slot_replace(&longlived[rng_below(&rng, LONG_SLOTS)], p);
        }
    }
    w->done = sh->cfg->ops;
    return pool;   /* left for the next round */
}

static void stress_free_all(void **slot, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (slot[i] != NULL)
            block_free(slot[i]);
}

static struct span run_stress(const struct config *cfg, unsigned long *pairs)
{
    unsigned n = cfg->threads;
    struct stress_shared *sh = bk_alloc(sizeof *sh);
    sh->cfg = cfg;
    sh->xchg = bk_alloc(XCHG_CELLS * sizeof *sh->xchg);
    for (unsigned i = 0; i < n; i++) {
        sh->pool[i] = bk_alloc(cfg->pool * sizeof(void *));
        sh->longlived[i] = bk_alloc(LONG_SLOTS * sizeof(void *));
    }
    struct stress_worker w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    *pairs = 0;

    /* Thread start and exit are part of this workload: time it all. */
    struct span t;
    span_begin(&t);
    for (unsigned r = 0; r < cfg->rounds; r++) {
        void **left[MAX_THREADS];
        sh->round = r;
        for (unsigned i = 0; i < n; i++) {
            w[i] = (struct stress_worker){ .sh = sh, .id = i };
            if (pthread_create(&tid[i], NULL, stress_thread, &w[i]) != 0)
                fatal("pthread_create failed");
        }
        for (unsigned i = 0; i < n; i++) {
            void *ret;
            pthread_join(tid[i], &ret);
            left[i] = ret;
            *pairs += w[i].done;
        }
        /* Thread i worked on pool[(i+1)%n]; it becomes pool[i], which the
         * next round's thread i-1 inherits. */
        for (unsigned i = 0; i < n; i++)
            sh->pool[i] = left[i];
    }
    span_end(&t);

    for (unsigned i = 0; i < n; i++) {
        stress_free_all(sh->pool[i], cfg->pool);
        stress_free_all(sh->longlived[i], LONG_SLOTS);
        bk_free(sh->pool[i], cfg->pool * sizeof(void *));
        bk_free(sh->longlived[i], LONG_SLOTS * sizeof(void *));
    }
    for (unsigned c = 0; c < XCHG_CELLS; c++) {
        void *p = atomic_load(&sh->xchg[c]);
        if (p != NULL)
            block_free(p);
    }
    bk_free(sh->xchg, XCHG_CELLS * sizeof *sh->xchg);
    bk_free(sh, sizeof *sh);
    return t;
}

/* ------------------------------------------------------------ placement */

/*
 * How far apart the machine's first two CPUs are right now: two threads
 * pinned to them bounce one cache line, and the mean round trip is
 * returned (-1 with fewer than two CPUs).  On a virtual machine the host
 * may move the two vCPUs between sibling hyperthreads (tens of ns) and
 * distant cores (hundreds), which changes every cross-thread workload; the
 * number lets run.sh show which case a run met.  The loops spin without
 * "pause", which on AMD CPUs would add its own long delay to every trip.
 */
#define PROBE_TRIPS 20000
#define PROBE_MAX_NS 20e6

struct probe {
    _Alignas(CACHELINE) _Atomic long ball;
    _Alignas(CACHELINE) cpu_set_t cpu;
    long trips;
};

static void pin_to(const cpu_set_t *set)
{
    pthread_setaffinity_np(pthread_self(), sizeof *set, set);
}

static void *probe_echo(void *arg)
{
    struct probe *pr = arg;
    pin_to(&pr->cpu);
    for (long i = 1; i < 2 * pr->trips; i += 2) {
        while (atomic_load_explicit(&pr->ball, memory_order_acquire) < i)
            ;
        atomic_store_explicit(&pr->ball, i + 1, memory_order_release);
    }
    return NULL;
}

static double xcore_rtt_ns(void)
{
    cpu_set_t mine, first;
    int cpus[2], n = 0;
    if (sched_getaffinity(0, sizeof mine, &mine) != 0)
        return -1;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &mine))
            cpus[n++] = c;
    if (n < 2)
        return -1;

    static struct probe pr;
    pr.trips = PROBE_TRIPS;
    atomic_store(&pr.ball, 0);
    CPU_ZERO(&pr.cpu);
    CPU_SET(cpus[1], &pr.cpu);
    CPU_ZERO(&first);
    CPU_SET(cpus[0], &first);
    pin_to(&first);

    pthread_t echo;
    if (pthread_create(&echo, NULL, probe_echo, &pr) != 0)
        fatal("pthread_create failed");
    double t0 = clock_ns(CLOCK_MONOTONIC), t = 0;
    long done = 0;
    for (long i = 0; i < 2 * pr.trips; i += 2, done++) {
        while (atomic_load_explicit(&pr.ball, memory_order_acquire) < i)
            ;
        /* A busy CPU makes trips slow: stop early, and let the echo
         * thread finish by serving the remaining balls here. */
        if (done % 1024 == 1023 &&
            (t = clock_ns(CLOCK_MONOTONIC) - t0) > PROBE_MAX_NS) {
            for (long j = i; j < 2 * pr.trips; j += 2) {
                while (atomic_load_explicit(&pr.ball, memory_order_acquire) < j)
                    ;
                atomic_store_explicit(&pr.ball, j + 1, memory_order_release);
            }
            break;
        }
        atomic_store_explicit(&pr.ball, i + 1, memory_order_release);
    }
    if (done == pr.trips)
        t = clock_ns(CLOCK_MONOTONIC) - t0;
    pthread_join(echo, NULL);
    pin_to(&mine);      /* threads made later inherit this again */
    return done > 0 ? t / (double)done : -1;
}

/* ------------------------------------------------------------ reporting */

/* The file name of the object that provides `sym` to this process. */
static const char *provider_of(const char *sym)
{
    Dl_info info;
    void *addr = dlsym(RTLD_DEFAULT, sym);
    if (addr == NULL || dladdr(addr, &info) == 0 || info.dli_fname == NULL)
        return "unknown";
    return info.dli_fname;
}

/* A field of /proc/self/status in kB (or a count), -1 if absent. */
static long status_field(const char *key)
{
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------ main */

static _Noreturn void usage(void)
{
    fputs("usage: churn churn|xthread|stress THREADS [-n OPS] [-p POOL] "
          "[-r REPS] [-R ROUNDS]\n"
          "  churn:   OPS per thread (default 4000000), POOL live blocks per "
          "thread (default 8192)\n"
          "  xthread: OPS blocks in all (default 4000000), THREADS 1 or 2\n"
          "  stress:  OPS per thread per round (default 40000), POOL per "
          "thread (default 1024), ROUNDS (default 10)\n", stderr);
    exit(2);
}

static unsigned long parse_count(const char *s)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0)
        usage();
    return v;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    if (argc < 3)
        usage();
    *cfg = (struct config){ .workload = argv[1], .reps = 1, .rounds = 10 };
    cfg->threads = (unsigned)parse_count(argv[2]);
    if (strcmp(cfg->workload, "churn") == 0) {
        cfg->ops = 4000000;
        cfg->pool = 8192;
    } else if (strcmp(cfg->workload, "xthread") == 0) {
        cfg->ops = 4000000;
        if (cfg->threads > 2)
            usage();
    } else if (strcmp(cfg->workload, "stress") == 0) {
        cfg->ops = 40000;
        cfg->pool = 1024;
    } else {
        usage();
    }
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc || strlen(argv[i]) != 2 || argv[i][0] != '-')
            usage();
        unsigned long v = parse_count(argv[++i]);
        switch (argv[i - 1][1]) {
        case 'n': cfg->ops = v; break;
        case 'p': cfg->pool = v; break;
        case 'r': cfg->reps = (unsigned)v; break;
        case 'R': cfg->rounds = (unsigned)v; break;
        default: usage();
        }
    }
    if (cfg->threads > MAX_THREADS || cfg->reps > MAX_REPS ||
        cfg->pool > UINT32_MAX)
        usage();
}

int main(int argc, char **argv)
{
    struct config cfg;
    double ns[MAX_REPS], cpu[MAX_REPS];
    unsigned long pairs = 0;
    long nivcsw = 0;
    struct rusage ru0, ru1;

    parse_args(argc, argv, &cfg);
    double rtt0 = cfg.threads > 1 ? xcore_rtt_ns() : -1;
    for (unsigned r = 0; r < cfg.reps; r++) {
        struct span t;
        getrusage(RUSAGE_SELF, &ru0);
        if (strcmp(cfg.workload, "churn") == 0)
            t = run_phased(&cfg, churn_thread, &pairs);
        else if (strcmp(cfg.workload, "xthread") == 0)
            t = run_xthread(&cfg, &pairs);
        else
            t = run_stress(&cfg, &pairs);
        getrusage(RUSAGE_SELF, &ru1);
        ns[r] = (t.wall1 - t.wall0) / (double)pairs;
        cpu[r] = (t.cpu1 - t.cpu0) / (double)pairs;
        nivcsw += ru1.ru_nivcsw - ru0.ru_nivcsw;
    }
    qsort(ns, cfg.reps, sizeof ns[0], cmp_double);
    qsort(cpu, cfg.reps, sizeof cpu[0], cmp_double);
    double rtt1 = cfg.threads > 1 ? xcore_rtt_ns() : -1;

    /* Printed last, when everything has been freed: peak and final RSS. */
    getrusage(RUSAGE_SELF, &ru1);
    const char *mfrom = provider_of("malloc"), *ffrom = provider_of("free");
    printf("workload=%s threads=%u pairs=%lu reps=%u ns_per_op=%.2f "
           "ns_min=%.2f ns_max=%.2f cpu_ns_per_op=%.2f nivcsw=%ld "
           "maxrss_kib=%ld rss_end_kib=%ld tasks_end=%ld proc_cpu_ms=%.0f "
           "xcore_rtt_ns=%.0f,%.0f malloc_from=%s free_from=%s\n",
           cfg.workload, cfg.threads, pairs, cfg.reps, ns[cfg.reps / 2],
           ns[0], ns[cfg.reps - 1], cpu[cfg.reps / 2], nivcsw,
           ru1.ru_maxrss, status_field("VmRSS"), status_field("Threads"),
           clock_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e6, rtt0, rtt1, mfrom, ffrom);
    return strcmp(mfrom, ffrom) == 0 ? 0 : 3;
}
