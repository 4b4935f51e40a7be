/*
 * bench/keys.c - the key cache (issue 13, "Speed"): what entering a domain
 * costs when there are far more domains than protection keys, each figure a
 * ratio to a reference measured in the same run.
 *
 *  1. keyheap_enter + keyheap_leave of a resident domain with 1000 domains
 *     live (keys:15, the default), against RDPKRU + WRPKRU + WRPKRU writing
 *     back the value read, in a loop of the same shape; and the same with 1
 *     domain live.
 *  2. A miss: enter + leave of a parked domain, which evicts another, with
 *     keys:2 and 3 domains taking turns (every enter picks the one that is
 *     parked, so every enter misses), for domains with 64 B, 64 KiB and
 *     1 MiB allocated (in blocks of at most 1 KiB, so that no guard page
 *     splits the range, and written to), which commits 1 page, 72 KiB and
 *     1.01 MiB (the table gives what it did).  Reference: two
 *     pkey_mprotect calls (PROT_NONE with key 0, then read-write with a key
 *     of its own, as an eviction parks one domain and tags another) over a
 *     scratch mapping of the domain's committed size, written to first.
 *  3. A server's sessions: 1000 domains each holding a 256-byte secret,
 *     entered in a Zipf(s = 1) order (ranks given to domains by a random
 *     permutation), the secret read and written inside, keys:15.  Its
 *     throughput against the same workload switching by mprotect (one page
 *     mapping per "domain": read-write on enter, PROT_NONE on leave, what
 *     libsodium's sodium_mprotect_* calls do), and against the all-resident
 *     case (12 of the domains, drawn uniformly: they all keep their keys).
 *  4. Row 2's 64 B miss again, with 8 other threads in the process that
 *     each entered a domain once and now wait: what threads add to a miss
 *     (a sweep reads registered threads instead of signalling them).
 *
 * Each row's figures come from ROUNDS (-n, at least 5) rounds; within a
 * round the variants run one after the other, in an order that rotates
 * from round to round, so that noise from the machine hits them alike; the
 * ratio is taken within each round and the table gives its median over the
 * rounds, with the lowest and highest.  KEYHEAP_CONF is read once per
 * process, so each numbered row runs in a process of its own (this program
 * executed again with --part), rows 2 and 4 with keys:2 added to KEYHEAP_CONF.
 *
 * Without PKU (keyheap_pku_supported() == 0) nothing can be measured: the
 * table says so.  Run it through tools/pku-run (`make bench-keys`), which
 * runs it in a QEMU machine where the CPU has no PKU; the table then says
 * that the CPU is QEMU's emulation (TCG), whose timings are not those of
 * hardware.
 *
 * Output: a markdown table on stdout, and with -o FILE in FILE too; -q is a
 * quick run (5 rounds of shorter runs).  Built as a user's program is, with
 * the public header only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <keyheap.h>

#include "bench.h"

#define ROUNDS 7 /* default of -n */
#define MAX_ROUNDS 99
#define NDOM 1000          /* domains live in rows 1 and 3 */
#define SECRET 256         /* bytes of each domain's secret in row 3 */
#define RESIDENT_SET 12    /* row 3's all-resident working set */
#define NMISS 3            /* domains taking turns in row 2 */
#define SEQ_LEN (1L << 17) /* entries of row 3's enter sequences (a power of 2) */
#define PAGE 4096

/* Time per timed run, in ns (divided by QUICK_DIV with -q). */
#define RUN_RESIDENT 40e6
#define RUN_MISS 80e6
#define RUN_ZIPF 250e6
#define QUICK_DIV 5

static int rounds = ROUNDS, quick;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench/keys: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* The median of v[0..n), with its lowest and highest (sorts v). */
struct spread {
    double med, lo, hi;
};

static struct spread spread_of(double *v, int n)
{
    double med = bench_median(v, n); /* sorts v */
    return (struct spread){med, v[0], v[n - 1]};
}

