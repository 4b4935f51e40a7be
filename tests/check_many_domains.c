/*
 * tests/check_many_domains.c - more domains than protection keys: the key
 * cache (domains/keys.c).
 *
 * KEYHEAP_CONF keys:<n> caps the keys keyheap takes, so every test runs
 * with 1 or 2 keys on any machine; one test takes keys first as other code
 * would, and leaves keyheap only one.  Faults are attacked from outside
 * and from inside another domain: a resident domain's memory faults with
 * SEGV_PKUERR on its key, a parked one's with SEGV_ACCERR at the address
 * (it is PROT_NONE), each with a twin that enters and reads fine.  A raw
 * clone thread made inside a domain (its PKRU inherited, keyheap never saw
 * it) cannot read the domain that gets the key next.  Threads that start
 * inside a domain, exit (in their thread-specific-data destructors) or sit
 * in a signal handler while a sweep and an eviction happen, pinned there by
 * barriers, keep the domain they are inside and never read the key's next
 * owner; three threads on two keys under a 1 ms watchdog keep every
 * secret, and the watchdog finds no key to close.  Counts stay bounded:
 * misses under QEMU cost a few hundred microseconds each.
 *
 * Runs through tools/pku-run: natively on a CPU with PKU, otherwise (and
 * with KEYHEAP_PKU_RUNNER=qemu) in a QEMU machine that emulates it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <keyheap.h>

#include "tests/khfault.h"
#include "tests/khtest.h"

#define SECRET 64
#define MANY 1000

/* An allocation made inside domain d: plain malloc, which must land in d,
 * where keyheap owns malloc; keyheap_malloc where it does not (the
 * sanitizer build, configured with --disable-malloc-replacement). */
#ifdef KHT_NO_REPLACEMENT
#define IN_MALLOC(d, n) keyheap_malloc((d), (n))
#else
#define IN_MALLOC(d, n) ((void)(d), malloc(n))
#endif

static keyheap_domain_t *doms[MANY];
static unsigned char *secrets[MANY];
static unsigned version[MANY];

static unsigned char byte_of(unsigned i, unsigned v, unsigned k)
{
    return (unsigned char)(i * 31u + v * 7u + k);
}

/* Creates n domains, each with a SECRET-byte block written inside. */
static void make_many(unsigned n, const char *conf)
{
    setenv("KEYHEAP_CONF", conf, 1);
    for (unsigned i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%u", i);
        doms[i] = keyheap_domain_create(name, 0);
        ck_assert_msg(doms[i] != NULL, "domain %u: %s", i, strerror(errno));
        keyheap_enter(doms[i]);
        secrets[i] = IN_MALLOC(doms[i], SECRET);
        ck_assert_ptr_nonnull(secrets[i]);
        ck_assert_ptr_eq(keyheap_domain_of(secrets[i]), doms[i]);
        for (unsigned k = 0; k < SECRET; k++)
            secrets[i][k] = byte_of(i, 0, k);
        version[i] = 0;
        keyheap_leave(doms[i]);
    }
}

/* Enters domain i, checks its secret and writes the next version. */
static void visit(unsigned i)
{
    keyheap_enter(doms[i]);
    for (unsigned k = 0; k < SECRET; k++)
        ck_assert_msg(secrets[i][k] == byte_of(i, version[i], k), "domain %u byte %u", i, k);
    version[i]++;
    for (unsigned k = 0; k < SECRET; k++)
        secrets[i][k] = byte_of(i, version[i], k);
    keyheap_leave(doms[i]);
}

static void check_all(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        keyheap_enter_ro(doms[i]);
        for (unsigned k = 0; k < SECRET; k++)
            ck_assert_msg(secrets[i][k] == byte_of(i, version[i], k), "domain %u byte %u", i, k);
        keyheap_leave(doms[i]);
    }
}

static void destroy_many(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        keyheap_free(secrets[i]);
        ck_assert_int_eq(keyheap_domain_destroy(doms[i]), 0);
    }
}

/* How many keys the kernel still gives (each taken, then freed). */
static int free_keys(void)
{
    int keys[16], n = 0;
    while (n < 16 && (keys[n] = (int)syscall(SYS_pkey_alloc, 0ul, 0ul)) >= 0)
        n++;
    for (int i = 0; i < n; i++)
        syscall(SYS_pkey_free, keys[i]);
    return n;
}