static const char *fmt_size(char *buf, size_t size, size_t bytes)
{
    if (bytes % (1u << 20) == 0)
        snprintf(buf, size, "%zu MiB", bytes >> 20);
    else if (bytes >= (1u << 20))
        snprintf(buf, size, "%.2f MiB", (double)bytes / (1u << 20));
    else
        snprintf(buf, size, "%zu KiB", bytes >> 10);
    return buf;
}

static const char *fmt_time(char *buf, size_t size, double ns)
{
    if (ns < 1e3)
        snprintf(buf, size, "%.1f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, size, "%.2f µs", ns / 1e3);
    else
        snprintf(buf, size, "%.2f ms", ns / 1e6);
    return buf;
}

/* Throughput from the time per enter. */
static const char *fmt_rate(char *buf, size_t size, double ns)
{
    double per_s = 1e9 / ns;
    if (per_s >= 1e6)
        snprintf(buf, size, "%.2f M enters/s", per_s / 1e6);
    else
        snprintf(buf, size, "%.1f k enters/s", per_s / 1e3);
    return buf;
}

/* ------------------------------------------------------------ rounds */

/* A timed loop: n iterations of one variant. */
typedef void (*loop_fn)(void *arg, long n);

struct variant {
    loop_fn fn;
    void *arg;
    void (*prepare)(void *arg); /* untimed, before every timed run; or NULL */
    void (*reset)(void *arg);   /* after the calibration: zero the counters; or NULL */
    long n;                     /* iterations per timed run (calibrated) */
    double ns[MAX_ROUNDS];      /* ns per iteration, per round */
};

static double time_loop(const struct variant *v, long n)
{
    if (v->prepare != NULL)
        v->prepare(v->arg);
    double t0 = bench_now_ns();
    v->fn(v->arg, n);
    return bench_now_ns() - t0;
}

/* Iterations for a run of about run_ns: doubling from n until a run takes
 * an eighth of that (this warms up too), then scaled; at least min_n. */
static long calibrate(const struct variant *v, double run_ns, long n, long min_n)
{
    double t;
    for (;;) {
        t = time_loop(v, n);
        if (t >= run_ns / 8 || n >= (1L << 40))
            break;
        n *= 2;
    }
    long m = (long)((double)n * run_ns / (t > 1 ? t : 1));
    return m < min_n ? min_n : m;
}

/* Calibrates every variant, then runs the rounds: in round r, the
 * variants take turns starting with variant r mod nv. */
static void run_rounds(struct variant *v, int nv, double run_ns, long n0, long min_n)
{
    if (quick)
        run_ns /= QUICK_DIV;
    for (int i = 0; i < nv; i++)
        v[i].n = calibrate(&v[i], run_ns, n0, min_n);
    for (int i = 0; i < nv; i++)
        if (v[i].reset != NULL)
            v[i].reset(v[i].arg);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < nv; k++) {
            struct variant *x = &v[(r + k) % nv];
            x->ns[r] = time_loop(x, x->n) / (double)x->n;
        }
}

/* The ratio a/b within each round: its median and spread. */
static struct spread ratio_of(const struct variant *a, const struct variant *b)
{
    double q[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        q[r] = a->ns[r] / b->ns[r];
    return spread_of(q, rounds);
}

static double median_ns(const struct variant *v)
{
    double q[MAX_ROUNDS];
    memcpy(q, v->ns, sizeof q[0] * (size_t)rounds);
    return spread_of(q, rounds).med;
}

static int parked(keyheap_domain_t *d)
{
    /* The handle's first word, as the inline enter reads it (keyheap.h). */
    const struct keyheap_abi_domain *a = (const struct keyheap_abi_domain *)(const void *)d;
    return *(volatile const unsigned *)&a->live != KEYHEAP_ABI_LIVE;
}

static keyheap_domain_t *create(const char *prefix, int i)
{
    char name[KEYHEAP_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s-%d", prefix, i);
    keyheap_domain_t *d = keyheap_domain_create(name, 0);
    if (d == NULL)
        die("keyheap_domain_create");
    return d;
}

/* ------------------------------------------------------------ row 1 */

/* noinline, so that `objdump -d bench/keys` shows each loop by name. */
static __attribute__((noinline)) void raw_loop(void *arg, long n)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        unsigned pkru = bench_rdpkru();
        bench_wrpkru(pkru);
        bench_wrpkru(pkru);
    }
}

static __attribute__((noinline)) void resident_loop(void *arg, long n)
{
    keyheap_domain_t *d = arg;
    for (long i = 0; i < n; i++) {
        keyheap_enter(d);
        keyheap_leave(d);
    }
}

static void print_resident(const char *what, const char *goal, struct variant *v)
{
    char a[32], b[32];
    struct spread q = ratio_of(&v[1], &v[0]);
    printf("| 1 | %s | RDPKRU + 2 WRPKRU (the value read written back) | %.2f | %.2f-%.2f | "
           "%s | %s | %s |\n",
           what, q.med, q.lo, q.hi, goal, fmt_time(a, sizeof a, median_ns(&v[1])),
           fmt_time(b, sizeof b, median_ns(&v[0])));
}

static void part_resident(void)
{
    static keyheap_domain_t *dom[NDOM];
    dom[0] = create("resident", 0);
    keyheap_enter(dom[0]); /* a thread's first enter takes the out-of-line path */
    keyheap_leave(dom[0]);
    struct variant one[2] = {{.fn = raw_loop}, {.fn = resident_loop, .arg = dom[0]}};
    run_rounds(one, 2, RUN_RESIDENT, 1000, 1000);

    for (int i = 1; i < NDOM; i++)
        dom[i] = create("resident", i);
    /* The last one was made parked (keys:15): its first enter is a miss,
     * then it stays resident, being the only one entered. */
    keyheap_domain_t *d = dom[NDOM - 1];
    keyheap_enter(d);
    keyheap_leave(d);
    if (parked(d)) {
        fprintf(stderr, "bench/keys: domain still parked after an enter\n");
        exit(1);
    }
    struct variant many[2] = {{.fn = raw_loop}, {.fn = resident_loop, .arg = d}};
    run_rounds(many, 2, RUN_RESIDENT, 1000, 1000);
    if (parked(d)) {
        fprintf(stderr, "bench/keys: the resident domain was evicted during the run\n");
        exit(1);
    }
    print_resident("enter+leave of a resident domain, 1000 domains live", "<= 1.10", many);
    print_resident("the same, 1 domain live", "-", one);
}

/* ------------------------------------------------------------ row 2 */

struct missset {
    keyheap_domain_t *dom[NMISS];
    unsigned next;
    long enters, hits; /* timed enters, and those that found the domain resident */
};

/* The next domain in turn that is parked (with keys:2 and 3 domains, one
 * is); if none is, the next one, counted as a hit. */
static keyheap_domain_t *next_parked(struct missset *m)
{
    for (unsigned k = 0; k < NMISS; k++) {
        unsigned j = (m->next + k) % NMISS;
        if (parked(m->dom[j])) {
            m->next = j + 1;
            return m->dom[j];
        }
    }
    m->hits++;
    return m->dom[m->next++ % NMISS];
}

static __attribute__((noinline)) void miss_loop(void *arg, long n)
{
    struct missset *m = arg;
    for (long i = 0; i < n; i++) {
        keyheap_domain_t *d = next_parked(m);
        keyheap_enter(d);
        keyheap_leave(d);
    }
    m->enters += n;
}

/* Before each timed run: the keys may be with another size's domains;
 * a few enters bring this set to its steady state (one parked). */
static void miss_prepare(void *arg)
{
    struct missset *m = arg;
    long hits = m->hits;
    miss_loop(m, NMISS + 1);
    m->enters -= NMISS + 1;
    m->hits = hits;
}

struct scratch {
    void *p;
    size_t len;
    int key;
};