static uint64_t rng = 88172645463325252ull;
static unsigned next_rand(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* ------------------------------------------------------------ many */

START_TEST(test_thousand_domains_on_two_keys_keep_every_secret)
{
    int before = free_keys();
    make_many(MANY, "keys:2");
    /* keyheap took two keys, no more. */
    ck_assert_int_eq(free_keys(), before - 2);
    for (unsigned r = 0; r < 3000; r++)
        visit(next_rand(MANY));
    check_all(MANY);
    destroy_many(MANY);
    /* Every key is back with the kernel. */
    ck_assert_int_eq(free_keys(), before);
}
END_TEST

START_TEST(test_thousand_domains_with_one_key_left_by_other_code)
{
    /* Other code (a JIT, another library) holds every key but one. */
    int foreign[16], n = 0;
    while ((foreign[n] = (int)syscall(SYS_pkey_alloc, 0ul, 0ul)) >= 0)
        n++;
    ck_assert_int_ge(n, 2);
    syscall(SYS_pkey_free, foreign[--n]);
    /* The foreign keys' rights, as that code set them: open read-only. */
    unsigned pkru = kht_pkru();
    for (int i = 0; i < n; i++)
        pkru = (pkru & ~(3u << (2 * foreign[i]))) | (2u << (2 * foreign[i]));
    kht_wrpkru(pkru);
    make_many(MANY, "keys:15");
    ck_assert_int_eq(free_keys(), 0);
    for (unsigned r = 0; r < 2000; r++)
        visit(next_rand(MANY));
    check_all(MANY);
    /* Never taken, opened or closed: the foreign keys are as they were. */
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(kht_key_rights(foreign[i]), 2u);
    destroy_many(MANY);
    /* ... and still allocated: keyheap never freed one. */
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(syscall(SYS_pkey_free, foreign[i]), 0);
}
END_TEST

START_TEST(test_thousand_create_destroy_cycles_on_two_keys_leak_no_key)
{
    setenv("KEYHEAP_CONF", "keys:2", 1);
    int before = free_keys();
    keyheap_domain_t *keep = keyheap_domain_create("kept", 0);
    ck_assert_ptr_nonnull(keep);
    for (unsigned i = 0; i < 1000; i++) {
        keyheap_domain_t *d = keyheap_domain_create("cycle", 0);
        ck_assert_ptr_nonnull(d);
        keyheap_enter(d);
        unsigned char *p = IN_MALLOC(d, 100);
        ck_assert_ptr_nonnull(p);
        memset(p, (int)i, 100);
        keyheap_leave(d);
        if (i % 3 == 0) {
            keyheap_enter(keep); /* parks d when the keys are short */
            keyheap_leave(keep);
        }
        keyheap_free(p);
        ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    }
    ck_assert_int_eq(keyheap_domain_destroy(keep), 0);
    ck_assert_int_eq(free_keys(), before);
}
END_TEST

/* --------------------------------------------------------- faults */

/* Domains a (parked) and b (resident, holding the one key), with a
 * secret each. */
static keyheap_domain_t *a, *b;
static unsigned char *pa, *pb;

static void two_on_one_key(void)
{
    setenv("KEYHEAP_CONF", "keys:1", 1);
    a = keyheap_domain_create("victim", 0);
    b = keyheap_domain_create("holder", 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    keyheap_enter(a);
    pa = IN_MALLOC(a, SECRET);
    memset(pa, 0xa1, SECRET);
    keyheap_leave(a);
    keyheap_enter(b); /* takes the key from a */
    pb = IN_MALLOC(b, SECRET);
    memset(pb, 0xb2, SECRET);
    keyheap_leave(b);
}

START_TEST(test_parked_domain_faults_from_outside_with_accerr)
{
    two_on_one_key();
    kht_expect_accerr_fault(pa + 9);
    kht_read(pa + 9);
}
END_TEST

START_TEST(test_parked_domain_reads_fine_inside)
{
    two_on_one_key();
    keyheap_enter(a);
    ck_assert_uint_eq(kht_read(pa + 9), 0xa1);
    keyheap_leave(a);
    /* and b, parked now, is intact too */
    keyheap_enter(b);
    ck_assert_uint_eq(kht_read(pb + 9), 0xb2);
    keyheap_leave(b);
}
END_TEST

START_TEST(test_parked_domain_faults_from_inside_another_domain)
{
    two_on_one_key();
    keyheap_enter(b);
    kht_expect_accerr_fault(pa + 3);
    kht_read(pa + 3);
}
END_TEST

/* keys:2 : a and c resident; inside c, a read of a faults on a's key. */
static void resident_pair(bool twin)
{
    setenv("KEYHEAP_CONF", "keys:2", 1);
    keyheap_domain_t *c = keyheap_domain_create("reader", 0);
    a = keyheap_domain_create("resident", 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(a);
    pa = keyheap_malloc(a, SECRET);
    keyheap_enter(a);
    memset(pa, 0x5a, SECRET);
    keyheap_leave(a);
    int key = keyheap_domain_pkey(a);
    ck_assert_int_gt(key, 0);
    keyheap_enter(c);
    if (twin) {
        keyheap_enter_ro(a);
        ck_assert_uint_eq(kht_read(pa + 1), 0x5a);
        keyheap_leave(a);
    } else {
        kht_expect_pku_fault(key);
        kht_read(pa + 1);
    }
    keyheap_leave(c);
}

START_TEST(test_resident_domain_faults_inside_another_domain)
{
    resident_pair(false);
}
END_TEST

START_TEST(test_resident_domain_reads_inside_after_entering_from_another)
{
    resident_pair(true);
}
END_TEST

/* The fault report names the parked domain and says it was parked. */
static void read_parked(void *arg)
{
    (void)arg;
    kht_read(pa + 5);
}

START_TEST(test_fault_report_names_the_parked_domain)
{
    two_on_one_key();
    char text[1024];
    int status = kht_child_stderr(read_parked, NULL, text, sizeof text);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x", status);
    char want[256];
    snprintf(want, sizeof want, " read of %p in domain \"victim\" (parked: it has no key until a "
             "thread enters it) at ip ", (void *)(pa + 5));
    ck_assert_msg(strncmp(text, "keyheap: protection-key fault: thread ", 38) == 0, "%s", text);
    ck_assert_msg(strstr(text, want) != NULL, "report: %s", text);
}
END_TEST

/* A raw clone thread made inside a, holding a's key open (inherited
 * PKRU, and keyheap never saw the thread); a is parked and b gets the key:
 * the eviction's round closed it in the clone, which faults on b. */
static volatile int clone_phase;
static unsigned char *volatile clone_reads;
static volatile unsigned char clone_seen;

static int clone_main(void *arg)
{
    (void)arg;
    while (clone_phase == 0)
        __asm__ volatile("pause");
    clone_seen = kht_read(clone_reads);
    clone_phase = 2;
    while (clone_phase == 2)
        __asm__ volatile("pause");
    clone_seen = kht_read(clone_reads);
    clone_phase = 4;
    syscall(SYS_exit, 0);
    return 0;
}

static void raw_clone_across_eviction(bool twin)
{
    setenv("KEYHEAP_CONF", "keys:1", 1);
    a = keyheap_domain_create("cloned-in", 0);
    b = keyheap_domain_create("next-owner", 0);
    pa = keyheap_malloc(a, SECRET);
    pb = keyheap_malloc(b, SECRET);
    keyheap_enter(a);
    memset(pa, 0x11, SECRET);
    kht_raw_clone(clone_main, NULL);
    keyheap_leave(a);
    /* The clone reads a while a still has the key: it has it open. */
    clone_reads = pa + 2;
    clone_phase = 1;
    while (clone_phase != 2)
        usleep(1000);
    ck_assert_uint_eq(clone_seen, 0x11);
    /* b takes the key (a is parked), and gets a secret. */
    keyheap_enter(b);
    memset(pb, 0x22, SECRET);
    keyheap_leave(b);
    int key = keyheap_domain_pkey(b);
    ck_assert_int_gt(key, 0);
    static unsigned char plain = 0x33;
    clone_reads = twin ? &plain : pb + 2;
    if (!twin)
        kht_expect_pku_fault(key);
    clone_phase = 3;
    while (clone_phase != 4)
        usleep(1000);
    ck_assert_uint_eq(clone_seen, 0x33);
    keyheap_enter(b);
    ck_assert_uint_eq(kht_read(pb + 2), 0x22);
    keyheap_leave(b);
}

START_TEST(test_raw_clone_made_inside_cannot_read_the_next_owner_of_the_key)
{
    raw_clone_across_eviction(false);
}
END_TEST

START_TEST(test_raw_clone_made_inside_runs_and_the_next_owner_reads_inside)
{
    raw_clone_across_eviction(true);
}
END_TEST

/* A sweep of the key cache finds this thread inside a, and a raw clone
 * made after that sweep inherits a's key open.  This thread leaves a, and
 * b takes a's key (keys:2; c, which holds the other key, has a thread
 * inside it): the sweep must have marked a used again (a thread inside
 * it may have passed its key on), so that the move waits for a sweep that
 * closes the key in the clone; else the clone reads b's secret. */
static keyheap_domain_t *c;
static pthread_barrier_t in_c;

static void *sit_in_c(void *arg)
{
    (void)arg;
    keyheap_enter(c); /* a miss: a is in use, b was entered: a sweep */
    pthread_barrier_wait(&in_c);
    pthread_barrier_wait(&in_c);
    keyheap_leave(c);
    return NULL;
}

static void raw_clone_after_a_sweep(bool twin)
{
    setenv("KEYHEAP_CONF", "keys:2", 1);
    a = keyheap_domain_create("inside-at-sweep", 0);
    b = keyheap_domain_create("next-owner", 0);
    c = keyheap_domain_create("sat-in", 0);
    pa = keyheap_malloc(a, SECRET);
    pb = keyheap_malloc(b, SECRET);
    keyheap_enter(b);
    memset(pb, 0x22, SECRET);
    keyheap_leave(b);
    keyheap_enter(a);
    memset(pa, 0x11, SECRET);
    ck_assert_int_eq(pthread_barrier_init(&in_c, NULL, 2), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, sit_in_c, NULL), 0);
    pthread_barrier_wait(&in_c);
    /* c took b's key (a has this thread inside); keyheap_domain_pkey(b)
     * would give b a key now, with a sweep of its own: not asked. */
    kht_raw_clone(clone_main, NULL);
    keyheap_leave(a);
    clone_reads = pa + 2;
    clone_phase = 1;
    while (clone_phase != 2)
        usleep(1000);
    ck_assert_uint_eq(clone_seen, 0x11);
    /* b takes a's key: c's has a thread inside. */
    keyheap_enter(b);
    ck_assert_uint_eq(kht_read(pb + 2), 0x22);
    keyheap_leave(b);
    int key = keyheap_domain_pkey(b);
    ck_assert_int_gt(key, 0);
    static unsigned char plain = 0x33;
    clone_reads = twin ? &plain : pb + 2;
    if (!twin)
        kht_expect_pku_fault(key);
    clone_phase = 3;
    while (clone_phase != 4)
        usleep(1000);
    ck_assert_uint_eq(clone_seen, 0x33);
    pthread_barrier_wait(&in_c);
    pthread_join(t, NULL);
}

START_TEST(test_raw_clone_made_inside_after_a_sweep_cannot_read_the_next_owner)
{
    raw_clone_after_a_sweep(false);
}
END_TEST

START_TEST(test_raw_clone_made_inside_after_a_sweep_runs_and_reads_plain_memory)
{
    raw_clone_after_a_sweep(true);
}
END_TEST

/* ---------------------------------------------------------- nesting */

static void nest(void *arg)
{
    unsigned deep = (unsigned)(uintptr_t)arg;
    setenv("KEYHEAP_CONF", "keys:2", 1);
    keyheap_domain_t *ds[4];
    unsigned char *ps[4];
    for (unsigned i = 0; i < deep; i++) {
        char name[8] = {'n', 'e', 's', 't', (char)('0' + i), 0};
        ds[i] = keyheap_domain_create(name, 0);
        ck_assert_ptr_nonnull(ds[i]);
        ps[i] = keyheap_malloc(ds[i], 16);
        ck_assert_ptr_nonnull(ps[i]);
    }
    for (unsigned i = 0; i < deep; i++) {
        keyheap_enter(ds[i]);
        memset(ps[i], (int)(0x40 + i), 16);
    }
    /* Every level is open at once. */
    for (unsigned i = 0; i < deep; i++)
        ck_assert_uint_eq(kht_read(ps[i] + 3), 0x40 + i);
    for (unsigned i = deep; i-- > 0;)
        keyheap_leave(ds[i]);
}

START_TEST(test_nesting_as_many_domains_as_keys_works)
{
    nest((void *)(uintptr_t)2);
}
END_TEST

START_TEST(test_nesting_more_domains_than_keys_aborts)
{
    kht_expect_abort(nest, (void *)(uintptr_t)3,
                     "keyheap: domain \"nest2\" needs a protection key, but every one of "
                     "keyheap's 2 (KEYHEAP_CONF keys:2) is held by a domain this thread is "
                     "inside or whose key keyheap_domain_pkey gave out: this thread cannot nest "
                     "more domains than keyheap has keys\n");
}
END_TEST

/* ---------------------------------------------------------- threads */

#define THREADS 4
#define TDOMAINS 24
static pthread_barrier_t start;

struct worker {
    unsigned id;
    unsigned char *blocks[TDOMAINS];
    unsigned seed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(w->id % 2, &cpus);
    pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
    pthread_barrier_wait(&start);
    for (unsigned r = 0; r < 150; r++) {
        w->seed = w->seed * 1103515245u + 12345u;
        unsigned i = (w->seed >> 8) % TDOMAINS;
        keyheap_enter(doms[i]);
        unsigned char *old = w->blocks[i];
        if (old != NULL)
            for (unsigned k = 0; k < 32; k++)
                if (old[k] != (unsigned char)(w->id * 16 + i))
                    return (void *)"old block changed";
        unsigned char *p = IN_MALLOC(doms[i], 32 + r % 200);
        if (p == NULL || keyheap_domain_of(p) != doms[i])
            return (void *)"malloc inside did not land in the domain";
        memset(p, (int)(w->id * 16 + i), 32);
        keyheap_free(old);
        w->blocks[i] = p;
        keyheap_leave(doms[i]);
    }
    for (unsigned i = 0; i < TDOMAINS; i++)
        keyheap_free(w->blocks[i]); /* from outside, parked or not */
    return NULL;
}

START_TEST(test_four_threads_enter_random_domains_on_two_keys)
{
    make_many(TDOMAINS, "keys:2");
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    static struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.id = i, .seed = 77u + i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++) {
        void *why;
        ck_assert_int_eq(pthread_join(t[i], &why), 0);
        ck_assert_msg(why == NULL, "thread %u: %s", i, (const char *)why);
    }
    check_all(TDOMAINS);
    for (unsigned i = 0; i < TDOMAINS; i++) {
        struct keyheap_stats s;
        ck_assert_int_eq(keyheap_domain_stats(doms[i], &s), 0);
        ck_assert_uint_eq(s.objects, 1); /* its secret only */
    }
    destroy_many(TDOMAINS);
}
END_TEST

/* Blocks of a parked domain freed and reallocated by another thread. */
static void *free_parked(void *arg)
{
    (void)arg;
    unsigned char **blocks = (unsigned char **)pa;
    for (unsigned i = 0; i < 8; i++)
        keyheap_free(blocks[i]);
    blocks[8] = keyheap_realloc(blocks[8], 5000); /* grows: copied while a has a key */
    return NULL;
}

START_TEST(test_other_thread_frees_and_reallocs_blocks_of_a_parked_domain)
{
    setenv("KEYHEAP_CONF", "keys:1", 1);
    a = keyheap_domain_create("parked-frees", 0);
    b = keyheap_domain_create("key-holder", 0);
    static unsigned char *blocks[9];
    keyheap_enter(a);
    for (unsigned i = 0; i < 9; i++) {
        blocks[i] = IN_MALLOC(a, 100 + i * 300);
        memset(blocks[i], 0x70 + (int)i, 100 + i * 300);
    }
    keyheap_leave(a);
    keyheap_enter(b); /* a parked */
    keyheap_leave(b);
    /* Routing and stats need no key. */
    ck_assert_ptr_eq(keyheap_domain_of(blocks[3]), a);
    struct keyheap_stats s;
    ck_assert_int_eq(keyheap_domain_stats(a, &s), 0);
    ck_assert_uint_eq(s.objects, 9);
    pa = (unsigned char *)blocks;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_parked, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_nonnull(blocks[8]);
    ck_assert_ptr_eq(keyheap_domain_of(blocks[8]), a);
    ck_assert_int_eq(keyheap_domain_stats(a, &s), 0);
    ck_assert_uint_eq(s.objects, 1);
    keyheap_enter(a);
    for (unsigned k = 0; k < 100 + 8 * 300; k++)
        ck_assert_uint_eq(blocks[8][k], 0x78);
    keyheap_leave(a);
    keyheap_free(blocks[8]);
}
END_TEST

/* ---------------------------------------------------- lifecycle */

START_TEST(test_destroy_of_parked_and_resident_domains_gives_every_key_back)
{
    int before = free_keys();
    two_on_one_key(); /* a parked, b resident */
    ck_assert_int_eq(free_keys(), before - 1);
    /* The scrubbing free gives a the key back (b is parked), and a's
     * destroy gives it to the kernel. */
    keyheap_free(pa);
    ck_assert_int_eq(keyheap_domain_destroy(a), 0);
    ck_assert_int_eq(free_keys(), before);
    /* b, parked, takes a key again when entered, and intact. */
    keyheap_enter(b);
    ck_assert_uint_eq(kht_read(pb + 4), 0xb2);
    keyheap_leave(b);
    ck_assert_int_eq(free_keys(), before - 1);
    keyheap_free(pb);
    ck_assert_int_eq(keyheap_domain_destroy(b), 0);
    ck_assert_int_eq(free_keys(), before);
}
END_TEST

START_TEST(test_destroy_of_a_parked_domain_with_live_blocks)
{
    int before = free_keys();
    for (int round = 0; round < 20; round++) {
        two_on_one_key(); /* a parked with its block, b resident */
        ck_assert_int_eq(keyheap_domain_destroy(a), 0); /* parked: no key needed */
        ck_assert_ptr_null(keyheap_domain_of(pa));
        keyheap_free(pb);
        ck_assert_int_eq(keyheap_domain_destroy(b), 0);
    }
    ck_assert_int_eq(free_keys(), before);
    /* The slots are reused, and hand out memory that works. */
    two_on_one_key();
    keyheap_enter(a);
    ck_assert_uint_eq(kht_read(pa + 6), 0xa1);
    keyheap_leave(a);
}
END_TEST

START_TEST(test_pkey_of_a_parked_domain_gives_it_a_key_for_good)
{
    two_on_one_key(); /* a parked, b resident */
    int key = keyheap_domain_pkey(a);
    ck_assert_int_gt(key, 0);
    /* a keeps it: b, parked now, cannot get it */
    errno = 0;
    ck_assert_int_eq(keyheap_domain_pkey(b), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(keyheap_domain_pkey(a), key);
    /* a's memory carries the key and is readable inside */
    keyheap_enter(a);
    ck_assert_uint_eq(kht_read(pa), 0xa1);
    keyheap_leave(a);
}
END_TEST

START_TEST(test_fork_child_enters_a_parked_domain)
{
    two_on_one_key();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        keyheap_enter(a);
        int ok = kht_read(pa + 1) == 0xa1;
        keyheap_leave(a);
        keyheap_enter(b);
        ok = ok && kht_read(pb + 1) == 0xb2;
        keyheap_leave(b);
        _exit(ok ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}
END_TEST

START_TEST(test_audit_finds_nothing_with_parked_domains)
{
    make_many(40, "keys:2");
    for (unsigned r = 0; r < 100; r++)
        visit(next_rand(40));
    ck_assert_int_eq(keyheap_audit(KEYHEAP_AUDIT_REPORT), 0);
    destroy_many(40);
}
END_TEST

START_TEST(test_scrubbing_free_of_a_parked_block_zeroes_it)
{
    two_on_one_key(); /* a parked */
    unsigned char *keep = pa;
    keyheap_free(pa); /* scrubbed: a gets the key for it */
    keyheap_enter(a);
    /* The same size comes back from this thread's magazine: the freed one. */
    unsigned char *again = IN_MALLOC(a, SECRET);
    ck_assert_ptr_eq(again, keep);
    for (unsigned k = 0; k < SECRET; k++)
        ck_assert_uint_eq(again[k], 0);
    keyheap_leave(a);
}
END_TEST

/* ------------------------------- an eviction at every instruction of enter */

/* The inline enter under test, in a section of its own so that the trap
 * handler knows when the thread stands in it (the out-of-line path it may
 * call lies outside). */
__attribute__((noinline, section("khenter"))) static void stepped_enter(keyheap_domain_t *d)
{
    keyheap_enter(d);
}
extern const char __start_khenter[], __stop_khenter[];

static keyheap_domain_t *other;
static unsigned char *po;
static sem_t go;
static volatile int evictor_done = 1;
static volatile unsigned at_step, in_enter, triggered;

/* The evictor: enters other, which with keys:1 takes the key from the
 * victim unless a thread is inside the victim (then it waits). */
static void *evictor(void *arg)
{
    (void)arg;
    for (;;) {
        while (sem_wait(&go) != 0)
            continue;
        if (other == NULL)
            return NULL;
        keyheap_enter(other);
        po[0]++;
        keyheap_leave(other);
        evictor_done = 1;
    }
}

/* After every instruction: at the at_step-th instruction of the inline
 * enter, the evictor runs (and this thread waits for it, up to 100 ms: a
 * frame naming the victim makes the evictor wait for the key instead). */
static void on_step(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)si;
    const char *ip = (const char *)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
    if (ip < __start_khenter || ip >= __stop_khenter)
        return;
    if (++in_enter != at_step || !evictor_done)
        return;
    triggered++;
    evictor_done = 0;
    sem_post(&go);
    for (int i = 0; i < 1000 && !evictor_done; i++) {
        struct timespec ms = {0, 100000};
        nanosleep(&ms, NULL);
    }
}

/* The protection key of the mapping that holds p, from /proc/self/smaps. */
static int key_of_page(const void *p)
{
    size_t len;
    char *text = kht_slurp("/proc/self/smaps", &len);
    ck_assert_ptr_nonnull(text);
    int key = -1;
    bool here = false;
    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            here = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (here && sscanf(line, "ProtectionKey: %d", &key) == 1)
            break;
        if (end == NULL)
            break;
        line = end + 1;
    }
    free(text);
    return key;
}

static void eviction_at_every_step(bool twin)
{
    setenv("KEYHEAP_CONF", "keys:1", 1);
    a = keyheap_domain_create("entered", 0);
    other = keyheap_domain_create("evicting", 0);
    pa = keyheap_malloc(a, SECRET);
    po = keyheap_malloc(other, SECRET);
    keyheap_enter(a);
    memset(pa, 0x3c, SECRET);
    keyheap_leave(a);
    ck_assert_int_eq(sem_init(&go, 0, 0), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, evictor, NULL), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_step;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGTRAP, &sa, NULL), 0);
    unsigned steps = 0;
    for (at_step = 1;; at_step++) {
        in_enter = 0;
        unsigned before = triggered;
        __asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq" ::: "memory", "cc");
        stepped_enter(a);
        __asm__ volatile("pushfq; andq $~0x100, (%%rsp); popfq" ::: "memory", "cc");
        if (triggered == before) { /* past the enter's last instruction */
            keyheap_leave(a);
            break;
        }
        steps++;
        /* Inside a, whatever the evictor did at that instruction: a's
         * pages carry the key this thread has open, and the pages of the
         * other domain do not carry any key this thread has open. */
        ck_assert_uint_eq(kht_read(pa + 1), 0x3c);
        int ka = key_of_page(pa), ko = key_of_page(po);
        ck_assert_int_gt(ka, 0);
        ck_assert_uint_eq(kht_key_rights(ka), 0u);
        ck_assert_msg(ko <= 0 || (kht_key_rights(ko) & 1u), "step %u: key %d of the other domain is open",
                      at_step, ko);
        keyheap_leave(a);
        while (!evictor_done)
            usleep(1000);
    }
    ck_assert_uint_gt(steps, 10);
    if (!twin) {
        /* Inside a, which holds the one key: the other domain is parked. */
        keyheap_enter(a);
        kht_expect_accerr_fault(po + 1);
        kht_read(po + 1);
    }
    keyheap_enter(other);
    ck_assert_uint_eq(kht_read(po), (unsigned char)steps);
    keyheap_leave(other);
    other = NULL;
    sem_post(&go);
    pthread_join(t, NULL);
}