static __attribute__((noinline)) void pkey_mprotect_loop(void *arg, long n)
{
    struct scratch *s = arg;
    for (long i = 0; i < n; i++)
        if (pkey_mprotect(s->p, s->len, PROT_NONE, 0) != 0 ||
            pkey_mprotect(s->p, s->len, PROT_READ | PROT_WRITE, s->key) != 0)
            die("pkey_mprotect");
}

/* Row 2 for the first nsizes sizes, row `row` of the table; extra goes
 * after the row's text. */
static void miss_rows(int nsizes, int row, const char *extra)
{
    static const struct {
        const char *name;
        size_t bytes; /* allocated in each domain */
    } sizes[] = {{"64 B", 64}, {"64 KiB", 64 << 10}, {"1 MiB", 1 << 20}};
    enum { MAXSIZES = sizeof sizes / sizeof sizes[0] };
    const int NSIZES = nsizes < MAXSIZES ? nsizes : MAXSIZES;
    static struct missset set[MAXSIZES];
    static struct scratch scratch[MAXSIZES];
    struct variant v[MAXSIZES][2];
    size_t committed[MAXSIZES];

    for (int s = 0; s < NSIZES; s++) {
        for (int k = 0; k < NMISS; k++) {
            keyheap_domain_t *d = set[s].dom[k] = create("miss", s * NMISS + k);
            keyheap_enter(d);
            size_t left = sizes[s].bytes;
            while (left > 0) {
                size_t n = left < 1024 ? left : 1024;
                void *p = malloc(n);
                if (p == NULL)
                    die("malloc in a domain");
                memset(p, 0x5a, n);
                left -= n;
            }
            keyheap_leave(d);
        }
        struct keyheap_stats st;
        if (keyheap_domain_stats(set[s].dom[0], &st) != 0)
            die("keyheap_domain_stats");
        committed[s] = st.committed;
    }
    /* The reference's key is not keyheap's: keyheap took its two. */
    int key = pkey_alloc(0, 0);
    if (key < 0)
        key = 0;
    for (int s = 0; s < NSIZES; s++) {
        struct scratch *x = &scratch[s];
        x->len = committed[s];
        x->key = key;
        x->p = mmap(NULL, x->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (x->p == MAP_FAILED)
            die("mmap");
        memset(x->p, 0x5a, x->len);
        v[s][0] = (struct variant){.fn = pkey_mprotect_loop, .arg = x};
        v[s][1] = (struct variant){.fn = miss_loop, .arg = &set[s], .prepare = miss_prepare};
    }
    /* The rounds go across sizes too: each round, each size's two variants. */
    double run_ns = quick ? RUN_MISS / QUICK_DIV : RUN_MISS;
    for (int s = 0; s < NSIZES; s++)
        for (int k = 0; k < 2; k++)
            v[s][k].n = calibrate(&v[s][k], run_ns, 4, 16);
    for (int s = 0; s < NSIZES; s++)
        set[s].enters = set[s].hits = 0;
    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < NSIZES; s++)
            for (int k = 0; k < 2; k++) {
                struct variant *x = &v[s][(r + k) % 2];
                x->ns[r] = time_loop(x, x->n) / (double)x->n;
            }

    for (int s = 0; s < NSIZES; s++) {
        char a[32], b[32], c[32], hits[96] = "";
        /* The reference is the two calls together: the ratio is miss /
         * (2 x pkey_mprotect). */
        struct spread q = ratio_of(&v[s][1], &v[s][0]);
        if (set[s].hits != 0)
            snprintf(hits, sizeof hits, " (%ld of %ld timed enters did not miss)", set[s].hits,
                     set[s].enters);
        printf("| %d | a miss: enter+leave of a parked domain, evicting another (keys:2), "
               "%s allocated, %s committed%s%s | 2 pkey_mprotect of %s (PROT_NONE key 0, then "
               "read-write with a key) | %.2f | %.2f-%.2f | about 1 | %s | %s |\n",
               row, sizes[s].name, fmt_size(c, sizeof c, committed[s]), extra, hits, c, q.med,
               q.lo, q.hi,
               fmt_time(a, sizeof a, median_ns(&v[s][1])),
               fmt_time(b, sizeof b, median_ns(&v[s][0])));
    }
}

static void part_miss(void)
{
    miss_rows(3, 2, "");
}

/* ------------------------------------------------------------ row 4 */

/* Row 2's smallest domain again, with WAITERS other threads in the
 * process, each of which entered a domain once (so keyheap registered it)
 * and now waits: what other threads add to a miss. */
#define WAITERS 8
static pthread_mutex_t waiters_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waiters_cond = PTHREAD_COND_INITIALIZER;
static int waiters_ready, waiters_stop;

static void *waiter(void *arg)
{
    keyheap_domain_t *d = arg;
    keyheap_enter(d);
    keyheap_leave(d);
    pthread_mutex_lock(&waiters_lock);
    waiters_ready++;
    pthread_cond_broadcast(&waiters_cond);
    while (!waiters_stop)
        pthread_cond_wait(&waiters_cond, &waiters_lock);
    pthread_mutex_unlock(&waiters_lock);
    return NULL;
}

static void part_threads(void)
{
    keyheap_domain_t *d = create("waiters", 0);
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        if (pthread_create(&t[i], NULL, waiter, d) != 0)
            die("pthread_create");
    pthread_mutex_lock(&waiters_lock);
    while (waiters_ready < WAITERS)
        pthread_cond_wait(&waiters_cond, &waiters_lock);
    pthread_mutex_unlock(&waiters_lock);
    char extra[96];
    snprintf(extra, sizeof extra, ", %d other threads (each entered a domain once) waiting",
             WAITERS);
    miss_rows(1, 4, extra);
    pthread_mutex_lock(&waiters_lock);
    waiters_stop = 1;
    pthread_cond_broadcast(&waiters_cond);
    pthread_mutex_unlock(&waiters_lock);
    for (int i = 0; i < WAITERS; i++)
        pthread_join(t[i], NULL);
}

/* ------------------------------------------------------------ row 3 */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_rand(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next_rand() >> 11) * 0x1p-53;
}

struct zipf {
    keyheap_domain_t **dom;
    unsigned char **secret;
    const uint16_t *seq; /* SEQ_LEN entries */
    long pos;            /* where the next run starts in seq */
    long enters, misses; /* timed enters, and those that found the domain parked */
    long uses;           /* every use of a secret, warm-ups included */
};

/* The work inside: read and write the whole secret. */
static inline void use_secret(unsigned char *s)
{
    uint64_t *w = (uint64_t *)(void *)s;
    for (int k = 0; k < SECRET / 8; k++)
        w[k] += (uint64_t)k + 1;
}

static __attribute__((noinline)) void zipf_keyheap_loop(void *arg, long n)
{
    struct zipf *z = arg;
    long misses = 0;
    for (long i = 0; i < n; i++) {
        unsigned j = z->seq[(z->pos + i) & (SEQ_LEN - 1)];
        keyheap_domain_t *d = z->dom[j];
        misses += parked(d);
        keyheap_enter(d);
        use_secret(z->secret[j]);
        keyheap_leave(d);
    }
    z->pos = (z->pos + n) & (SEQ_LEN - 1);
    z->enters += n;
    z->misses += misses;
    z->uses += n;
}

static __attribute__((noinline)) void zipf_mprotect_loop(void *arg, long n)
{
    struct zipf *z = arg;
    for (long i = 0; i < n; i++) {
        unsigned j = z->seq[(z->pos + i) & (SEQ_LEN - 1)];
        unsigned char *p = z->secret[j];
        if (mprotect(p, PAGE, PROT_READ | PROT_WRITE) != 0)
            die("mprotect");
        use_secret(p);
        if (mprotect(p, PAGE, PROT_NONE) != 0)
            die("mprotect");
    }
    z->pos = (z->pos + n) & (SEQ_LEN - 1);
    z->enters += n;
    z->uses += n;
}