START_TEST(test_eviction_at_every_instruction_of_enter_leaves_no_key_open_elsewhere)
{
    eviction_at_every_step(true);
}
END_TEST

START_TEST(test_eviction_at_every_instruction_of_enter_then_the_other_domain_faults)
{
    eviction_at_every_step(false);
}
END_TEST

/* Two threads, each inside a domain of its own, both enter a third with
 * keys:2: each waits for the key the other holds.  The first to look
 * waits (one warning); the second sees that only waiting threads hold the
 * keys, and aborts. */
static keyheap_domain_t *own[2], *shared;
static pthread_barrier_t both_inside;

static void *enter_shared(void *arg)
{
    int i = (int)(intptr_t)arg;
    keyheap_enter(own[i]);
    pthread_barrier_wait(&both_inside);
    if (i == 1)
        usleep(200000); /* thread 0 looks first */
    keyheap_enter(shared);
    keyheap_leave(shared);
    keyheap_leave(own[i]);
    return NULL;
}

static void wait_for_each_other(void *arg)
{
    (void)arg;
    setenv("KEYHEAP_CONF", "keys:2", 1);
    own[0] = keyheap_domain_create("own0", 0);
    own[1] = keyheap_domain_create("own1", 0);
    shared = keyheap_domain_create("shared", 0);
    pthread_barrier_init(&both_inside, NULL, 2);
    pthread_t t[2];
    for (intptr_t i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, enter_shared, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}

START_TEST(test_threads_waiting_for_each_others_keys_abort)
{
    kht_expect_abort(wait_for_each_other, NULL,
                     "keyheap: domain \"shared\" waits for a protection key: each of keyheap's 2 "
                     "(KEYHEAP_CONF keys:2) is held by a domain another thread is inside; it "
                     "waits until one leaves (this warning is printed once)\n"
                     "keyheap: domain \"shared\" needs a protection key, but every one of "
                     "keyheap's 2 (KEYHEAP_CONF keys:2) is held by a domain this thread is "
                     "inside, whose key keyheap_domain_pkey gave out, or that only threads "
                     "waiting for a key themselves are inside: threads inside domains wait for "
                     "each other's keys for ever\n");
}
END_TEST

/* --------------------------------------------- errno, signal handlers */

START_TEST(test_a_miss_leaves_errno_alone)
{
    two_on_one_key(); /* a parked */
    errno = 4711;
    keyheap_free(pa); /* scrubs: a gets the key */
    ck_assert_int_eq(errno, 4711);
    keyheap_enter(b); /* a parked again */
    keyheap_leave(b);
    errno = 4712;
    keyheap_enter(a);
    int e = errno;
    keyheap_leave(a);
    ck_assert_int_eq(e, 4712);
}
END_TEST

/* A signal handler enters a parked domain while the thread it interrupted
 * is in a miss, holding keyheap's domain lock: the signal waits until the
 * miss is done (the lock is held with the thread's signals blocked), and
 * the handler's enter is a miss of its own.  A helper thread holds the
 * miss's round (it blocks keyheap's signal with the raw system call for
 * 300 ms; a round waits up to a second) and sends the signal meanwhile. */
static volatile int usr1_done;
static pid_t main_tid;
static sem_t helper_ready;

static void on_usr1(int sig)
{
    (void)sig;
    keyheap_enter(other);
    usr1_done = kht_read(po) == 0x44 ? 1 : 2;
    keyheap_leave(other);
}

static void *hold_the_round(void *arg)
{
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMAX - 1);
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &s, NULL, _NSIG / 8);
    sem_post(&helper_ready);
    usleep(100000);
    syscall(SYS_tgkill, getpid(), main_tid, SIGUSR1);
    usleep(200000);
    syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &s, NULL, _NSIG / 8);
    return NULL;
}