/* Untimed, before each keyheap run: the other variants' enters changed
 * which domains hold keys; a stretch of this variant's own sequence
 * (elsewhere in it) brings its working set back.  Not counted as timed. */
static void zipf_prepare(void *arg)
{
    struct zipf *z = arg, w = *z;
    w.pos = (z->pos + SEQ_LEN / 2) & (SEQ_LEN - 1);
    zipf_keyheap_loop(&w, quick ? 500 : 2000);
    z->uses = w.uses;
}

static void zipf_reset(void *arg)
{
    struct zipf *z = arg;
    z->enters = z->misses = 0;
}

/* The secrets' first words count their uses: their sum must be the number
 * of uses (every secret started at zero). */
static void zipf_check(unsigned char **secret, keyheap_domain_t **dom, long uses, const char *what)
{
    long sum = 0;
    for (int i = 0; i < NDOM; i++) {
        uint64_t w;
        if (dom != NULL)
            keyheap_enter(dom[i]);
        else if (mprotect(secret[i], PAGE, PROT_READ) != 0)
            die("mprotect");
        memcpy(&w, secret[i], sizeof w);
        if (dom != NULL)
            keyheap_leave(dom[i]);
        else if (mprotect(secret[i], PAGE, PROT_NONE) != 0)
            die("mprotect");
        sum += (long)w;
    }
    if (sum != uses) {
        fprintf(stderr, "bench/keys: the %s secrets were used %ld times, not %ld\n", what, sum,
                uses);
        exit(1);
    }
}

static void part_zipf(void)
{
    static keyheap_domain_t *dom[NDOM];
    static unsigned char *secret[NDOM], *page[NDOM];
    static uint16_t perm[NDOM], zipf_seq[SEQ_LEN], uniform_seq[SEQ_LEN];
    static double cdf[NDOM];

    for (int i = 0; i < NDOM; i++) {
        dom[i] = create("session", i);
        keyheap_enter(dom[i]);
        secret[i] = malloc(SECRET);
        if (secret[i] == NULL)
            die("malloc in a domain");
        memset(secret[i], 0, SECRET);
        keyheap_leave(dom[i]);
        page[i] = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page[i] == MAP_FAILED)
            die("mmap");
        memset(page[i], 0, SECRET);
        if (mprotect(page[i], PAGE, PROT_NONE) != 0)
            die("mprotect");
    }
    /* Ranks to domains: a random permutation, so that the popular ones are
     * not simply the first made (which got keys at creation). */
    for (int i = 0; i < NDOM; i++)
        perm[i] = (uint16_t)i;
    for (int i = NDOM - 1; i > 0; i--) {
        int j = (int)(next_rand() % (uint64_t)(i + 1));
        uint16_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    double h = 0;
    for (int k = 0; k < NDOM; k++)
        cdf[k] = (h += 1.0 / (k + 1)); /* Zipf, s = 1: P(rank k) is 1/k over h */
    for (long i = 0; i < SEQ_LEN; i++) {
        double u = uniform() * h;
        int lo = 0, hi = NDOM - 1; /* the first rank whose cdf reaches u */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        zipf_seq[i] = perm[lo];
        /* The all-resident set: 12 domains (the 12 most popular above). */
        uniform_seq[i] = perm[next_rand() % RESIDENT_SET];
    }

    struct zipf zk = {.dom = dom, .secret = secret, .seq = zipf_seq};
    struct zipf zm = {.dom = dom, .secret = page, .seq = zipf_seq};
    struct zipf zr = {.dom = dom, .secret = secret, .seq = uniform_seq};
    struct zipf zrm = {.dom = dom, .secret = page, .seq = uniform_seq};
    struct variant v[4] = {
        {.fn = zipf_keyheap_loop, .arg = &zk, .prepare = zipf_prepare, .reset = zipf_reset},
        {.fn = zipf_mprotect_loop, .arg = &zm, .reset = zipf_reset},
        {.fn = zipf_keyheap_loop, .arg = &zr, .prepare = zipf_prepare, .reset = zipf_reset},
        {.fn = zipf_mprotect_loop, .arg = &zrm, .reset = zipf_reset},
    };
    run_rounds(v, 4, RUN_ZIPF, 500, quick ? 1000 : 4000);
    zipf_check(secret, dom, zk.uses + zr.uses, "domains'");
    zipf_check(page, NULL, zm.uses + zrm.uses, "mprotect pages'");

    char a[32], b[32], c[32];
    struct spread q = ratio_of(&v[1], &v[0]); /* throughput: the inverse of time */
    double zk_ns = median_ns(&v[0]);
    printf("| 3 | Zipf(s=1) over 1000 domains, a 256 B secret read and written in each enter "
           "(keys:15): keyheap's throughput, %.1f %% of enters missed | the same switching "
           "by mprotect (a page per domain: read-write on enter, PROT_NONE on leave) | %.2f | "
           "%.2f-%.2f | >= 10 | %s | %s |\n",
           100.0 * (double)zk.misses / (double)zk.enters, q.med, q.lo, q.hi,
           fmt_rate(a, sizeof a, zk_ns), fmt_rate(b, sizeof b, median_ns(&v[1])));
    q = ratio_of(&v[2], &v[0]);
    printf("| 3 | the same keyheap throughput | all resident: the same work on 12 of the 1000 "
           "domains drawn uniformly (a working set that fits the keys), %.1f %% of enters "
           "missed | %.2f | %.2f-%.2f | - | %s | %s |\n",
           100.0 * (double)zr.misses / (double)zr.enters, q.med, q.lo, q.hi,
           fmt_rate(a, sizeof a, zk_ns), fmt_rate(c, sizeof c, median_ns(&v[2])));
    q = ratio_of(&v[3], &v[2]);
    printf("| 3 | the working set that fits the keys (12 of 1000 domains live): keyheap's "
           "throughput | the same switching by mprotect | %.2f | %.2f-%.2f | >= 10 | %s | %s |\n",
           q.med, q.lo, q.hi, fmt_rate(a, sizeof a, median_ns(&v[2])),
           fmt_rate(b, sizeof b, median_ns(&v[3])));
}

/* ------------------------------------------------------------ main */

static const char *const parts[] = {"resident", "miss", "zipf", "threads"};
#define NPARTS (int)(sizeof parts / sizeof parts[0])

static int run_part(const char *part)
{
    if (!keyheap_pku_supported()) {
        fprintf(stderr, "bench/keys: --part %s needs PKU\n", part);
        return 1;
    }
    if (strcmp(part, "resident") == 0)
        part_resident();
    else if (strcmp(part, "miss") == 0)
        part_miss();
    else if (strcmp(part, "zipf") == 0)
        part_zipf();
    else if (strcmp(part, "threads") == 0)
        part_threads();
    else {
        fprintf(stderr, "bench/keys: no part '%s'\n", part);
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Appends text to the growing output (stdout, and the -o file). */
static char *out;
static size_t out_len;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("vsnprintf");
    char *grown = realloc(out, out_len + (size_t)n + 1);
    if (grown == NULL)
        die("realloc");
    out = grown;
    va_start(ap, fmt);
    vsnprintf(out + out_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out_len += (size_t)n;
}

/* Runs one part in a process of its own with KEYHEAP_CONF conf (NULL:
 * unset), and appends the rows it printed.  Returns 0, or -1 when it
 * failed (a row says so). */
static int run_child(int part, const char *conf)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", rounds);
        if (conf != NULL ? setenv("KEYHEAP_CONF", conf, 1) : unsetenv("KEYHEAP_CONF"))
            _exit(127);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "keys", "--part", parts[part], "-n", n, quick ? "-q" : (char *)NULL,
              (char *)NULL);
        perror("bench/keys: execl /proc/self/exe");
        _exit(127);
    }
    close(fd[1]);
    char buf[4096];
    ssize_t got;
    size_t start = out_len;
    while ((got = read(fd[0], buf, sizeof buf - 1)) > 0) {
        buf[got] = '\0';
        emit("%s", buf);
    }
    close(fd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && out_len > start)
        return 0;
    emit("| %d | bench/keys --part %s failed (%s %d; its messages are on stderr) | | | | | | |\n",
         part + 1, parts[part], WIFEXITED(status) ? "exit status" : "signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return -1;
}