START_TEST(test_signal_handler_entering_a_parked_domain_during_a_miss)
{
    two_on_one_key(); /* a parked, b resident */
    other = keyheap_domain_create("in-handler", 0);
    po = keyheap_malloc(other, SECRET);
    keyheap_enter(other);
    memset(po, 0x44, SECRET);
    keyheap_leave(other);
    keyheap_enter(b); /* other parked, b holds the key */
    keyheap_leave(b);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    main_tid = (pid_t)syscall(SYS_gettid);
    ck_assert_int_eq(sem_init(&helper_ready, 0, 0), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, hold_the_round, NULL), 0);
    while (sem_wait(&helper_ready) != 0)
        continue;
    keyheap_enter(a); /* a miss: evicts b; its round waits for the helper */
    ck_assert_uint_eq(kht_read(pa + 2), 0xa1);
    keyheap_leave(a);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < 1000 && usr1_done == 0; i++)
        usleep(1000);
    ck_assert_int_eq(usr1_done, 1);
}
END_TEST

/* ------------------- threads that start, exit or sit in a signal handler */

/* Whether d is parked now: its handle says so (keyheap.h's ABI). */
static bool is_parked(keyheap_domain_t *d)
{
    const struct keyheap_abi_domain *h = (const struct keyheap_abi_domain *)(const void *)d;
    return __atomic_load_n(&h->live, __ATOMIC_ACQUIRE) == KEYHEAP_ABI_PARKED;
}

/* keys:2: a and c resident and used, b parked; a's, c's and b's secrets
 * are 0x11, 0x33 and (written by whoever gives b a key) 0x22. */
static unsigned char *pc;

static void three_domains(void)
{
    setenv("KEYHEAP_CONF", "keys:2", 1);
    a = keyheap_domain_create("made-in", 0);
    c = keyheap_domain_create("other-resident", 0);
    b = keyheap_domain_create("next-owner", 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(b);
    ck_assert(!is_parked(a) && !is_parked(c) && is_parked(b));
    pa = keyheap_malloc(a, SECRET);
    pc = keyheap_malloc(c, SECRET);
    pb = keyheap_malloc(b, SECRET);
    ck_assert(pa != NULL && pb != NULL && pc != NULL);
    keyheap_enter(c);
    memset(pc, 0x33, SECRET);
    keyheap_leave(c);
}

/* How the thread under test spends the miss: inside a or outside every
 * domain; in its start routine or in a thread-specific-data destructor
 * (it returned, and is exiting); and whether it then reads b's memory
 * where b's key is closed (it must fault on b's key) or enters b first
 * (the twin, which must read fine). */
enum { STAY_INSIDE = 1, IN_DESTRUCTOR = 2, TWIN = 4 };
static unsigned mode_now;
static const char *volatile thread_fail;

/* What the thread does once b holds a key it never opened. */
static void read_the_next_owner(void)
{
    if ((mode_now & STAY_INSIDE) && kht_read(pa + 3) != 0x11)
        thread_fail = "a's secret changed while the thread was inside a";
    if (mode_now & TWIN) {
        keyheap_enter_ro(b);
        if (kht_read(pb + 3) != 0x22)
            thread_fail = "b's secret is not the one written inside b";
        keyheap_leave(b);
    } else {
        kht_read(pb + 3);
        thread_fail = "the thread read the next owner's memory without a fault";
    }
    if (mode_now & STAY_INSIDE)
        keyheap_leave(a);
}

/* A thread made while its creator is inside a (through keyheap's
 * pthread_create) enters a itself, and stays inside or leaves.  Then, the
 * thread still running, or in its destructors after it returned, a third
 * thread enters b: a miss with every resident domain used, so a sweep
 * reaches the thread, and an eviction.  If the thread stayed inside a, a
 * keeps its key (the sweep found a on the thread's stack, and keeps it
 * open) and c loses its key to b; if it left, the creator sits inside c,
 * and a loses its key to b.  Then the thread reads b. */
static pthread_barrier_t phase;
static pthread_key_t exit_tsd;

static void made_inside_at_the_miss(void)
{
    pthread_barrier_wait(&phase); /* 1: inside a, or left it */
    pthread_barrier_wait(&phase); /* 2: the third thread's miss is done */
    pthread_barrier_wait(&phase); /* 3: the creator has looked at the keys */
    read_the_next_owner();
}

static void made_inside_exits(void *arg)
{
    (void)arg;
    made_inside_at_the_miss();
}

static void *made_inside(void *arg)
{
    (void)arg;
    keyheap_enter(a);
    if (kht_read(pa + 1) != 0x11)
        thread_fail = "a's secret is not the one written inside a";
    if (!(mode_now & STAY_INSIDE))
        keyheap_leave(a);
    if (mode_now & IN_DESTRUCTOR) {
        /* It returns, inside a when it stays: its destructor meets the
         * miss while the thread is exiting. */
        pthread_setspecific(exit_tsd, &mode_now);
        return NULL;
    }
    made_inside_at_the_miss();
    return NULL;
}

static void *third_enters_b(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&phase); /* 1 */
    keyheap_enter(b);             /* the miss: a sweep, then an eviction */
    memset(pb, 0x22, SECRET);
    keyheap_leave(b);
    pthread_barrier_wait(&phase); /* 2 */
    pthread_barrier_wait(&phase); /* 3 */
    return NULL;
}