/* The first "model name" line of /proc/cpuinfo, without its label. */
static void cpu_model(char *buf, size_t size)
{
    char line[512];
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v != NULL) {
                v += strspn(v + 1, " \t") + 1;
                v[strcspn(v, "\n")] = '\0';
                snprintf(buf, size, "%s", v);
            }
            break;
        }
    fclose(f);
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: bench/keys [-q] [-n ROUNDS (5-%d)] [-o FILE]\n", MAX_ROUNDS);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *outfile = NULL, *part = NULL;
    int rounds_given = 0;
    static const struct option longopts[] = {{"part", required_argument, NULL, 'P'}, {0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "qn:o:", longopts, NULL)) != -1)
        switch (opt) {
        case 'q':
            quick = 1;
            break;
        case 'n':
            rounds = atoi(optarg);
            rounds_given = 1;
            if (rounds < 5 || rounds > MAX_ROUNDS)
                usage();
            break;
        case 'o':
            outfile = optarg;
            break;
        case 'P':
            part = optarg;
            break;
        default:
            usage();
        }
    if (optind != argc)
        usage();
    if (part != NULL)
        return run_part(part);
    if (quick && rounds == ROUNDS)
        rounds = 5;

    char cpu[256], when[64];
    struct utsname u;
    time_t t = time(NULL);
    cpu_model(cpu, sizeof cpu);
    if (uname(&u) != 0)
        die("uname");
    strftime(when, sizeof when, "%Y-%m-%d", gmtime(&t));
    int pku = keyheap_pku_supported();
    const char *conf = getenv("KEYHEAP_CONF");
    char miss_conf[512];
    snprintf(miss_conf, sizeof miss_conf, "%s%skeys:2", conf ? conf : "", conf && *conf ? "," : "");

    emit("# keyheap: the key cache (`bench/keys%s", quick ? " -q" : "");
    if (rounds_given)
        emit(" -n %d", rounds);
    emit("`)\n\n");
    emit("Measured on %s: %s, Linux %s, PKU: %s.\n", when, cpu, u.release, pku ? "yes" : "no");
    if (strstr(cpu, "QEMU") != NULL || strstr(cpu, "TCG") != NULL)
        emit("This CPU is QEMU's emulation (TCG, as tools/pku-run uses where the CPU has no "
             "PKU): these are emulated timings, not hardware timings.\n");
    emit("Each ratio is the median over %d rounds of the ratio within a round (the variants "
         "take turns in each round); the spread is the lowest and highest round.  "
         "KEYHEAP_CONF: %s%s%s for rows 1 and 3, `%s` for rows 2 and 4.\n\n",
         rounds, conf ? "`" : "", conf ? conf : "unset (keys:15)", conf ? "`" : "", miss_conf);
    emit("| row | measured | reference (same run) | ratio | spread | goal | measured | "
         "reference |\n");
    emit("|---|---|---|---:|---:|---:|---:|---:|\n");
    int rc = 0;
    if (!pku) {
        for (int i = 0; i < NPARTS; i++)
            emit("| %d | cannot be measured natively: no PKU here (keyheap_pku_supported() is "
                 "0); run it through tools/pku-run (`make bench-keys`) | | | | | | |\n",
                 i + 1);
    } else {
        for (int i = 0; i < NPARTS; i++)
            if (run_child(i, i == 1 || i == 3 ? miss_conf : conf) != 0)
                rc = 1;
    }
    fputs(out, stdout);
    if (outfile != NULL) {
        FILE *f = fopen(outfile, "w");
        if (f == NULL || fputs(out, f) < 0 || fclose(f) != 0)
            die(outfile);
    }
    return rc;
}