static void thread_made_inside_across_a_miss(unsigned mode)
{
    mode_now = mode;
    bool stay = mode & STAY_INSIDE;
    three_domains();
    int ka = key_of_page(pa), kc = key_of_page(pc);
    ck_assert_int_gt(ka, 0);
    ck_assert_int_gt(kc, 0);
    ck_assert_int_eq(pthread_key_create(&exit_tsd, made_inside_exits), 0);
    ck_assert_int_eq(pthread_barrier_init(&phase, NULL, 3), 0);
    pthread_t made, third;
    ck_assert_int_eq(pthread_create(&third, NULL, third_enters_b, NULL), 0);
    keyheap_enter(a);
    memset(pa, 0x11, SECRET);
    ck_assert_int_eq(pthread_create(&made, NULL, made_inside, NULL), 0);
    keyheap_leave(a);
    if (!stay)
        keyheap_enter(c); /* c is kept: a is the victim */
    pthread_barrier_wait(&phase); /* 1 */
    pthread_barrier_wait(&phase); /* 2 */
    ck_assert(!is_parked(b));
    int kb = key_of_page(pb);
    if (stay) {
        /* a kept its key through the sweep; c's went to b */
        ck_assert(!is_parked(a));
        ck_assert_int_eq(key_of_page(pa), ka);
        ck_assert(is_parked(c));
        ck_assert_int_eq(kb, kc);
    } else {
        /* a's key went to b; its pages carry none */
        ck_assert(is_parked(a));
        ck_assert_int_eq(key_of_page(pa), 0);
        ck_assert_int_eq(kb, ka);
        ck_assert(!is_parked(c));
        keyheap_leave(c);
    }
    if (!(mode & TWIN))
        kht_expect_pku_fault(kb);
    pthread_barrier_wait(&phase); /* 3 */
    ck_assert_int_eq(pthread_join(made, NULL), 0);
    ck_assert_int_eq(pthread_join(third, NULL), 0);
    ck_assert_msg(thread_fail == NULL, "%s", thread_fail);
    keyheap_enter(b);
    ck_assert_uint_eq(kht_read(pb + 5), 0x22);
    keyheap_leave(b);
}

START_TEST(test_thread_made_inside_stays_inside_through_a_sweep_but_cannot_read_the_next_owner)
{
    thread_made_inside_across_a_miss(STAY_INSIDE);
}
END_TEST

START_TEST(test_thread_made_inside_stays_inside_through_a_sweep_and_reads_both_domains)
{
    thread_made_inside_across_a_miss(STAY_INSIDE | TWIN);
}
END_TEST

START_TEST(test_thread_made_inside_that_left_cannot_read_the_next_owner_of_the_key)
{
    thread_made_inside_across_a_miss(0);
}
END_TEST

START_TEST(test_thread_made_inside_that_left_reads_the_next_owner_inside)
{
    thread_made_inside_across_a_miss(TWIN);
}
END_TEST

START_TEST(test_thread_exiting_inside_at_a_sweep_cannot_read_the_next_owner)
{
    thread_made_inside_across_a_miss(STAY_INSIDE | IN_DESTRUCTOR);
}
END_TEST

START_TEST(test_thread_exiting_inside_at_a_sweep_keeps_its_domain_and_reads_both)
{
    thread_made_inside_across_a_miss(STAY_INSIDE | IN_DESTRUCTOR | TWIN);
}
END_TEST

START_TEST(test_thread_exiting_outside_at_a_sweep_cannot_read_the_next_owner)
{
    thread_made_inside_across_a_miss(IN_DESTRUCTOR);
}
END_TEST

START_TEST(test_thread_exiting_outside_at_a_sweep_reads_the_next_owner_inside)
{
    thread_made_inside_across_a_miss(IN_DESTRUCTOR | TWIN);
}
END_TEST

/* A registered thread (made inside a, it entered a itself) blocks in a
 * handler of SIGUSR1, interrupted inside a or outside every domain, while
 * this thread makes misses, each with every resident domain used: a sweep
 * (which reaches the thread in its handler) and an eviction.  Inside a,
 * the thread's stack names a: a keeps its key through three of them, and
 * the thread reads a when the handler returns (its PKRU comes back from
 * the signal frame, which no sweep can edit).  Outside, a loses its key to
 * b (this thread sits inside c), and the thread faults on b's memory. */
static sem_t usr1_ready, usr1_in, usr1_release, usr1_wake;

static void on_usr1_blocks(int sig)
{
    (void)sig;
    sem_post(&usr1_in);
    while (sem_wait(&usr1_release) != 0)
        continue;
}

static void *interrupted(void *arg)
{
    (void)arg;
    keyheap_enter(a);
    if (kht_read(pa + 1) != 0x11)
        thread_fail = "a's secret is not the one written inside a";
    if (!(mode_now & STAY_INSIDE))
        keyheap_leave(a);
    sem_post(&usr1_ready);
    while (sem_wait(&usr1_wake) != 0) /* SIGUSR1 comes here (or just before) */
        continue;
    read_the_next_owner();
    return NULL;
}

static void in_a_handler_across_misses(unsigned mode)
{
    mode_now = mode;
    bool stay = mode & STAY_INSIDE;
    three_domains();
    int ka = key_of_page(pa), kc = key_of_page(pc);
    ck_assert_int_gt(ka, 0);
    ck_assert_int_gt(kc, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_blocks;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    ck_assert_int_eq(sem_init(&usr1_ready, 0, 0), 0);
    ck_assert_int_eq(sem_init(&usr1_in, 0, 0), 0);
    ck_assert_int_eq(sem_init(&usr1_release, 0, 0), 0);
    ck_assert_int_eq(sem_init(&usr1_wake, 0, 0), 0);
    pthread_t t;
    keyheap_enter(a);
    memset(pa, 0x11, SECRET);
    ck_assert_int_eq(pthread_create(&t, NULL, interrupted, NULL), 0);
    keyheap_leave(a);
    while (sem_wait(&usr1_ready) != 0)
        continue;
    ck_assert_int_eq(pthread_kill(t, SIGUSR1), 0);
    while (sem_wait(&usr1_in) != 0)
        continue;
    int kb;
    if (stay) {
        keyheap_domain_t *order[3] = {b, c, b};
        for (unsigned i = 0; i < 3; i++) {
            keyheap_domain_t *d = order[i], *evicted = d == b ? c : b;
            keyheap_enter(d); /* a sweep, then an eviction */
            if (d == b && i == 0)
                memset(pb, 0x22, SECRET);
            ck_assert_uint_eq(kht_read(d == b ? pb + 7 : pc + 7), d == b ? 0x22 : 0x33);
            keyheap_leave(d);
            ck_assert_msg(!is_parked(a) && key_of_page(pa) == ka, "miss %u took a's key", i);
            ck_assert_msg(is_parked(evicted), "miss %u: the other domain kept its key", i);
            ck_assert_int_eq(key_of_page(d == b ? pb : pc), kc);
        }
        kb = kc;
    } else {
        keyheap_enter(c); /* c is kept: a is the victim */
        keyheap_enter(b);
        memset(pb, 0x22, SECRET);
        keyheap_leave(b);
        keyheap_leave(c);
        ck_assert(is_parked(a));
        ck_assert_int_eq(key_of_page(pa), 0);
        kb = ka;
    }
    ck_assert_int_eq(key_of_page(pb), kb);
    if (!(mode & TWIN))
        kht_expect_pku_fault(kb);
    sem_post(&usr1_release);
    sem_post(&usr1_wake);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(thread_fail == NULL, "%s", thread_fail);
}

START_TEST(test_thread_in_a_handler_interrupted_inside_keeps_it_but_cannot_read_the_next_owner)
{
    in_a_handler_across_misses(STAY_INSIDE);
}
END_TEST

START_TEST(test_thread_in_a_handler_interrupted_inside_keeps_its_domain_through_sweeps)
{
    in_a_handler_across_misses(STAY_INSIDE | TWIN);
}
END_TEST

START_TEST(test_thread_in_a_handler_interrupted_outside_cannot_read_the_next_owner)
{
    in_a_handler_across_misses(0);
}
END_TEST

START_TEST(test_thread_in_a_handler_interrupted_outside_reads_the_next_owner_inside)
{
    in_a_handler_across_misses(TWIN);
}
END_TEST

/* ------------------------------------------------ under the watchdog */

/* Three threads enter random domains of 50 on two keys while the watchdog
 * audits every task every millisecond: every miss evicts, and sweeps and
 * audit rounds interleave.  The watchdog finds no key open where it must
 * not be (it reports every key it closes, on stderr, here a file), each
 * thread's blocks and every secret are intact, and at most two domains
 * hold keys.  Then a resident domain's memory faults on its key inside
 * another domain, and reads fine where that domain is entered too. */
#define WDOMAINS 50
#define WTHREADS 3
#define WROUNDS 60

struct watched {
    unsigned id, seed;
    unsigned char *blocks[WDOMAINS];
};

static void *watched_main(void *arg)
{
    struct watched *w = arg;
    pthread_barrier_wait(&start);
    for (unsigned r = 0; r < WROUNDS; r++) {
        w->seed = w->seed * 1103515245u + 12345u;
        unsigned i = (w->seed >> 8) % WDOMAINS;
        unsigned char mark = (unsigned char)(w->id * 64 + i);
        keyheap_enter(doms[i]);
        for (unsigned k = 0; k < SECRET; k++)
            if (secrets[i][k] != byte_of(i, 0, k))
                return (void *)"a domain's secret changed";
        unsigned char *old = w->blocks[i];
        if (old != NULL)
            for (unsigned k = 0; k < 32; k++)
                if (old[k] != mark)
                    return (void *)"a block of this thread changed";
        unsigned char *p = IN_MALLOC(doms[i], 32 + r % 100);
        if (p == NULL || keyheap_domain_of(p) != doms[i])
            return (void *)"malloc inside did not land in the domain";
        memset(p, mark, 32);
        keyheap_free(old);
        w->blocks[i] = p;
        keyheap_leave(doms[i]);
    }
    for (unsigned i = 0; i < WDOMAINS; i++)
        keyheap_free(w->blocks[i]);
    return NULL;
}

static void churn_under_the_watchdog(bool twin)
{
    char log[] = "/tmp/keyheap-watchdog-XXXXXX";
    int fd = mkstemp(log), saved = dup(2);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
    make_many(WDOMAINS, "keys:2,watchdog:1");
    pthread_barrier_init(&start, NULL, WTHREADS);
    pthread_t t[WTHREADS];
    static struct watched w[WTHREADS];
    for (unsigned i = 0; i < WTHREADS; i++) {
        w[i] = (struct watched){.id = i, .seed = 501u + 7u * i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, watched_main, &w[i]), 0);
    }
    for (unsigned i = 0; i < WTHREADS; i++) {
        void *why;
        ck_assert_int_eq(pthread_join(t[i], &why), 0);
        ck_assert_msg(why == NULL, "thread %u: %s", i, (const char *)why);
    }
    check_all(WDOMAINS);
    unsigned parked = 0;
    for (unsigned i = 0; i < WDOMAINS; i++)
        parked += is_parked(doms[i]);
    ck_assert_uint_ge(parked, WDOMAINS - 2);
    size_t len;
    char *text = kht_slurp(log, &len);
    ck_assert_msg(strstr(text, "watchdog: thread ") == NULL, "the watchdog closed keys: %s", text);
    free(text);
    unlink(log);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    /* doms[1] and doms[0] resident (doms[1] is kept while doms[0] gets a
     * key), then inside doms[0] alone. */
    keyheap_enter(doms[1]);
    keyheap_enter(doms[0]);
    keyheap_leave(doms[0]);
    keyheap_leave(doms[1]);
    keyheap_enter(doms[0]);
    ck_assert(!is_parked(doms[1]));
    int k1 = key_of_page(secrets[1]);
    ck_assert_int_gt(k1, 0);
    ck_assert_int_ne(key_of_page(secrets[0]), k1);
    if (!twin) {
        kht_expect_pku_fault(k1);
        kht_read(secrets[1] + 2);
        ck_abort_msg("read another resident domain's memory without a fault");
    }
    keyheap_enter_ro(doms[1]);
    ck_assert_uint_eq(kht_read(secrets[1] + 2), byte_of(1, version[1], 2));
    keyheap_leave(doms[1]);
    keyheap_leave(doms[0]);
    destroy_many(WDOMAINS);
}

START_TEST(test_three_threads_on_two_keys_under_a_1ms_watchdog_keep_every_secret)
{
    churn_under_the_watchdog(true);
}
END_TEST

START_TEST(test_after_evictions_under_the_watchdog_a_resident_domain_faults_inside_another)
{
    churn_under_the_watchdog(false);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("many_domains");

    TCase *many = tcase_create("many");
    tcase_set_timeout(many, 300);
    tcase_add_test(many, test_thousand_domains_on_two_keys_keep_every_secret);
    tcase_add_test(many, test_thousand_domains_with_one_key_left_by_other_code);
    tcase_add_test(many, test_thousand_create_destroy_cycles_on_two_keys_leak_no_key);
    suite_add_tcase(s, many);

    TCase *faults = tcase_create("faults");
    tcase_set_timeout(faults, 60);
    tcase_add_exit_test(faults, test_parked_domain_faults_from_outside_with_accerr,
                        KHT_EXIT_ACCERR_FAULT);
    tcase_add_test(faults, test_parked_domain_reads_fine_inside);
    tcase_add_exit_test(faults, test_parked_domain_faults_from_inside_another_domain,
                        KHT_EXIT_ACCERR_FAULT);
    tcase_add_exit_test(faults, test_resident_domain_faults_inside_another_domain,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(faults, test_resident_domain_reads_inside_after_entering_from_another);
#ifndef KHT_ASAN /* AddressSanitizer owns SIGSEGV: no report of keyheap's there */
    tcase_add_test(faults, test_fault_report_names_the_parked_domain);
#endif
    tcase_add_exit_test(faults, test_raw_clone_made_inside_cannot_read_the_next_owner_of_the_key,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(faults, test_raw_clone_made_inside_runs_and_the_next_owner_reads_inside);
    tcase_add_exit_test(faults, test_raw_clone_made_inside_after_a_sweep_cannot_read_the_next_owner,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(faults, test_raw_clone_made_inside_after_a_sweep_runs_and_reads_plain_memory);
    suite_add_tcase(s, faults);

    TCase *stepped = tcase_create("stepped");
    tcase_set_timeout(stepped, 300);
    tcase_add_test(stepped,
                   test_eviction_at_every_instruction_of_enter_leaves_no_key_open_elsewhere);
    tcase_add_exit_test(stepped,
                        test_eviction_at_every_instruction_of_enter_then_the_other_domain_faults,
                        KHT_EXIT_ACCERR_FAULT);
    suite_add_tcase(s, stepped);

    TCase *nesting = tcase_create("nesting");
    tcase_add_test(nesting, test_nesting_as_many_domains_as_keys_works);
    tcase_add_test(nesting, test_nesting_more_domains_than_keys_aborts);
    tcase_add_test(nesting, test_threads_waiting_for_each_others_keys_abort);
    suite_add_tcase(s, nesting);

    TCase *threads = tcase_create("threads");
    tcase_set_timeout(threads, 300);
    tcase_add_test(threads, test_four_threads_enter_random_domains_on_two_keys);
    tcase_add_test(threads, test_other_thread_frees_and_reallocs_blocks_of_a_parked_domain);
    suite_add_tcase(s, threads);

    TCase *born = tcase_create("thread_life");
    tcase_set_timeout(born, 60);
    tcase_add_exit_test(
        born, test_thread_made_inside_stays_inside_through_a_sweep_but_cannot_read_the_next_owner,
        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born,
                   test_thread_made_inside_stays_inside_through_a_sweep_and_reads_both_domains);
    tcase_add_exit_test(born,
                        test_thread_made_inside_that_left_cannot_read_the_next_owner_of_the_key,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born, test_thread_made_inside_that_left_reads_the_next_owner_inside);
    tcase_add_exit_test(born, test_thread_exiting_inside_at_a_sweep_cannot_read_the_next_owner,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born, test_thread_exiting_inside_at_a_sweep_keeps_its_domain_and_reads_both);
    tcase_add_exit_test(born, test_thread_exiting_outside_at_a_sweep_cannot_read_the_next_owner,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born, test_thread_exiting_outside_at_a_sweep_reads_the_next_owner_inside);
    suite_add_tcase(s, born);

    TCase *handlers = tcase_create("in_handler");
    tcase_set_timeout(handlers, 60);
    tcase_add_exit_test(
        handlers,
        test_thread_in_a_handler_interrupted_inside_keeps_it_but_cannot_read_the_next_owner,
        KHT_EXIT_PKU_FAULT);
    tcase_add_test(handlers,
                   test_thread_in_a_handler_interrupted_inside_keeps_its_domain_through_sweeps);
    tcase_add_exit_test(handlers,
                        test_thread_in_a_handler_interrupted_outside_cannot_read_the_next_owner,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(handlers,
                   test_thread_in_a_handler_interrupted_outside_reads_the_next_owner_inside);
    suite_add_tcase(s, handlers);

    TCase *watched = tcase_create("watchdog");
    tcase_set_timeout(watched, 300);
    tcase_add_test(watched, test_three_threads_on_two_keys_under_a_1ms_watchdog_keep_every_secret);
    tcase_add_exit_test(watched,
                        test_after_evictions_under_the_watchdog_a_resident_domain_faults_inside_another,
                        KHT_EXIT_PKU_FAULT);
    suite_add_tcase(s, watched);

    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 60);
    tcase_add_test(life, test_destroy_of_parked_and_resident_domains_gives_every_key_back);
    tcase_add_test(life, test_destroy_of_a_parked_domain_with_live_blocks);
    tcase_add_test(life, test_pkey_of_a_parked_domain_gives_it_a_key_for_good);
    tcase_add_test(life, test_fork_child_enters_a_parked_domain);
    tcase_add_test(life, test_audit_finds_nothing_with_parked_domains);
    tcase_add_test(life, test_scrubbing_free_of_a_parked_block_zeroes_it);
    tcase_add_test(life, test_a_miss_leaves_errno_alone);
    tcase_add_test(life, test_signal_handler_entering_a_parked_domain_during_a_miss);
    suite_add_tcase(s, life);

    return kht_main(s);
}
