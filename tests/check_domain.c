/*
 * tests/check_domain.c - security domains on real protection keys.
 *
 * Runs through tools/pku-run (natively on a CPU with PKU, otherwise in a
 * QEMU machine that emulates it).  Every must-fault test accepts only
 * SEGV_PKUERR on the domain's key and has a twin that must not fault.
 *
 * Built a second time with KHT_UNPROTECTED as tests/check_nopku: the tests
 * of the heaps and lifecycle of domains that do not need keys, run with
 * KEYHEAP_CONF=pku:off,unprotected:true (keyheap's no-PKU mode), natively
 * and under valgrind (make check-valgrind), which has no protection keys.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/keyheap.h"
#include "tests/khfault.h"
#include "tests/khtest.h"

#define MiB ((size_t)1 << 20)

#ifdef KHT_NO_REPLACEMENT
/* Built for a library configured with --disable-malloc-replacement (the
 * sanitizer build in .ci/run): keyheap does not own the plain malloc
 * family there, so the tests that use it as shorthand for "allocate in this
 * thread's malloc target" get keyheap's explicit API instead, and the tests
 * of the plain family itself are left out (main, at the end). */
/* Inside a domain: keyheap's; outside: the C library's (the sanitizer's),
 * which also owns the blocks of the test helpers. */
static void *kht_malloc(size_t n)
{
    keyheap_domain_t *d = keyheap_current();
    return d ? keyheap_malloc(d, n) : malloc(n);
}
static void *kht_calloc(size_t n, size_t m)
{
    keyheap_domain_t *d = keyheap_current();
    return d ? keyheap_calloc(d, n, m) : calloc(n, m);
}
static void *kht_aligned_alloc(size_t a, size_t n)
{
    keyheap_domain_t *d = keyheap_current();
    return d ? keyheap_aligned_alloc(d, a, n) : aligned_alloc(a, n);
}
static void *kht_realloc(void *p, size_t n)
{
    if (p == NULL ? keyheap_current() != NULL : keyheap_domain_of(p) != NULL)
        return keyheap_realloc(p, n);
    return realloc(p, n);
}
static void kht_free(void *p)
{
    if (keyheap_domain_of(p) != NULL)
        keyheap_free(p);
    else
        free(p);
}
static size_t kht_usable_size(void *p)
{
    return keyheap_domain_of(p) != NULL ? keyheap_usable_size(p) : malloc_usable_size(p);
}
#define malloc(n) kht_malloc(n)
#define calloc(n, m) kht_calloc(n, m)
#define aligned_alloc(a, n) kht_aligned_alloc(a, n)
#define realloc(p, n) kht_realloc(p, n)
#define free(p) kht_free(p)
#define malloc_usable_size(p) kht_usable_size(p)
static void *(*volatile v_malloc)(size_t) = kht_malloc;
/* Used on domain blocks only, also on those of destroyed domains. */
static void (*volatile v_free)(void *) = keyheap_free;
static void *(*volatile v_realloc)(void *, size_t) = keyheap_realloc;
#else
static void *(*volatile v_malloc)(size_t) = malloc;
/* free through a pointer the compiler cannot see through: the misuse
 * tests use blocks after freeing them on purpose. */
static void (*volatile v_free)(void *) = free;
/* realloc that the compiler cannot see through: the old pointer is
 * compared with the new one. */
static void *(*volatile v_realloc)(void *, size_t) = realloc;
#endif

/* AddressSanitizer ignores mlock (its interceptor does nothing) and maps
 * memory of its own: the tests of locked pages and of mappings do not
 * apply under it (KHT_ASAN: tests/khtest.h). */

/* A hardware-protected domain, or a failed test. */
static keyheap_domain_t *domain(const char *name)
{
    keyheap_domain_t *d = keyheap_domain_create(name, 0);
    ck_assert_msg(d != NULL, "keyheap_domain_create(\"%s\"): %s", name, strerror(errno));
#ifdef KHT_UNPROTECTED
    ck_assert_msg(keyheap_domain_pkey(d) == -1, "domain \"%s\" has key %d in the no-PKU mode",
                  name, keyheap_domain_pkey(d));
#else
    ck_assert_msg(keyheap_domain_pkey(d) > 0,
                  "domain \"%s\" has no hardware key: run this test through tools/pku-run", name);
#endif
    return d;
}

/* A block of d holding value in every byte, made from inside d. */
static unsigned char *secret(keyheap_domain_t *d, size_t n, unsigned char value)
{
    keyheap_enter(d);
    unsigned char *p = v_malloc(n);
    ck_assert_ptr_nonnull(p);
    memset(p, value, n);
    keyheap_leave(d);
    return p;
}

#ifndef KHT_UNPROTECTED
/* ------------------------------------------------ access from outside */

START_TEST(test_read_outside_domain_faults)
{
    keyheap_domain_t *d = domain("read-outside");
    unsigned char *p = secret(d, 64, 0x5a);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    kht_read(p);
}
END_TEST

START_TEST(test_read_inside_domain_works)
{
    keyheap_domain_t *d = domain("read-inside");
    unsigned char *p = secret(d, 64, 0x5a);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    keyheap_enter(d);
    ck_assert_uint_eq(kht_read(p + 63), 0x5a);
    keyheap_leave(d);
}
END_TEST

START_TEST(test_write_outside_domain_faults)
{
    keyheap_domain_t *d = domain("write-outside");
    unsigned char *p = secret(d, 64, 1);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    kht_write(p, 2);
}
END_TEST

START_TEST(test_write_inside_domain_works)
{
    keyheap_domain_t *d = domain("write-inside");
    unsigned char *p = secret(d, 64, 1);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    keyheap_enter(d);
    kht_write(p, 2);
    ck_assert_uint_eq(kht_read(p), 2);
    keyheap_leave(d);
}
END_TEST

START_TEST(test_write_in_read_only_enter_faults)
{
    keyheap_domain_t *d = domain("ro-write");
    unsigned char *p = secret(d, 64, 7);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    keyheap_enter_ro(d);
    ck_assert_uint_eq(kht_read(p), 7);
    kht_write(p, 8);
}
END_TEST

START_TEST(test_read_in_read_only_enter_works_and_keeps_malloc_target)
{
    keyheap_domain_t *d = domain("ro-read");
    unsigned char *p = secret(d, 64, 7);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    keyheap_enter_ro(d);
    ck_assert_uint_eq(kht_read(p + 10), 7);
    ck_assert_ptr_null(keyheap_current());
    void *q = v_malloc(10);
    ck_assert_ptr_null(keyheap_domain_of(q));
    free(q);
    keyheap_leave(d);
}
END_TEST

START_TEST(test_read_only_enter_inside_read_write_stays_writable)
{
    keyheap_domain_t *d = domain("rw-then-ro");
    unsigned char *p = secret(d, 64, 7);
    kht_expect_pku_fault(keyheap_domain_pkey(d));
    keyheap_enter(d);
    keyheap_enter_ro(d);
    kht_write(p, 9);
    keyheap_leave(d);
    keyheap_leave(d);
    keyheap_enter_ro(d);
    ck_assert_uint_eq(kht_read(p), 9);
    keyheap_leave(d);
}
END_TEST

#endif

/* ---------------------------------------------------------- threads */

struct shared {
    keyheap_domain_t *d;
    unsigned char *p;
    pthread_barrier_t go;
    int enter_itself;
    unsigned char seen;
};

#ifndef KHT_UNPROTECTED
/* Reads the secret, entering the domain first when the test says so. */
static void read_secret(struct shared *s)
{
    if (s->enter_itself)
        keyheap_enter_ro(s->d);
    s->seen = kht_read(s->p);
    if (s->enter_itself)
        keyheap_leave(s->d);
}

static void *read_from_thread(void *arg)
{
    struct shared *s = arg;
    pthread_barrier_wait(&s->go);
    read_secret(s);
    return NULL;
}

static void other_thread_reads(int enter_itself)
{
    struct shared s = {.enter_itself = enter_itself};
    s.d = domain("threads");
    s.p = secret(s.d, 64, 0x77);
    pthread_barrier_init(&s.go, NULL, 2);
    pthread_t t;
    /* The thread exists before this one enters. */
    ck_assert_int_eq(pthread_create(&t, NULL, read_from_thread, &s), 0);
    kht_expect_pku_fault(keyheap_domain_pkey(s.d));
    keyheap_enter(s.d);
    pthread_barrier_wait(&s.go);
    pthread_join(t, NULL);
    keyheap_leave(s.d);
    ck_assert_uint_eq(s.seen, 0x77);
}

START_TEST(test_other_thread_cannot_read_while_this_one_is_inside)
{
    other_thread_reads(0);
}
END_TEST

START_TEST(test_other_thread_that_enters_itself_can_read)
{
    other_thread_reads(1);
}
END_TEST

static void *new_thread_reads(void *arg)
{
    struct shared *s = arg;
    ck_assert_ptr_null(keyheap_current());
    ck_assert_int_eq(keyheap_audit(0), 0);
    read_secret(s);
    return NULL;
}

static void thread_created_inside(int enter_itself)
{
    struct shared s = {.enter_itself = enter_itself};
    s.d = domain("creator");
    s.p = secret(s.d, 64, 0x66);
    kht_expect_pku_fault(keyheap_domain_pkey(s.d));
    keyheap_enter(s.d);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, new_thread_reads, &s), 0);
    pthread_join(t, NULL);
    keyheap_leave(s.d);
    ck_assert_uint_eq(s.seen, 0x66);
}

START_TEST(test_thread_created_inside_domain_starts_closed)
{
    thread_created_inside(0);
}
END_TEST

START_TEST(test_thread_created_inside_domain_can_enter_itself)
{
    thread_created_inside(1);
}
END_TEST

/* ---------------------------------------------------------- signals */

static struct shared sig;

static void on_usr1(int signo)
{
    (void)signo;
    read_secret(&sig);
}

static void signal_handler_reads(int enter_itself)
{
    sig.enter_itself = enter_itself;
    sig.d = domain("signals");
    sig.p = secret(sig.d, 64, 0x44);
    signal(SIGUSR1, on_usr1);
    kht_expect_pku_fault(keyheap_domain_pkey(sig.d));
    keyheap_enter(sig.d);
    raise(SIGUSR1);
    /* The interrupted state came back: still inside, still writable. */
    kht_write(sig.p, 0x45);
    keyheap_leave(sig.d);
    ck_assert_uint_eq(sig.seen, 0x44);
}

START_TEST(test_signal_handler_cannot_read_domain_entered_by_interrupted_code)
{
    signal_handler_reads(0);
}
END_TEST

START_TEST(test_signal_handler_that_enters_can_read_and_interrupted_state_returns)
{
    signal_handler_reads(1);
}
END_TEST

/* ------------------------------------------------------------ nesting */

START_TEST(test_nesting_three_deep_restores_each_level)
{
    keyheap_domain_t *a = domain("a"), *b = domain("b"), *c = domain("c");
    int ka = keyheap_domain_pkey(a), kb = keyheap_domain_pkey(b), kc = keyheap_domain_pkey(c);
    enum { CLOSED = 1, RO = 2, RW = 0 }; /* PKRU bits: AD = 1, WD = 2 */
    ck_assert_uint_eq(kht_key_rights(ka), CLOSED);
    keyheap_enter(a);
    ck_assert_uint_eq(kht_key_rights(ka), RW);
    ck_assert_ptr_eq(keyheap_current(), a);
    keyheap_enter_ro(b);
    ck_assert_uint_eq(kht_key_rights(kb), RO);
    ck_assert_ptr_eq(keyheap_current(), a);
    keyheap_enter(c);
    ck_assert_uint_eq(kht_key_rights(ka), RW);
    ck_assert_uint_eq(kht_key_rights(kb), RO);
    ck_assert_uint_eq(kht_key_rights(kc), RW);
    ck_assert_ptr_eq(keyheap_current(), c);
    void *pc = v_malloc(32);
    ck_assert_ptr_eq(keyheap_domain_of(pc), c);
    ck_assert_int_eq(keyheap_audit(0), 0);
    keyheap_leave(c);
    ck_assert_uint_eq(kht_key_rights(kc), CLOSED);
    ck_assert_ptr_eq(keyheap_current(), a);
    keyheap_leave(b);
    ck_assert_uint_eq(kht_key_rights(kb), CLOSED);
    ck_assert_uint_eq(kht_key_rights(ka), RW);
    keyheap_leave(a);
    ck_assert_uint_eq(kht_key_rights(ka), CLOSED);
    ck_assert_ptr_null(keyheap_current());
    free(pc);
}
END_TEST

/* Runs fn with stderr in a temporary file; returns what it wrote. */
static const char *captured_stderr(void (*fn)(void))
{
    static char text[4096];
    char path[] = "/tmp/keyheap-err-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    memset(text, 0, sizeof text);
    ck_assert_int_ge(pread(fd, text, sizeof text - 1, 0), 0);
    close(fd);
    return text;
}

static int audit_result;

static void audit_and_report(void)
{
    audit_result = keyheap_audit(KEYHEAP_AUDIT_REPORT);
}

static void audit_repair_and_report(void)
{
    audit_result = keyheap_audit(KEYHEAP_AUDIT_REPAIR | KEYHEAP_AUDIT_REPORT);
}

START_TEST(test_audit_counts_and_closes_an_unallocated_key_left_open)
{
    keyheap_domain_t *d = domain("audit-owner"); /* keys are in use */
    (void)d;
    /* A key that no code holds: allocated, then freed. */
    int k = pkey_alloc(0, PKEY_DISABLE_ACCESS);
    ck_assert_int_gt(k, 0);
    ck_assert_int_eq(pkey_free(k), 0);
    ck_assert_int_eq(keyheap_audit(0), 0); /* the twin: closed, no mismatch */
    kht_wrpkru(kht_pkru() & ~(3u << (2 * k)));
    ck_assert_int_eq(keyheap_audit(0), 1);
    char expect[256];
    snprintf(expect, sizeof expect,
             "keyheap: audit: key %d, which no code has allocated, is open: read-write\n", k);
    ck_assert_str_eq(captured_stderr(audit_and_report), expect);
    ck_assert_int_eq(audit_result, 1);
    ck_assert_uint_eq(kht_key_rights(k), 0); /* reporting repairs nothing */
    snprintf(expect, sizeof expect,
             "keyheap: audit: key %d, which no code has allocated, is open (now closed): "
             "read-write\n",
             k);
    ck_assert_str_eq(captured_stderr(audit_repair_and_report), expect);
    ck_assert_int_eq(audit_result, 1);
    ck_assert_uint_eq(kht_key_rights(k) & 1u, 1u); /* access-disabled again */
    ck_assert_int_eq(keyheap_audit(0), 0);
}
END_TEST

START_TEST(test_audit_reports_but_never_touches_a_foreign_key)
{
    keyheap_domain_t *d = domain("audit-neighbour");
    (void)d;
    /* Another library's key, open in this thread. */
    int f = pkey_alloc(0, 0);
    ck_assert_int_gt(f, 0);
    ck_assert_uint_eq(kht_key_rights(f), 0);
    ck_assert_int_eq(keyheap_audit(KEYHEAP_AUDIT_REPAIR), 0);
    ck_assert_uint_eq(kht_key_rights(f), 0); /* untouched */
    char expect[256];
    snprintf(expect, sizeof expect,
             "keyheap: audit: key %d belongs to other code (foreign), left alone: read-write\n",
             f);
    ck_assert_str_eq(captured_stderr(audit_repair_and_report), expect);
    ck_assert_int_eq(audit_result, 0);
    ck_assert_uint_eq(kht_key_rights(f), 0);
    /* The twin: closed by its owner, it is still foreign and still left as it is. */
    ck_assert_int_eq(pkey_set(f, PKEY_DISABLE_WRITE), 0);
    ck_assert_int_eq(keyheap_audit(KEYHEAP_AUDIT_REPAIR), 0);
    ck_assert_uint_eq(kht_key_rights(f), 2);
    ck_assert_int_eq(pkey_free(f), 0);
}
END_TEST

static keyheap_domain_t *verify_d, *verify_e;

/* KEYHEAP_CONF=verify:true, and two domains; conf is read once, at the
 * first domain call of the process (each Check test runs in its own). */
static void verify_setup(void)
{
    setenv("KEYHEAP_CONF", "verify:true", 1);
    verify_d = domain("verified");
    verify_e = domain("bystander");
}

/* Opens e's key behind keyheap's back, then enters or leaves d. */
static void open_behind_then_enter(void *arg)
{
    (void)arg;
    kht_wrpkru(kht_pkru() & ~(3u << (2 * keyheap_domain_pkey(verify_e))));
    keyheap_enter(verify_d);
}

static void open_behind_then_leave(void *arg)
{
    (void)arg;
    keyheap_enter_ro(verify_d);
    kht_wrpkru(kht_pkru() & ~(3u << (2 * keyheap_domain_pkey(verify_e))));
    keyheap_leave(verify_d);
}

static void verify_leave_wrong(void *arg)
{
    (void)arg;
    keyheap_enter(verify_e);
    keyheap_enter(verify_d);
    keyheap_leave(verify_e);
}

static const char *verify_line(const char *op, unsigned hw)
{
    static char line[512];
    unsigned k = (unsigned)keyheap_domain_pkey(verify_e);
    snprintf(line, sizeof line,
             "keyheap: KEYHEAP_CONF verify: at %s(\"verified\") PKRU is %#x but the domain stack "
             "says %#x: key %u of domain \"bystander\" is read-write instead of none\n",
             op, hw, hw | (1u << (2 * k)), k);
    return line;
}

START_TEST(test_verify_mode_aborts_when_pkru_differs_from_the_domain_stack)
{
    verify_setup();
    unsigned k = (unsigned)keyheap_domain_pkey(verify_e);
    unsigned base = kht_pkru() & ~(3u << (2 * k));
    kht_expect_abort(open_behind_then_enter, NULL, verify_line("keyheap_enter", base));
    unsigned d_ad = 1u << (2 * (unsigned)keyheap_domain_pkey(verify_d));
    /* Inside d read-only: d's access-disable bit cleared, write-disable set. */
    kht_expect_abort(open_behind_then_leave, NULL,
                     verify_line("keyheap_leave", (base & ~d_ad) | (d_ad << 1)));
    kht_expect_abort(verify_leave_wrong, NULL,
                     "keyheap: keyheap_leave(\"bystander\") does not match the innermost "
                     "keyheap_enter(\"verified\")\n");
}
END_TEST

START_TEST(test_verify_mode_enter_and_leave_work_and_restore_pkru)
{
    verify_setup();
    unsigned before = kht_pkru();
    unsigned char *p = secret(verify_d, 64, 0x42);
    keyheap_enter(verify_e);
    keyheap_enter_ro(verify_d);
    ck_assert_uint_eq(kht_read(p + 10), 0x42);
    ck_assert_ptr_eq(keyheap_current(), verify_e);
    keyheap_leave(verify_d);
    ck_assert_uint_eq(kht_key_rights(keyheap_domain_pkey(verify_d)) & 1u, 1u);
    keyheap_leave(verify_e);
    ck_assert_uint_eq(kht_pkru(), before);
    ck_assert_ptr_null(keyheap_current());
    ck_assert_int_eq(keyheap_audit(0), 0);
    /* EBUSY still sees a verify-mode frame. */
    keyheap_enter(verify_d);
    errno = 0;
    ck_assert_int_eq(keyheap_domain_destroy(verify_d), -1);
    ck_assert_int_eq(errno, EBUSY);
    keyheap_leave(verify_d);
    ck_assert_int_eq(keyheap_domain_destroy(verify_d), 0);
}
END_TEST

/* ------------------------------------------ closing keys in every thread */

static struct {
    keyheap_domain_t *d, *e;
    unsigned char *secret;
    int key;
    pthread_barrier_t step;
    int enter_itself;
    unsigned rights_after_destroy;
} stale;

/* A thread that used d, then opened d's key behind keyheap's back, and
 * after d's destroy reads the next domain that got the key. */
static void *stale_thread(void *arg)
{
    (void)arg;
    keyheap_enter(stale.d);
    keyheap_leave(stale.d);
    kht_wrpkru(kht_pkru() & ~(3u << (2 * stale.key)));
    pthread_barrier_wait(&stale.step); /* the key is open here */
    pthread_barrier_wait(&stale.step); /* d destroyed, e made */
    stale.rights_after_destroy = kht_key_rights(stale.key);
    if (stale.enter_itself)
        keyheap_enter_ro(stale.e);
    unsigned char c = kht_read(stale.secret);
    if (stale.enter_itself)
        keyheap_leave(stale.e);
    return (void *)(uintptr_t)c;
}

static void destroy_under_stale_thread(int enter_itself)
{
    stale.d = domain("first-owner");
    stale.key = keyheap_domain_pkey(stale.d);
    stale.enter_itself = enter_itself;
    pthread_barrier_init(&stale.step, NULL, 2);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, stale_thread, NULL), 0);
    pthread_barrier_wait(&stale.step);
    ck_assert_int_eq(keyheap_domain_destroy(stale.d), 0);
    stale.e = domain("next-owner");
    ck_assert_int_eq(keyheap_domain_pkey(stale.e), stale.key);
    stale.secret = secret(stale.e, 64, 0x99);
    kht_expect_pku_fault(stale.key);
    pthread_barrier_wait(&stale.step);
    void *seen;
    pthread_join(t, &seen);
    /* Reached only by the twin. */
    ck_assert_uint_eq(stale.rights_after_destroy & 1u, 1u);
    ck_assert_uint_eq((uintptr_t)seen, 0x99);
}

START_TEST(test_destroy_closes_its_key_in_a_thread_whose_pkru_went_stale)
{
    destroy_under_stale_thread(0);
}
END_TEST

START_TEST(test_thread_whose_pkru_went_stale_reads_next_owner_after_entering)
{
    destroy_under_stale_thread(1);
}
END_TEST

/* ------------------------------------------------------------ watchdog */

static struct {
    keyheap_domain_t *d;
    unsigned char *secret;
    int unallocated, foreign;
    volatile int done;
    int repaired, inside_reads, reads_after_repair, foreign_open;
    pid_t tid;
} wd;

static void *stray_thread(void *arg)
{
    (void)arg;
    wd.tid = (pid_t)syscall(SYS_gettid);
    keyheap_enter(wd.d);
    keyheap_leave(wd.d);
    int k = keyheap_domain_pkey(wd.d);
    while (__atomic_load_n(&wd.inside_reads, __ATOMIC_ACQUIRE) == 0)
        usleep(1000);
    kht_wrpkru(kht_pkru() & ~(3u << (2 * k)) & ~(3u << (2 * wd.unallocated)));
    /* Wait for the watchdog to close both (10 s at most), then for the
     * thread inside to read on through a few more rounds. */
    for (int i = 0; i < 10000 && !wd.repaired; i++) {
        if ((kht_key_rights(k) & 1u) && (kht_key_rights(wd.unallocated) & 1u))
            wd.repaired = 1;
        usleep(1000);
    }
    int reads = __atomic_load_n(&wd.inside_reads, __ATOMIC_ACQUIRE);
    for (int i = 0; i < 10000 && __atomic_load_n(&wd.inside_reads, __ATOMIC_ACQUIRE) < reads + 5;
         i++)
        usleep(1000);
    wd.reads_after_repair = __atomic_load_n(&wd.inside_reads, __ATOMIC_ACQUIRE) - reads;
    wd.done = 1;
    return NULL;
}

/* The twin: a thread inside the domain keeps reading while the watchdog
 * audits it, and another library's open key stays open. */
static void *inside_thread(void *arg)
{
    (void)arg;
    ck_assert_int_eq(pkey_set(wd.foreign, 0), 0); /* open in this thread */
    keyheap_enter_ro(wd.d);
    while (!wd.done) {
        if (kht_read(wd.secret + 5) == 0x33)
            __atomic_add_fetch(&wd.inside_reads, 1, __ATOMIC_RELEASE);
        usleep(2000);
    }
    keyheap_leave(wd.d);
    wd.foreign_open = kht_key_rights(wd.foreign) == 0;
    return NULL;
}

static void watch_threads(void)
{
    pthread_t a, b;
    ck_assert_int_eq(pthread_create(&b, NULL, inside_thread, NULL), 0);
    ck_assert_int_eq(pthread_create(&a, NULL, stray_thread, NULL), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}

START_TEST(test_watchdog_resets_keys_a_thread_opened_behind_keyheaps_back)
{
    setenv("KEYHEAP_CONF", "watchdog:10", 1);
    wd.d = domain("watched");
    wd.secret = secret(wd.d, 64, 0x33);
    wd.foreign = pkey_alloc(0, PKEY_DISABLE_ACCESS); /* another library's key */
    ck_assert_int_gt(wd.foreign, 0);
    wd.unallocated = pkey_alloc(0, PKEY_DISABLE_ACCESS);
    ck_assert_int_gt(wd.unallocated, 0);
    ck_assert_int_eq(pkey_free(wd.unallocated), 0);
    const char *text = captured_stderr(watch_threads);
    ck_assert_msg(wd.repaired, "the watchdog did not close the keys; stderr: %s", text);
    char line[256];
    snprintf(line, sizeof line,
             "keyheap: watchdog: thread %d: key %d of domain \"watched\" was read-write, the "
             "domain stack says none; reset\n",
             (int)wd.tid, keyheap_domain_pkey(wd.d));
    ck_assert_msg(strstr(text, line) != NULL, "no line \"%s\" in: %s", line, text);
    snprintf(line, sizeof line,
             "keyheap: watchdog: thread %d: key %d, which no code has allocated, was "
             "read-write; closed\n",
             (int)wd.tid, wd.unallocated);
    ck_assert_msg(strstr(text, line) != NULL, "no line \"%s\" in: %s", line, text);
    /* The twins. */
    ck_assert_int_ge(wd.reads_after_repair, 5);
    ck_assert_int_gt(wd.foreign, 0);
    ck_assert_int_eq(wd.foreign_open, 1);
}
END_TEST

START_TEST(test_audit_finds_and_repairs_a_key_opened_behind_keyheaps_back)
{
    keyheap_domain_t *d = domain("audit");
    int k = keyheap_domain_pkey(d);
    ck_assert_int_eq(keyheap_audit(0), 0);
    /* Open the key with a raw WRPKRU, as stray code could. */
    unsigned pkru = kht_pkru() & ~(3u << (2 * k));
    __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(pkru), "c"(0), "d"(0) : "memory");
    ck_assert_int_eq(keyheap_audit(0), 1);
    ck_assert_uint_eq(kht_key_rights(k), 0);
    ck_assert_int_eq(keyheap_audit(KEYHEAP_AUDIT_REPAIR), 1);
    ck_assert_uint_eq(kht_key_rights(k), 1);
    ck_assert_int_eq(keyheap_audit(0), 0);
}
END_TEST

#endif

static keyheap_domain_t *abort_a, *abort_b;

static void leave_wrong_domain(void *arg)
{
    (void)arg;
    keyheap_enter(abort_a);
    keyheap_enter(abort_b);
    keyheap_leave(abort_a);
}

static void leave_without_enter(void *arg)
{
    (void)arg;
    keyheap_leave(abort_a);
}

static void enter_too_deep(void *arg)
{
    (void)arg;
    for (int i = 0; i <= KEYHEAP_MAX_DEPTH; i++)
        keyheap_enter(abort_a);
}

static void destroy_twice(void *arg)
{
    (void)arg;
    keyheap_domain_destroy(abort_b);
    keyheap_domain_destroy(abort_b);
}

static void enter_destroyed(void *arg)
{
    (void)arg;
    keyheap_domain_destroy(abort_b);
    keyheap_enter(abort_b);
}

START_TEST(test_misuse_of_enter_leave_and_destroy_aborts_with_message)
{
    abort_a = domain("alpha");
    abort_b = domain("beta");
    kht_expect_abort(leave_wrong_domain, NULL,
                     "keyheap: keyheap_leave(\"alpha\") does not match the innermost "
                     "keyheap_enter(\"beta\")\n");
    kht_expect_abort(leave_without_enter, NULL,
                     "keyheap: keyheap_leave(\"alpha\") without a matching keyheap_enter\n");
    kht_expect_abort(enter_too_deep, NULL,
                     "keyheap: keyheap_enter(\"alpha\"): domains nested deeper than "
                     "KEYHEAP_MAX_DEPTH (64)\n");
    kht_expect_abort(destroy_twice, NULL,
                     "keyheap: keyheap_domain_destroy of destroyed domain \"beta\"\n");
    kht_expect_abort(enter_destroyed, NULL,
                     "keyheap: keyheap_enter of destroyed domain \"beta\"\n");
    /* The twin: 64 levels are fine, and matched leaves are. */
    for (int i = 0; i < KEYHEAP_MAX_DEPTH; i++)
        keyheap_enter(abort_a);
    for (int i = 0; i < KEYHEAP_MAX_DEPTH; i++)
        keyheap_leave(abort_a);
    ck_assert_int_eq(keyheap_domain_destroy(abort_b), 0);
}
END_TEST

/* ------------------------------------------------- malloc in a domain */

START_TEST(test_every_malloc_family_call_inside_domain_lands_in_it)
{
    keyheap_domain_t *d = domain("landing");
    void *p[12] = {0};
    keyheap_enter(d);
    p[0] = v_malloc(100);
    p[1] = calloc(10, 10);
    p[2] = realloc(NULL, 300);
    ck_assert_int_eq(posix_memalign(&p[3], 64, 100), 0);
    p[4] = aligned_alloc(4096, 8192);
    p[5] = memalign(256, 10);
    p[6] = valloc(10);
    p[7] = pvalloc(10);
    p[8] = strdup("a libc function that allocates");
    p[9] = strndup("another one", 5);
    ck_assert_int_gt(asprintf((char **)&p[10], "%s %d", "formatted", 42), 0);
    p[11] = reallocarray(NULL, 10, 10);
    for (int i = 0; i < 12; i++) {
        ck_assert_msg(p[i] != NULL, "call %d failed", i);
        ck_assert_msg(keyheap_domain_of(p[i]) == d, "call %d did not land in the domain", i);
    }
    ck_assert_uint_eq(calloc(1, 1) != NULL, 1);
    keyheap_leave(d);
    void *outside = v_malloc(100);
    ck_assert_ptr_null(keyheap_domain_of(outside));
    free(outside);
    /* Freed from outside the domain, by address. */
    for (int i = 0; i < 12; i++)
        free(p[i]);
}
END_TEST

START_TEST(test_explicit_allocation_from_outside_lands_in_domain)
{
    keyheap_domain_t *d = domain("explicit");
    unsigned char *a = keyheap_malloc(d, 100), *z = keyheap_calloc(d, 100, 100);
    void *al = keyheap_aligned_alloc(d, 1 << 16, 10);
    ck_assert_ptr_eq(keyheap_domain_of(a), d);
    ck_assert_ptr_eq(keyheap_domain_of(z), d);
    ck_assert_ptr_eq(keyheap_domain_of(al), d);
    ck_assert_uint_eq((uintptr_t)al % (1 << 16), 0);
    ck_assert_ptr_null(keyheap_domain_of(keyheap_malloc(NULL, 10)));
    ck_assert_uint_ge(keyheap_usable_size(z), 10000);
    keyheap_enter_ro(d);
    size_t zeros = 0;
    while (zeros < 10000 && z[zeros] == 0)
        zeros++;
    ck_assert_uint_eq(zeros, 10000);
    keyheap_leave(d);
    keyheap_free(a);
    keyheap_free(z);
    keyheap_free(al);
}
END_TEST

static void *free_elsewhere(void *arg)
{
    free(arg);
    return NULL;
}

START_TEST(test_free_of_domain_block_from_outside_and_from_another_thread)
{
    keyheap_domain_t *d = domain("free");
    unsigned char *p = secret(d, 200, 0xee), *q = secret(d, 200, 0xdd);
    free(p); /* outside the domain */
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_elsewhere, q), 0);
    pthread_join(t, NULL);
    /* The block came back to this thread's cache of the domain, scrubbed. */
    keyheap_enter(d);
    unsigned char *again = v_malloc(200);
    ck_assert_ptr_eq(again, p);
    for (int i = 0; i < 200; i++)
        ck_assert_uint_eq(again[i], 0);
    free(again);
    keyheap_leave(d);
}
END_TEST

/* KEYHEAP_CONF=magazines:false: the path every domain block takes when
 * the magazines cannot be used (jemalloc's size classes are not the ones
 * keyheap expects): the blocks are live, not wild. */
START_TEST(test_without_magazines_every_domain_call_works)
{
#ifdef KHT_UNPROTECTED
    setenv("KEYHEAP_CONF", "pku:off,unprotected:true,magazines:false", 1);
#else
    setenv("KEYHEAP_CONF", "magazines:false", 1);
#endif
    keyheap_domain_t *d = domain("no-magazines");
    static const size_t sizes[] = {1, 16, 17, 100, 1024, 1025, 14336, 20000};
    void *p[8];
    keyheap_enter(d);
    for (int i = 0; i < 8; i++) {
        p[i] = v_malloc(sizes[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_ptr_eq(keyheap_domain_of(p[i]), d);
        ck_assert_uint_ge(malloc_usable_size(p[i]), sizes[i]);
        memset(p[i], 0x3c, sizes[i]);
    }
    p[2] = v_realloc(p[2], 3000);
    ck_assert_ptr_nonnull(p[2]);
    ck_assert_uint_eq(((unsigned char *)p[2])[16], 0x3c);
    keyheap_leave(d);
    struct keyheap_stats st;
    ck_assert_int_eq(keyheap_domain_stats(d, &st), 0);
    ck_assert_uint_eq(st.objects, 8);
    for (int i = 0; i < 4; i++)
        v_free(p[i]); /* from outside */
    keyheap_enter(d);
    for (int i = 4; i < 8; i++)
        v_free(p[i]);
    void *z = calloc(3, 40);
    ck_assert_ptr_nonnull(z);
    ck_assert_uint_eq(((unsigned char *)z)[119], 0);
    v_free(z);
    keyheap_leave(d);
    ck_assert_int_eq(keyheap_domain_stats(d, &st), 0);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

START_TEST(test_realloc_across_size_classes_stays_in_domain_with_data)
{
    keyheap_domain_t *d = domain("realloc");
    keyheap_enter(d);
    size_t size = 1;
    unsigned char *p = v_malloc(size);
    p[0] = 1;
    while (size < 8 * MiB) {
        size_t next = size * 3 + 5;
        p = realloc(p, next);
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_eq(keyheap_domain_of(p), d);
        size_t kept = 0;
        while (kept < size && p[kept] == (unsigned char)(kept * 7 + 1))
            kept++;
        ck_assert_msg(kept == size, "byte %zu lost growing to %zu", kept, next);
        for (size_t i = size; i < next; i++)
            p[i] = (unsigned char)(i * 7 + 1);
        size = next;
    }
    keyheap_leave(d);
    /* realloc from outside keeps the block in its domain too. */
    p = keyheap_realloc(p, 100);
    ck_assert_ptr_eq(keyheap_domain_of(p), d);
    keyheap_enter_ro(d);
    size_t same = 0;
    while (same < 100 && p[same] == (unsigned char)(same * 7 + 1))
        same++;
    ck_assert_uint_eq(same, 100);
    keyheap_leave(d);
    free(p);
}
END_TEST

START_TEST(test_huge_and_overflowing_requests_in_domain_give_enomem)
{
    keyheap_domain_t *d = domain("huge");
    errno = 0;
    ck_assert_ptr_null(keyheap_malloc(d, SIZE_MAX));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(keyheap_calloc(d, SIZE_MAX / 2, 3));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    /* Larger than a domain's whole region. */
    ck_assert_ptr_null(keyheap_malloc(d, (size_t)32 << 30));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(keyheap_aligned_alloc(d, 3, 8));
    ck_assert_int_eq(errno, EINVAL);
    keyheap_enter(d);
    errno = 0;
    void *m = v_malloc(SIZE_MAX - 100);
    int e1 = errno;
    errno = 0;
    volatile size_t many = SIZE_MAX / 4;
    void *c = calloc(many, 8);
    int e2 = errno;
    void *fine = v_malloc(1000);
    keyheap_leave(d);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(e1, ENOMEM);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(e2, ENOMEM);
    ck_assert_ptr_eq(keyheap_domain_of(fine), d);
    free(fine);
}
END_TEST

/* ------------------------------------------- misuse of domain heaps */

/* The line keyheap prints for misuse of p in domain name. */
static const char *misuse_line(const char *what, const void *p, const char *name)
{
    static char line[256];
    snprintf(line, sizeof line, "keyheap: %s of %p in domain \"%s\"\n", what, p, name);
    return line;
}

static void do_free(void *p)
{
    v_free(p);
}

static void do_realloc(void *p)
{
    v_free(v_realloc(p, 5000));
}

static void do_usable_size(void *p)
{
    (void)malloc_usable_size(p);
}

START_TEST(test_double_free_in_domain_aborts_with_message)
{
    keyheap_domain_t *d = domain("double");
    unsigned char *p = secret(d, 48, 1), *q = secret(d, 48, 2);
    v_free(p);
    kht_expect_abort(do_free, p, misuse_line("double free", p, "double"));
    kht_expect_abort(do_realloc, p, misuse_line("use-after-free realloc", p, "double"));
    kht_expect_abort(do_usable_size, p,
                     misuse_line("use-after-free malloc_usable_size", p, "double"));
    /* The twin: the live block frees once, and p's memory is usable again. */
    ck_assert_uint_ge(malloc_usable_size(q), 48);
    free(q);
    unsigned char *again = keyheap_malloc(d, 48);
    ck_assert_ptr_eq(keyheap_domain_of(again), d);
    free(again);
}
END_TEST

START_TEST(test_free_of_interior_pointer_in_domain_aborts_with_message)
{
    keyheap_domain_t *d = domain("interior");
    unsigned char *small = secret(d, 100, 1), *large = secret(d, 3 * MiB, 2);
    kht_expect_abort(do_free, small + 16, misuse_line("interior-pointer free", small + 16,
                                                      "interior"));
    kht_expect_abort(do_free, large + 2 * MiB,
                     misuse_line("interior-pointer free", large + 2 * MiB, "interior"));
    kht_expect_abort(do_realloc, large + 64,
                     misuse_line("interior-pointer realloc", large + 64, "interior"));
    /* The twin: the blocks' own addresses free fine. */
    free(small);
    free(large);
}
END_TEST

/* Pointers past a block's start that are no block's start: 1..15 bytes in,
 * inside the block's first 16-byte granule (so they share its byte in the
 * block map), and some further in. */
static const size_t interior_offsets[] = {1,  2,  3,  4,  5,  6,  7,  8,   9,    10,
                                          11, 12, 13, 14, 15, 16, 17, 100, 4095, 4096 + 1};

/* Blocks small (the smallest class, a magazine class, a bigger slab class)
 * and large (guarded). */
static const size_t interior_sizes[] = {16, 48, 8192, 64 * 1024};

/* Runs op on every interior offset of a block of each size in domain name,
 * expecting "keyheap: interior-pointer <what> of <p> ..."; the twin: the
 * block's own start works with malloc_usable_size, realloc and free. */
static void expect_interior_aborts(void (*op)(void *), const char *what, const char *name)
{
    keyheap_domain_t *d = domain(name);
    char line[64];
    snprintf(line, sizeof line, "interior-pointer %s", what);
    for (size_t i = 0; i < sizeof interior_sizes / sizeof interior_sizes[0]; i++) {
        size_t size = interior_sizes[i];
        unsigned char *p = secret(d, size, (unsigned char)(i + 1));
        for (size_t k = 0; k < sizeof interior_offsets / sizeof interior_offsets[0]; k++) {
            size_t off = interior_offsets[k];
            if (off < size)
                kht_expect_abort(op, p + off, misuse_line(line, p + off, name));
        }
        ck_assert_uint_ge(malloc_usable_size(p), size);
        p = v_realloc(p, size);
        ck_assert_ptr_eq(keyheap_domain_of(p), d);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        keyheap_enter(d);
        ck_assert_uint_eq(p[0], i + 1);
        ck_assert_uint_eq(p[size - 1], i + 1);
        keyheap_leave(d);
        v_free(p);
    }
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}

START_TEST(test_free_of_pointer_1_to_15_bytes_or_more_into_block_aborts_as_interior)
{
    expect_interior_aborts(do_free, "free", "in-free");
}
END_TEST

START_TEST(test_realloc_of_pointer_1_to_15_bytes_or_more_into_block_aborts_as_interior)
{
    expect_interior_aborts(do_realloc, "realloc", "in-realloc");
}
END_TEST

START_TEST(test_usable_size_of_pointer_1_to_15_bytes_or_more_into_block_aborts_as_interior)
{
    expect_interior_aborts(do_usable_size, "malloc_usable_size", "in-usable");
}
END_TEST

START_TEST(test_free_of_never_allocated_domain_address_aborts_with_message)
{
    keyheap_domain_t *d = domain("wild");
    unsigned char *p = secret(d, 64, 1);
    /* Inside the domain's region, far past anything allocated. */
    unsigned char *wild = p + 256 * MiB;
    ck_assert_ptr_eq(keyheap_domain_of(wild), d);
    kht_expect_abort(do_free, wild, misuse_line("wild free", wild, "wild"));
    kht_expect_abort(do_usable_size, wild,
                     misuse_line("wild malloc_usable_size", wild, "wild"));
    free(p); /* the twin */
}
END_TEST

START_TEST(test_free_or_realloc_of_destroyed_domains_block_aborts_with_message)
{
    keyheap_domain_t *d = domain("gone");
    unsigned char *p = secret(d, 64, 1);
    keyheap_domain_t *e = domain("staying");
    unsigned char *q = secret(e, 64, 2);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    kht_expect_abort(do_free, p, misuse_line("use-after-destroy free", p, "gone"));
    kht_expect_abort(do_realloc, p, misuse_line("use-after-destroy realloc", p, "gone"));
    /* The twin: a live domain's block. */
    q = realloc(q, 5000);
    ck_assert_ptr_eq(keyheap_domain_of(q), e);
    free(q);
}
END_TEST

static keyheap_domain_t *strict_domain;

static void *free_from_thread(void *p)
{
    free(p);
    return NULL;
}

static void free_outside_strict(void *p)
{
    pthread_t t;
    pthread_create(&t, NULL, free_from_thread, p);
    pthread_join(t, NULL);
}

static void free_inside_read_only(void *p)
{
    keyheap_enter_ro(strict_domain);
    free(p);
}

START_TEST(test_strict_domain_aborts_when_a_block_is_freed_from_outside)
{
    strict_domain = keyheap_domain_create("strict", KEYHEAP_STRICT);
    ck_assert_ptr_nonnull(strict_domain);
    unsigned char *p = secret(strict_domain, 64, 1);
    char expect[256];
    snprintf(expect, sizeof expect,
             "keyheap: outside free of %p in domain \"strict\" (KEYHEAP_STRICT: free only "
             "inside the domain)\n",
             (void *)p);
    kht_expect_abort(do_free, p, expect);
    kht_expect_abort(free_outside_strict, p, expect);
    kht_expect_abort(free_inside_read_only, p, expect);
    /* The twin: freed inside, from this thread or another that entered. */
    keyheap_enter(strict_domain);
    free(p);
    unsigned char *q = v_malloc(64);
    keyheap_leave(strict_domain);
    ck_assert_ptr_eq(keyheap_domain_of(q), strict_domain);
    keyheap_enter(strict_domain);
    free(q);
    keyheap_leave(strict_domain);
    /* A plain domain takes frees from anywhere (test_free_of_domain_block_...). */
    ck_assert_int_eq(keyheap_domain_destroy(strict_domain), 0);
}
END_TEST

/* ------------------------------------------------ lifecycle of domains */

START_TEST(test_domain_create_validates_its_arguments)
{
    char long_name[KEYHEAP_NAME_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    errno = 0;
    ck_assert_ptr_null(keyheap_domain_create(NULL, 0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(keyheap_domain_create("", 0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(keyheap_domain_create("flags", 0x100));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(keyheap_domain_create(long_name, 0));
    ck_assert_int_eq(errno, ENAMETOOLONG);
    long_name[KEYHEAP_NAME_MAX] = '\0';
    keyheap_domain_t *d = keyheap_domain_create(long_name, KEYHEAP_NOSCRUB | KEYHEAP_STRICT);
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq(keyheap_domain_name(d), long_name);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

static void *sit_inside(void *arg)
{
    struct shared *s = arg;
    keyheap_enter(s->d);
    pthread_barrier_wait(&s->go);
    pthread_barrier_wait(&s->go);
    keyheap_leave(s->d);
    return NULL;
}

START_TEST(test_destroy_while_a_thread_is_inside_fails_with_ebusy)
{
    struct shared s;
    s.d = domain("busy");
    keyheap_enter(s.d);
    errno = 0;
    ck_assert_int_eq(keyheap_domain_destroy(s.d), -1);
    ck_assert_int_eq(errno, EBUSY);
    keyheap_leave(s.d);
    pthread_barrier_init(&s.go, NULL, 2);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, sit_inside, &s), 0);
    pthread_barrier_wait(&s.go);
    errno = 0;
    ck_assert_int_eq(keyheap_domain_destroy(s.d), -1);
    ck_assert_int_eq(errno, EBUSY);
    pthread_barrier_wait(&s.go);
    pthread_join(t, NULL);
    ck_assert_int_eq(keyheap_domain_destroy(s.d), 0);
}
END_TEST

#ifndef KHT_UNPROTECTED
START_TEST(test_stale_pointer_into_destroyed_domain_faults)
{
    keyheap_domain_t *d = domain("stale");
    unsigned char *p = secret(d, 4096, 0xab);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    /* The region is PROT_NONE again: an access-rights fault, whatever PKRU. */
    kht_expect_accerr_fault(p);
    kht_read(p);
}
END_TEST

#endif

START_TEST(test_destroyed_domains_data_is_never_seen_by_next_owner_of_its_key)
{
    keyheap_domain_t *d = domain("first-owner");
    int key = keyheap_domain_pkey(d);
    unsigned char *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = secret(d, 100 + (size_t)i * 1000, 0xab);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0); /* with live objects */
    keyheap_domain_t *e = domain("second-owner");
    ck_assert_int_eq(keyheap_domain_pkey(e), key);
    keyheap_enter(e);
    for (int i = 0; i < 64; i++) {
        size_t n = 100 + (size_t)i * 1000;
        unsigned char *q = v_malloc(n);
        ck_assert_ptr_nonnull(q);
        size_t k = 0;
        while (k < n && q[k] != 0xab)
            k++;
        ck_assert_msg(k == n, "old data at %p", (void *)(q + k));
    }
    keyheap_leave(e);
    /* The old addresses are gone, not reused by the new owner. */
    for (int i = 0; i < 64; i++)
        ck_assert_ptr_null(keyheap_domain_of(blocks[i]));
}
END_TEST

#ifndef KHT_UNPROTECTED
START_TEST(test_more_domains_than_keys_share_them_and_destroy_frees_a_key)
{
    /* Past the 15 keys, domains start parked and share them (the key
     * cache, tests/check_many_domains.c has the rest). */
    keyheap_domain_t *ds[40];
    unsigned char *ps[40];
    for (int i = 0; i < 40; i++) {
        ds[i] = keyheap_domain_create("many", 0);
        ck_assert_msg(ds[i] != NULL, "domain %d: %s", i, strerror(errno));
        ps[i] = keyheap_malloc(ds[i], 32);
        ck_assert_ptr_nonnull(ps[i]);
        keyheap_enter(ds[i]);
        memset(ps[i], i, 32);
        keyheap_leave(ds[i]);
    }
    for (int i = 0; i < 40; i++) {
        keyheap_enter_ro(ds[i]);
        ck_assert_uint_eq(ps[i][31], (unsigned char)i);
        keyheap_leave(ds[i]);
    }
    /* keyheap holds every key it could get: none is left for other code,
     * until a destroy of a domain that holds one gives it back. */
    ck_assert_int_lt(pkey_alloc(0, 0), 0);
    int key = keyheap_domain_pkey(ds[3]);
    ck_assert_int_gt(key, 0);
    keyheap_free(ps[3]);
    ck_assert_int_eq(keyheap_domain_destroy(ds[3]), 0);
    int again = pkey_alloc(0, 0);
    ck_assert_int_eq(again, key);
    pkey_free(again);
    for (int i = 0; i < 40; i++)
        if (i != 3) {
            keyheap_free(ps[i]);
            ck_assert_int_eq(keyheap_domain_destroy(ds[i]), 0);
        }
}
END_TEST

#endif

#ifdef KHT_UNPROTECTED
START_TEST(test_slot_exhaustion_gives_enospc_and_destroy_frees_a_slot)
{
    /* Without keys, the limit is the number of domain slots: 1024, or 64
     * where the address space is short (under valgrind). */
    static keyheap_domain_t *ds[1025];
    int n = 0;
    errno = 0;
    while (n < 1025 && (ds[n] = keyheap_domain_create("slot", 0)) != NULL)
        n++;
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_msg(n == 1024 || n == 64, "%d domains fit, not 1024 (or 64 in a short span)", n);
    ck_assert_int_eq(keyheap_domain_destroy(ds[0]), 0);
    ds[0] = keyheap_domain_create("again", 0);
    ck_assert_ptr_nonnull(ds[0]);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(keyheap_domain_destroy(ds[i]), 0);
}
END_TEST

#endif

/* This process's mappings (/proc/self/maps), and the address space they
 * cover outside keyheap's reserved span and block map (which never change
 * size). */
struct maps {
    size_t count, bytes;
    char text[65536];
};

static void read_maps(struct maps *m)
{
    size_t len = 0;
    char *text = kht_slurp("/proc/self/maps", &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_lt(len, sizeof m->text);
    memcpy(m->text, text, len + 1);
    free(text);
    m->count = m->bytes = 0;
    for (const char *line = m->text; *line != '\0'; line = strchr(line, '\n') + 1) {
        unsigned long lo, hi;
        ck_assert_int_eq(sscanf(line, "%lx-%lx", &lo, &hi), 2);
        if (hi - lo < ((size_t)1 << 32))
            m->bytes += hi - lo;
        m->count++;
    }
}
static void cycle(int rounds, int *key)
{
    for (int i = 0; i < rounds; i++) {
        keyheap_domain_t *d = keyheap_domain_create("cycle", 0);
        ck_assert_ptr_nonnull(d);
        *key = keyheap_domain_pkey(d);
        void *big = keyheap_malloc(d, 3 * MiB), *small = keyheap_malloc(d, 40);
        keyheap_enter(d);
        char *s = strdup("in the domain");
        memset(big, 1, 3 * MiB);
        keyheap_leave(d);
        ck_assert_ptr_nonnull(small);
        ck_assert_ptr_nonnull(s);
        keyheap_free(small);
        ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    }
}

START_TEST(test_thousand_create_destroy_cycles_leak_no_key_address_space_or_memory)
{
    /* The first cycles may use a few fresh address regions (see free_slot
     * in domains/domain.c); after them, nothing may grow. */
    int key0, key;
    cycle(20, &key0);
    static struct maps before, after;
    read_maps(&before);
    size_t rss = kht_rss();
    cycle(980, &key);
    ck_assert_int_eq(key, key0);
    read_maps(&after);
    ck_assert_msg(after.count == before.count && after.bytes <= before.bytes,
                  "mappings went from %zu to %zu, address space grew by %zd KiB; before:\n%s\n"
                  "after:\n%s",
                  before.count, after.count, ((ssize_t)after.bytes - (ssize_t)before.bytes) / 1024,
                  before.text, after.text);
    size_t grown = kht_rss() > rss ? kht_rss() - rss : 0;
    ck_assert_msg(grown < 8 * MiB, "RSS grew by %zu KiB", grown >> 10);
}
END_TEST

static keyheap_domain_t *thread_domain;

static void *allocate_in_domain(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *blocks[64];
    keyheap_enter(thread_domain);
    for (int i = 0; i < 64; i++) {
        seed = seed * 1103515245u + 12345u;
        /* keyheap_malloc, not malloc: built without malloc replacement
         * (the sanitizer suite), malloc would measure the sanitizer's
         * quarantine instead of the domain's caches. */
        blocks[i] = keyheap_malloc(thread_domain, 16 + (seed >> 8) % 8000);
        ck_assert_ptr_nonnull(blocks[i]);
        memset(blocks[i], 3, 16);
    }
    for (int i = 0; i < 64; i++)
        keyheap_free(blocks[i]);
    keyheap_leave(thread_domain);
    return NULL;
}

static void run_domain_threads(int count)
{
    for (int done = 0; done < count; done += 10) {
        pthread_t t[10];
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(
                pthread_create(&t[i], NULL, allocate_in_domain, (void *)(uintptr_t)(done + i)), 0);
        for (int i = 0; i < 10; i++)
            pthread_join(t[i], NULL);
    }
}

START_TEST(test_thousand_threads_in_a_domain_leave_memory_bounded)
{
    /* 1000 threads, 10 at a time, each allocating and freeing about 256 KiB
     * in the domain through its own cache of the domain, destroyed when it
     * exits.  Once the domain's working set is warm (300 threads), the last
     * 700 threads, which allocate some 175 MiB in all, must not add more
     * than a working set's worth. */
    thread_domain = domain("threads");
    run_domain_threads(300);
    size_t warm = kht_rss();
    run_domain_threads(700);
    size_t after = kht_rss();
    size_t growth = after > warm ? after - warm : 0;
    ck_assert_msg(growth < 48 * MiB, "RSS grew by %zu MiB", growth / MiB);
    ck_assert_int_eq(keyheap_domain_destroy(thread_domain), 0);
}
END_TEST

START_TEST(test_fork_child_keeps_its_domains)
{
    keyheap_domain_t *d = domain("fork");
    unsigned char *p = secret(d, 100, 0x31);
    keyheap_enter(d);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Still inside, as the parent was. */
        int ok = p[99] == 0x31 && keyheap_current() == d;
        void *q = v_malloc(50);
        ok = ok && keyheap_domain_of(q) == d;
        free(q);
        keyheap_leave(d);
        keyheap_enter_ro(d);
        ok = ok && p[0] == 0x31;
        keyheap_leave(d);
        ok = ok && keyheap_domain_destroy(d) == 0;
        _exit(ok ? 0 : 1);
    }
    keyheap_leave(d);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    /* The child's destroy did not touch the parent's domain. */
    keyheap_enter_ro(d);
    ck_assert_uint_eq(p[50], 0x31);
    keyheap_leave(d);
}
END_TEST

/* ----------------------------------------------------- secret hygiene */

/* The VmFlags line of the mapping that holds addr, from /proc/self/smaps. */
static const char *vmflags_of(const void *addr)
{
    static char flags[256];
    size_t len;
    char *text = kht_slurp("/proc/self/smaps", &len);
    ck_assert_ptr_nonnull(text);
    bool inside = false;
    flags[0] = '\0';
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        unsigned long lo, hi;
        char dash;
        if (sscanf(line, "%lx%c%lx", &lo, &dash, &hi) == 3 && dash == '-')
            inside = lo <= (uintptr_t)addr && (uintptr_t)addr < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0)
            snprintf(flags, sizeof flags, "%s ", line + 8);
    }
    free(text);
    ck_assert_msg(flags[0] != '\0', "no mapping holds %p", addr);
    return flags;
}

/* This process's locked memory (VmLck), in KiB. */
static long locked_kib(void)
{
    size_t len;
    char *text = kht_slurp("/proc/self/status", &len);
    ck_assert_ptr_nonnull(text);
    const char *at = strstr(text, "VmLck:");
    ck_assert_ptr_nonnull(at);
    long kib = strtol(at + 6, NULL, 10);
    free(text);
    return kib;
}

START_TEST(test_domain_memory_is_excluded_from_core_dumps)
{
    keyheap_domain_t *d = domain("no-dump");
    unsigned char *small = secret(d, 64, 1), *large = secret(d, 5 * MiB, 2);
    ck_assert_ptr_nonnull(strstr(vmflags_of(small), " dd "));
    ck_assert_ptr_nonnull(strstr(vmflags_of(large), " dd "));
    /* The twin: the default heap is dumped. */
    void *plain = v_malloc(64);
    ck_assert_ptr_null(strstr(vmflags_of(plain), " dd "));
    free(plain);
}
END_TEST

START_TEST(test_wipeonfork_domain_reads_zeros_in_fork_child)
{
    keyheap_domain_t *w = keyheap_domain_create("wipe", KEYHEAP_WIPEONFORK);
    ck_assert_ptr_nonnull(w);
    keyheap_domain_t *k = domain("kept");
    unsigned char *wiped = secret(w, 4096, 0x77), *kept = secret(k, 4096, 0x66);
    ck_assert_ptr_nonnull(strstr(vmflags_of(wiped), " wf "));
    ck_assert_ptr_null(strstr(vmflags_of(kept), " wf "));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        keyheap_enter_ro(w);
        size_t zeros = 0;
        while (zeros < 4096 && wiped[zeros] == 0)
            zeros++;
        keyheap_leave(w);
        /* The twin: a domain without the flag keeps its data. */
        keyheap_enter_ro(k);
        int kept_ok = kept[0] == 0x66 && kept[4095] == 0x66;
        keyheap_leave(k);
        _exit(zeros == 4096 && kept_ok ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    /* The parent's copy is untouched. */
    keyheap_enter_ro(w);
    ck_assert_uint_eq(wiped[100], 0x77);
    keyheap_leave(w);
}
END_TEST

START_TEST(test_mlock_domain_locks_its_pages)
{
    keyheap_domain_t *plain = domain("unlocked");
    long before = locked_kib();
    unsigned char *p = secret(plain, 2 * MiB, 1);
    ck_assert_int_eq(locked_kib(), before); /* the twin */
    keyheap_domain_t *d = keyheap_domain_create("locked", KEYHEAP_MLOCK);
    ck_assert_ptr_nonnull(d);
    unsigned char *q = secret(d, 2 * MiB, 2);
    ck_assert_ptr_eq(keyheap_domain_of(q), d);
    ck_assert_int_ge(locked_kib() - before, 2048);
    ck_assert_ptr_nonnull(strstr(vmflags_of(q), " lo "));
    free(p);
    free(q);
}
END_TEST

START_TEST(test_mlock_domain_past_memlock_limit_gives_enomem_and_one_hint)
{
    int err[2];
    ck_assert_int_eq(pipe(err), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        /* Without CAP_IPC_LOCK (root has it), and with a small limit. */
        if (geteuid() == 0 && setuid(65534) != 0)
            _exit(2);
        struct rlimit small = {256 << 10, 256 << 10};
        if (setrlimit(RLIMIT_MEMLOCK, &small) != 0)
            _exit(3);
        keyheap_domain_t *d = keyheap_domain_create("memlock", KEYHEAP_MLOCK);
        if (d == NULL)
            _exit(4);
        int failures = 0, enomem = 0;
        for (int i = 0; i < 64; i++) {
            errno = 0;
            void *p = keyheap_malloc(d, 64 << 10);
            if (p == NULL) {
                failures++;
                enomem += errno == ENOMEM;
            }
        }
        _exit(failures > 0 && enomem == failures ? 0 : 5);
    }
    close(err[1]);
    char text[4096] = {0};
    size_t len = 0;
    ssize_t n;
    while ((n = read(err[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    close(err[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x, stderr: %s",
                  status, text);
    ck_assert_str_eq(text, "keyheap: KEYHEAP_MLOCK domain \"memlock\": mlock failed, so the "
                           "allocation fails with ENOMEM; raise RLIMIT_MEMLOCK (ulimit -l) or "
                           "lock less\n");
}
END_TEST

/* ------------------------------------------------------ KEYHEAP_CONF */

START_TEST(test_bad_keyheap_conf_is_reported_quoted_and_defaults_stay)
{
    /* Each problem gets one line quoting it; the good option still works. */
#ifdef KHT_UNPROTECTED
    setenv("KEYHEAP_CONF", "pku:maybe,colour:blue,,verbose,pku:off,unprotected:true", 1);
#else
    setenv("KEYHEAP_CONF", "pku:maybe,colour:blue,,verbose,fault_report:off", 1);
#endif
    char path[] = "/tmp/keyheap-conf-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    keyheap_domain_t *d = keyheap_domain_create("conf", 0);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char text[1024] = {0};
    ck_assert_int_ge(pread(fd, text, sizeof text - 1, 0), 0);
    close(fd);
    ck_assert_str_eq(text, "keyheap: KEYHEAP_CONF: bad value in \"pku:maybe\" (expected true or "
                           "false); default kept\n"
                           "keyheap: KEYHEAP_CONF: unknown option \"colour:blue\"; ignored\n"
                           "keyheap: KEYHEAP_CONF: \"verbose\" is not key:value; ignored\n");
    ck_assert_ptr_nonnull(d);
#ifdef KHT_UNPROTECTED
    ck_assert_int_eq(keyheap_domain_pkey(d), -1); /* pku:off and unprotected:true applied */
#else
    ck_assert_int_gt(keyheap_domain_pkey(d), 0); /* pku stayed on */
#endif
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* --------------------------------------------------------- no-PKU mode */

START_TEST(test_without_pku_domain_create_fails_with_enotsup)
{
    setenv("KEYHEAP_CONF", "pku:off", 1);
    ck_assert_int_eq(keyheap_pku_supported(), 0);
    errno = 0;
    ck_assert_ptr_null(keyheap_domain_create("nope", 0));
    ck_assert_int_eq(errno, ENOTSUP);
    /* The twin: plain malloc keeps working. */
    void *p = v_malloc(100);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(test_without_pku_unprotected_domains_are_separate_heaps)
{
    setenv("KEYHEAP_CONF", "pku:off,unprotected:true", 1);
    ck_assert_int_eq(keyheap_pku_supported(), 0);
    keyheap_domain_t *d = keyheap_domain_create("soft", 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(keyheap_domain_pkey(d), -1);
    keyheap_enter(d);
    char *s = strdup("not hardware-protected");
    keyheap_leave(d);
    ck_assert_ptr_eq(keyheap_domain_of(s), d);
    ck_assert_str_eq(s, "not hardware-protected"); /* readable outside: no key */
    ck_assert_int_eq(keyheap_audit(KEYHEAP_AUDIT_REPAIR), 0);
    free(s);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* -------------------------------------------------------------- stress */

#define STRESS_THREADS 8
#define STRESS_DOMAINS 4
#define STRESS_OPS 3000

struct block {
    unsigned char *p;
    size_t n;
    unsigned char tag;
};

static struct {
    keyheap_domain_t *d[STRESS_DOMAINS];
    pthread_mutex_t lock;
    struct block q[STRESS_DOMAINS][256];
    int count[STRESS_DOMAINS];
    long verified, produced;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int verify(const struct block *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != (unsigned char)(b->tag + i))
            return 0;
    return 1;
}

static void *stress(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    for (int op = 0; op < STRESS_OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)(seed >> 16) % STRESS_DOMAINS;
        keyheap_domain_t *d = st.d[k];
        struct block b = {.n = 1 + (seed >> 4) % ((seed & 7) == 0 ? 70000 : 600),
                          .tag = (unsigned char)seed};
        keyheap_enter(d);
        b.p = v_malloc(b.n);
        ck_assert_ptr_eq(keyheap_domain_of(b.p), d);
        for (size_t i = 0; i < b.n; i++)
            b.p[i] = (unsigned char)(b.tag + i);
        keyheap_leave(d);
        pthread_mutex_lock(&st.lock);
        st.produced++;
        struct block take = {0};
        int from = (int)(seed >> 20) % STRESS_DOMAINS;
        if (st.count[k] < 256)
            st.q[k][st.count[k]++] = b;
        else
            take = b;
        if (take.p == NULL && st.count[from] > 0)
            take = st.q[from][--st.count[from]];
        pthread_mutex_unlock(&st.lock);
        if (take.p != NULL) {
            keyheap_domain_t *owner = keyheap_domain_of(take.p);
            keyheap_enter_ro(owner);
            int ok = verify(&take);
            keyheap_leave(owner);
            ck_assert_msg(ok, "block %p of %zu bytes corrupted", (void *)take.p, take.n);
            __atomic_fetch_add(&st.verified, 1, __ATOMIC_RELAXED);
            free(take.p); /* outside its domain, often another thread's block */
        }
    }
    return NULL;
}

START_TEST(test_eight_threads_four_domains_cross_thread_frees_keep_every_byte)
{
    for (int k = 0; k < STRESS_DOMAINS; k++)
        st.d[k] = domain("stress");
    pthread_t t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, stress, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < STRESS_DOMAINS; k++)
        while (st.count[k] > 0) {
            struct block b = st.q[k][--st.count[k]];
            keyheap_enter_ro(st.d[k]);
            ck_assert(verify(&b));
            keyheap_leave(st.d[k]);
            st.verified++;
            free(b.p);
        }
    ck_assert_int_eq(st.verified, st.produced);
    ck_assert_int_eq(st.produced, (long)STRESS_THREADS * STRESS_OPS);
    for (int k = 0; k < STRESS_DOMAINS; k++)
        ck_assert_int_eq(keyheap_domain_destroy(st.d[k]), 0);
}
END_TEST

/* ---------------------------------------------------------- statistics */

/* d's statistics, through the call under test (which must succeed). */
static struct keyheap_stats stats_of(keyheap_domain_t *d)
{
    struct keyheap_stats s;
    memset(&s, 0xa5, sizeof s);
    ck_assert_int_eq(keyheap_domain_stats(d, &s), 0);
    return s;
}

/* The bytes of d's region that the kernel has readable and writable
 * (/proc/self/maps). */
static size_t read_write_bytes_of(keyheap_domain_t *d)
{
    size_t len, total = 0;
    char *text = kht_slurp("/proc/self/maps", &len);
    for (char *line = text; line != NULL && *line != '\0';) {
        unsigned long lo, hi;
        char perm[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) == 3 && perm[0] == 'r' && perm[1] == 'w' &&
            keyheap_domain_of((void *)lo) == d)
            total += hi - lo;
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    free(text);
    return total;
}

START_TEST(test_stats_of_a_new_domain_are_all_zero_even_in_a_reused_slot)
{
    keyheap_domain_t *first = domain("stats-new");
    struct keyheap_stats s = stats_of(first);
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_uint_eq(s.objects, 0);
    ck_assert_uint_eq(s.committed, 0); /* jemalloc takes no extent before the first malloc */
    ck_assert_uint_eq(s.peak, 0);
    ck_assert_uint_eq(s.locked, 0);
    /* Used, then destroyed with four more: the fifth destroyed slot waiting
     * makes the next create reuse the oldest, first's. */
    free(secret(first, 3 * MiB, 1));
    ck_assert_ptr_nonnull(secret(first, 100, 2)); /* left live: destroy frees it */
    ck_assert_uint_gt(stats_of(first).peak, 3 * MiB);
    ck_assert_int_eq(keyheap_domain_destroy(first), 0);
    for (int i = 0; i < 4; i++) {
        keyheap_domain_t *d = domain("stats-between");
        free(secret(d, 100, 3));
        ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    }
    keyheap_domain_t *again = domain("stats-again");
    ck_assert_ptr_eq(again, first);
    s = stats_of(again);
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_uint_eq(s.objects, 0);
    ck_assert_uint_eq(s.committed, 0);
    ck_assert_uint_eq(s.peak, 0);
    ck_assert_uint_eq(s.locked, 0);
    /* The twin: a block makes them move. */
    void *p = keyheap_malloc(again, 100);
    s = stats_of(again);
    ck_assert_uint_eq(s.objects, 1);
    ck_assert_uint_eq(s.allocated, malloc_usable_size(p));
    ck_assert_uint_gt(s.committed, 0);
    free(p);
}
END_TEST

static void *free_blocks_in_thread(void *arg)
{
    void **p = arg;
    for (size_t i = 0; p[i] != NULL; i++)
        free(p[i]);
    return NULL;
}

/* Checks that d's allocated and objects are exactly those of the n blocks
 * p[0..n) that are not NULL. */
static void expect_live(keyheap_domain_t *d, void *const *p, size_t n)
{
    size_t usable = 0, count = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != NULL) {
            usable += malloc_usable_size(p[i]);
            count++;
        }
    struct keyheap_stats s = stats_of(d);
    ck_assert_uint_eq(s.allocated, usable);
    ck_assert_uint_eq(s.objects, count);
}

START_TEST(test_stats_allocated_and_objects_are_exactly_the_live_blocks)
{
    static const size_t sizes[] = {0,    1,    15,   16,    17,    100,    1000,
                                   1024, 1025, 4000, 14336, 20000, 100000, 3 * MiB};
    enum { N = sizeof sizes / sizeof sizes[0] };
    keyheap_domain_t *d = domain("stats-live");
    void *p[3 * N + 1] = {0};
    /* malloc inside, keyheap_malloc and keyheap_calloc from outside. */
    keyheap_enter(d);
    for (size_t i = 0; i < N; i++)
        p[i] = v_malloc(sizes[i]);
    keyheap_leave(d);
    for (size_t i = 0; i < N; i++) {
        p[N + i] = keyheap_malloc(d, sizes[i]);
        p[2 * N + i] = keyheap_calloc(d, 1, sizes[i]);
    }
    for (size_t i = 0; i < 3 * N; i++)
        ck_assert_ptr_eq(keyheap_domain_of(p[i]), d);
    expect_live(d, p, 3 * N);
    ck_assert_uint_ge(stats_of(d).allocated, 3 * (3 * MiB + 100000));
    /* realloc changes the size, not the count. */
    p[5] = keyheap_realloc(p[5], 5000);
    p[12] = keyheap_realloc(p[12], 64);
    ck_assert_ptr_nonnull(p[5]);
    ck_assert_ptr_nonnull(p[12]);
    expect_live(d, p, 3 * N);
    /* Freed here (into this thread's magazine and jemalloc's cache, which
     * still hold the blocks) and by another thread: gone from the counts. */
    for (size_t i = 0; i < N; i++) {
        free(p[i]);
        p[i] = NULL;
    }
    expect_live(d, p, 3 * N);
    void *others[N + 1] = {0};
    memcpy(others, p + N, sizeof(void *) * N);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_blocks_in_thread, others), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    memset(p + N, 0, sizeof(void *) * N);
    expect_live(d, p, 3 * N);
    /* Allocated again (from the magazine): counted again. */
    for (size_t i = 0; i < N; i++)
        p[i] = keyheap_malloc(d, sizes[i]);
    expect_live(d, p, 3 * N);
    for (size_t i = 0; i < 3 * N; i++) {
        free(p[i]);
        p[i] = NULL;
    }
    struct keyheap_stats s = stats_of(d);
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_uint_eq(s.objects, 0);
}
END_TEST

START_TEST(test_stats_committed_is_the_read_write_memory_and_covers_allocated)
{
    keyheap_domain_t *d = domain("stats-committed");
    unsigned char *small = secret(d, 100, 1);
    struct keyheap_stats s = stats_of(d);
    ck_assert_uint_gt(s.committed, 0);
    ck_assert_uint_eq(s.committed, read_write_bytes_of(d));
    ck_assert_uint_ge(s.committed, s.allocated);
    /* A large block: committed grows by at least its size (it does not
     * fit in what the small one committed). */
    ck_assert_uint_lt(s.committed - s.allocated, 12 * MiB);
    unsigned char *large = secret(d, 12 * MiB, 2);
    struct keyheap_stats t = stats_of(d);
    ck_assert_uint_ge(t.committed, s.committed + 12 * MiB);
    ck_assert_uint_eq(t.committed, read_write_bytes_of(d));
    ck_assert_uint_ge(t.committed, t.allocated);
    /* jemalloc decommits a freed block of 8 MiB or more at once. */
    free(large);
    t = stats_of(d);
    ck_assert_uint_lt(t.committed, s.committed + 12 * MiB);
    ck_assert_uint_eq(t.committed, read_write_bytes_of(d));
    ck_assert_uint_ge(t.committed, t.allocated);
    free(small);
}
END_TEST

START_TEST(test_stats_locked_is_committed_in_an_mlock_domain_and_zero_otherwise)
{
    keyheap_domain_t *plain = domain("stats-unlocked");
    unsigned char *p = secret(plain, 100, 1);
    struct keyheap_stats s = stats_of(plain);
    ck_assert_uint_gt(s.committed, 0);
    ck_assert_uint_eq(s.locked, 0);
    keyheap_domain_t *d = keyheap_domain_create("stats-locked", KEYHEAP_MLOCK);
    ck_assert_ptr_nonnull(d);
    long before = locked_kib();
    unsigned char *q = secret(d, 100, 2);
    s = stats_of(d);
    ck_assert_uint_gt(s.locked, 0);
    ck_assert_uint_eq(s.locked, s.committed);
    /* The kernel agrees: the process locked exactly that much more. */
    ck_assert_uint_eq((size_t)(locked_kib() - before) * 1024, s.locked);
    free(p);
    free(q);
}
END_TEST

START_TEST(test_stats_peak_never_decreases_and_is_at_least_committed)
{
    static const size_t sizes[] = {100, 12 * MiB, 5000, 40 * MiB, 64, 9 * MiB};
    keyheap_domain_t *d = domain("stats-peak");
    size_t last = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = keyheap_malloc(d, sizes[i]);
        ck_assert_ptr_nonnull(p);
        struct keyheap_stats s = stats_of(d);
        ck_assert_uint_ge(s.peak, last);
        ck_assert_uint_ge(s.peak, s.committed);
        ck_assert_uint_ge(s.committed, sizes[i]);
        last = s.peak;
        free(p);
        s = stats_of(d);
        ck_assert_uint_eq(s.peak, last); /* a free commits nothing */
        ck_assert_uint_ge(s.peak, s.committed);
    }
    /* The 40 MiB block was committed once, and given back since. */
    struct keyheap_stats s = stats_of(d);
    ck_assert_uint_ge(s.peak, 40 * MiB);
    ck_assert_uint_lt(s.committed, 40 * MiB);
}
END_TEST

/* A domain in a reused slot gets what jemalloc kept of the old domain's
 * region (the unused part of an extent it grew: 3.5 MiB carved, about 480
 * KiB left over), which the destroy made PROT_NONE: jemalloc must commit it
 * again before handing it out.  Writes every block of a series that ends
 * up there; committed stays the kernel's read-write bytes throughout. */
START_TEST(test_reused_slot_commits_what_it_hands_out_and_counts_it)
{
    keyheap_domain_t *first = domain("reuse-old");
    free(secret(first, 3 * MiB, 1));
    ck_assert_ptr_nonnull(secret(first, 100, 2));
    ck_assert_int_eq(keyheap_domain_destroy(first), 0);
    for (int i = 0; i < 4; i++) {
        keyheap_domain_t *d = domain("reuse-between");
        free(secret(d, 100, 3));
        ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    }
    keyheap_domain_t *again = domain("reuse-new");
    ck_assert_ptr_eq(again, first);
    for (size_t size = 400000; size >= 16; size = size * 7 / 8) {
        unsigned char *p = secret(again, size, 4); /* writes every byte */
        ck_assert_ptr_eq(keyheap_domain_of(p), again);
    }
    ck_assert_uint_eq(stats_of(again).committed, read_write_bytes_of(again));
}
END_TEST

START_TEST(test_stats_into_null_fails_with_einval)
{
    keyheap_domain_t *d = domain("stats-null");
    errno = 0;
    ck_assert_int_eq(keyheap_domain_stats(d, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* The twin. */
    struct keyheap_stats s;
    ck_assert_int_eq(keyheap_domain_stats(d, &s), 0);
}
END_TEST

static void stats_of_handle(void *handle)
{
    struct keyheap_stats s;
    keyheap_domain_stats(handle, &s);
}

START_TEST(test_stats_of_a_destroyed_or_bad_handle_aborts_with_message)
{
    keyheap_domain_t *d = domain("stats-gone");
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    kht_expect_abort(stats_of_handle, d,
                     "keyheap: keyheap_domain_stats of destroyed domain \"stats-gone\"\n");
    static char not_a_domain[256];
    char expect[128];
    snprintf(expect, sizeof expect, "keyheap: keyheap_domain_stats: %p is not a keyheap domain\n",
             (void *)not_a_domain);
    kht_expect_abort(stats_of_handle, not_a_domain, expect);
    /* The twin. */
    stats_of(domain("stats-live-handle"));
}
END_TEST

/* Everything readable from fd, NUL-terminated, into buf. */
static void read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fd);
}

/* The child of the stats_print test: two live domains and a destroyed one;
 * writes the lines it expects at exit, made from keyheap_domain_stats, to
 * fd want; exits through exit(), which prints the real ones on stderr. */
static void stats_print_child(int want)
{
#ifdef KHT_UNPROTECTED
    setenv("KEYHEAP_CONF", "pku:off,unprotected:true,stats_print:true", 1);
#else
    setenv("KEYHEAP_CONF", "stats_print:true", 1);
#endif
    keyheap_domain_t *a = keyheap_domain_create("stats \"alpha\"", 0);
    keyheap_domain_t *gone = keyheap_domain_create("gone", 0);
    keyheap_domain_t *b = keyheap_domain_create("beta", KEYHEAP_MLOCK);
    if (a == NULL || gone == NULL || b == NULL)
        _exit(2);
    for (int i = 0; i < 3; i++)
        if (keyheap_malloc(a, 100) == NULL)
            _exit(3);
    if (keyheap_malloc(a, 70000) == NULL || keyheap_malloc(b, 5000) == NULL ||
        keyheap_malloc(gone, 10) == NULL || keyheap_domain_destroy(gone) != 0)
        _exit(4);
    keyheap_domain_t *live[2] = {a, b};
    const char *shown[2] = {"stats ?alpha?", "beta"};
    for (int i = 0; i < 2; i++) {
        struct keyheap_stats s;
        if (keyheap_domain_stats(live[i], &s) != 0)
            _exit(5);
        dprintf(want,
                "keyheap: stats: domain \"%s\" (pkey %d): allocated %zu B in %zu objects, "
                "peak %zu B, committed %zu B, locked %zu B\n",
                shown[i], keyheap_domain_pkey(live[i]), s.allocated, s.objects, s.peak, s.committed,
                s.locked);
    }
    close(want);
    exit(0);
}

START_TEST(test_stats_print_writes_one_line_per_live_domain_at_exit)
{
    int err[2], want[2];
    ck_assert_int_eq(pipe(err), 0);
    ck_assert_int_eq(pipe(want), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(err[0]);
        close(want[0]);
        dup2(err[1], STDERR_FILENO);
        close(err[1]);
        stats_print_child(want[1]);
    }
    close(err[1]);
    close(want[1]);
    static char printed[4096], expected[4096];
    read_all(want[0], expected, sizeof expected);
    read_all(err[0], printed, sizeof printed);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x, stderr: %s",
                  status, printed);
    ck_assert_str_eq(printed, expected);
    /* The numbers parse and say what the child did. */
    char name[2][64];
    int key[2];
    size_t allocated[2], objects[2], peak[2], committed[2], locked[2];
    const char *line = printed;
    for (int i = 0; i < 2; i++) {
        int used = 0;
        ck_assert_int_eq(sscanf(line,
                                "keyheap: stats: domain \"%63[^\"]\" (pkey %d): allocated %zu B in "
                                "%zu objects, peak %zu B, committed %zu B, locked %zu B\n%n",
                                name[i], &key[i], &allocated[i], &objects[i], &peak[i],
                                &committed[i], &locked[i], &used),
                         7);
        ck_assert_int_gt(used, 0);
        line += used;
    }
    ck_assert_str_eq(line, ""); /* nothing of the destroyed domain */
    ck_assert_str_eq(name[0], "stats ?alpha?");
    ck_assert_str_eq(name[1], "beta");
#ifdef KHT_UNPROTECTED
    ck_assert_int_eq(key[0], -1);
#else
    ck_assert_int_gt(key[0], 0);
#endif
    /* Domain heaps have the default heap's size classes. */
    size_t usable[3];
    static const size_t sizes[3] = {100, 70000, 5000};
    for (int i = 0; i < 3; i++) {
        void *p = v_malloc(sizes[i]);
        usable[i] = malloc_usable_size(p);
        free(p);
    }
    ck_assert_uint_eq(objects[0], 4);
    ck_assert_uint_eq(allocated[0], 3 * usable[0] + usable[1]);
    ck_assert_uint_eq(objects[1], 1);
    ck_assert_uint_eq(allocated[1], usable[2]);
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_ge(committed[i], allocated[i]);
        ck_assert_uint_ge(peak[i], committed[i]);
    }
    ck_assert_uint_eq(locked[0], 0);
    ck_assert_uint_eq(locked[1], committed[1]);
}
END_TEST

/* ------------------------------------------ guard pages after large blocks */

/* The ways a large block of a domain comes to be; each block's usable size
 * must end where its guard page begins. */
enum { GUARD_KINDS = 10 };

/* A large block made the way kind says, inside the domain the caller has
 * entered (kind 9 enters one more). */
static unsigned char *large_block(int kind)
{
    unsigned char *p, *q;
    switch (kind) {
    case 0:
        return v_malloc(16 * 1024 + 1); /* just past the largest small class */
    case 1:
        return v_malloc(100 * 1024);
    case 2:
        return v_malloc(3 * MiB);
    case 3:
        p = v_malloc(20 * 1024);
        q = v_realloc(p, 200 * 1024);
        ck_assert_msg(q == p, "realloc did not grow %p in place", (void *)p);
        return q;
    case 4:
        p = v_malloc(3 * MiB);
        q = v_realloc(p, 40 * 1024);
        ck_assert_msg(q == p, "realloc did not shrink %p in place", (void *)p);
        return q;
    case 5: /* moved by realloc from a small block */
        p = v_malloc(1000);
        return v_realloc(p, 50 * 1024);
    case 6: /* address space of a freed larger block, used again */
        p = v_malloc(1 * MiB);
        v_free(p);
        q = v_malloc(64 * 1024);
        ck_assert_msg(q == p, "64 KiB at %p, not where 1 MiB was freed (%p)", (void *)q, (void *)p);
        return q;
    case 7:
        return calloc(1, 70 * 1024);
    case 8: /* large because of its alignment */
        return aligned_alloc(8192, 100);
    default: { /* the same reuse in a domain whose free takes the fast path */
        keyheap_domain_t *noscrub = keyheap_domain_create("guard-noscrub", KEYHEAP_NOSCRUB);
        ck_assert_ptr_nonnull(noscrub);
        keyheap_enter(noscrub);
        return large_block(6);
    }
    }
}

#ifndef KHT_UNPROTECTED
START_TEST(test_write_past_large_domain_block_hits_guard_page)
{
    keyheap_enter(domain("guard"));
    unsigned char *p = large_block(_i);
    ck_assert_ptr_nonnull(p);
    size_t n = malloc_usable_size(p);
    /* Inside the domain: the key allows the write, the page does not. */
    kht_expect_accerr_fault(p + n);
    kht_write(p + n, 1);
}
END_TEST
#endif

START_TEST(test_last_usable_byte_of_large_domain_block_works)
{
    keyheap_enter(domain("guard"));
    unsigned char *p = large_block(_i);
    ck_assert_ptr_nonnull(p);
    size_t n = malloc_usable_size(p);
    ck_assert_uint_eq(n % 4096, 0);
    memset(p, 0x5a, n);
    kht_write(p + n - 1, 7);
    ck_assert_uint_eq(kht_read(p + n - 1), 7);
    ck_assert_uint_eq(kht_read(p), 0x5a);
    free(p);
}
END_TEST

/* Allocates 2000-byte blocks until one covers addr, writing each whole. */
static void fill_up_to(unsigned char *addr)
{
    static unsigned char *blocks[4096];
    int n = 0;
    bool reached = false;
    while (!reached && n < 4096) {
        unsigned char *b = v_malloc(2000);
        blocks[n++] = b;
        memset(b, 0xa5, 2000);
        reached = addr >= b && addr < b + 2000;
    }
    ck_assert_msg(reached, "no small block reached the old guard page %p", (void *)addr);
    while (n > 0)
        v_free(blocks[--n]);
}

/* jemalloc hands the pages of a freed block out again without telling
 * keyheap: the guard must be gone by then. */
START_TEST(test_guard_page_of_freed_or_shrunk_large_block_is_usable_again)
{
    keyheap_domain_t *d = keyheap_domain_create("unguard", _i ? KEYHEAP_NOSCRUB : 0);
    ck_assert_ptr_nonnull(d);
    keyheap_enter(d);
    unsigned char *p = v_malloc(100 * 1024);
    unsigned char *guard = p + malloc_usable_size(p);
    v_free(p);
    fill_up_to(guard);
    /* (jemalloc makes slabs only from free extents up to 64 times their
     * size: a small tail.) */
    p = v_malloc(200 * 1024);
    guard = p + malloc_usable_size(p);
    ck_assert_ptr_eq(v_realloc(p, 20 * 1024), p);
    fill_up_to(guard);
    v_free(p);
    keyheap_leave(d);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* ------------------------------------------ C23's sized deallocation */

#ifndef KHT_NO_REPLACEMENT
/* C23's, which glibc 2.36's <stdlib.h> does not declare; keyheap exports
 * them with the malloc family (not with --disable-malloc-replacement). */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

static void (*volatile v_free_sized)(void *, size_t) = free_sized;
static void (*volatile v_free_aligned_sized)(void *, size_t, size_t) = free_aligned_sized;

/* The size and alignment do_free_sized and do_free_aligned_sized pass
 * (set before kht_expect_abort forks). */
static size_t sized_size, sized_align;

static void do_free_sized(void *p)
{
    v_free_sized(p, sized_size);
}

static void do_free_aligned_sized(void *p)
{
    v_free_aligned_sized(p, sized_align, sized_size);
}

static const char *wrong_size_line(const char *op, const void *p, const char *name, size_t size,
                                   size_t usable)
{
    static char line[256];
    snprintf(line, sizeof line,
             "keyheap: wrong-size %s of %p in domain \"%s\" (size %zu, but the block's usable "
             "size is %zu)\n",
             op, p, name, size, usable);
    return line;
}

static const char *wrong_alignment_line(const void *p, const char *name, size_t align)
{
    static char line[256];
    if (align != 0 && (align & (align - 1)) == 0)
        snprintf(line, sizeof line,
                 "keyheap: wrong-alignment free_aligned_sized of %p in domain \"%s\" (alignment "
                 "%zu, but the block is not aligned to it)\n",
                 p, name, align);
    else
        snprintf(line, sizeof line,
                 "keyheap: wrong-alignment free_aligned_sized of %p in domain \"%s\" (alignment "
                 "%zu is not a power of two)\n",
                 p, name, align);
    return line;
}

static size_t live_objects(keyheap_domain_t *d)
{
    struct keyheap_stats now;
    ck_assert_int_eq(keyheap_domain_stats(d, &now), 0);
    return now.objects;
}

/* Freed with the right size, from outside the domain: gone from the
 * domain's count, and (magazine sizes: the block comes back to this
 * thread's cache, as in test_free_of_domain_block_from_outside_...)
 * scrubbed.  Also calloc's n * m, a block realloc shrank (in place: its
 * usable size stays the bigger one) and a large, guarded block. */
START_TEST(test_free_sized_in_domain_with_right_size_frees_and_scrubs)
{
    keyheap_domain_t *d = domain("sized");
    static const size_t sizes[] = {0, 1, 16, 17, 100, 200, 1000, 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = secret(d, n, 0xee);
        size_t usable = malloc_usable_size(p);
        keyheap_enter(d);
        memset(p, 0xee, usable);
        keyheap_leave(d);
        ck_assert_uint_eq(live_objects(d), 1);
        v_free_sized(p, n);
        ck_assert_uint_eq(live_objects(d), 0);
        keyheap_enter(d);
        unsigned char *again = v_malloc(n);
        ck_assert_ptr_eq(again, p);
        for (size_t k = 0; k < usable; k++)
            ck_assert_msg(again[k] == 0, "size %zu: byte %zu not scrubbed", n, k);
        keyheap_leave(d);
        v_free_sized(again, n);
    }
    keyheap_enter(d);
    unsigned char *z = calloc(3, 33);
    unsigned char *shrunk = v_malloc(20000), *small_shrunk = v_malloc(100);
    unsigned char *large = v_malloc(100000);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(shrunk);
    ck_assert_ptr_nonnull(small_shrunk);
    ck_assert_ptr_nonnull(large);
    shrunk = v_realloc(shrunk, 100);
    small_shrunk = v_realloc(small_shrunk, 20);
    ck_assert_ptr_nonnull(shrunk);
    ck_assert_ptr_nonnull(small_shrunk);
    keyheap_leave(d);
    ck_assert_ptr_eq(keyheap_domain_of(z), d);
    ck_assert_ptr_eq(keyheap_domain_of(shrunk), d);
    ck_assert_ptr_eq(keyheap_domain_of(small_shrunk), d);
    ck_assert_ptr_eq(keyheap_domain_of(large), d);
    ck_assert_uint_eq(live_objects(d), 4);
    v_free_sized(z, 99);
    v_free_sized(shrunk, 100);
    v_free_sized(small_shrunk, 20);
    v_free_sized(large, 100000);
    ck_assert_uint_eq(live_objects(d), 0);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* A size cannot be told from the requested one when the block would be
 * the same for it (a smaller one, also since realloc shrinks in place):
 * every size from 0 to the usable size is accepted, one more aborts.  For
 * a request of 17 (a bigger class) and of 20000 (large). */
START_TEST(test_free_sized_in_domain_accepts_sizes_up_to_usable_size_and_aborts_past_it)
{
    keyheap_domain_t *d = domain("sized-class");
    static const size_t requests[] = {17, 20000};
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        size_t req = requests[r];
        unsigned char *p = secret(d, req, 1);
        size_t usable = malloc_usable_size(p);
        ck_assert_uint_ge(usable, req);
        sized_size = usable + 1;
        kht_expect_abort(do_free_sized, p,
                         wrong_size_line("free_sized", p, "sized-class", usable + 1, usable));
        sized_size = SIZE_MAX;
        kht_expect_abort(do_free_sized, p,
                         wrong_size_line("free_sized", p, "sized-class", SIZE_MAX, usable));
        /* The twins: the block is still live, and frees with its size. */
        ck_assert_uint_eq(live_objects(d), 1);
        v_free_sized(p, req);
        ck_assert_uint_eq(live_objects(d), 0);
        const size_t accepted[] = {0, 1, req - 1, req, usable};
        for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
            unsigned char *q = secret(d, req, 2);
            ck_assert_uint_eq(malloc_usable_size(q), usable);
            v_free_sized(q, accepted[i]);
            ck_assert_uint_eq(live_objects(d), 0);
        }
    }
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* free_aligned_sized: the alignment must be a power of two the block is
 * aligned to, and the size as for free_sized. */
START_TEST(test_free_aligned_sized_in_domain_checks_alignment_and_size)
{
    keyheap_domain_t *d = domain("sized-align");
    static const size_t aligns[] = {64, 4096, 1 << 16};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t a = aligns[i];
        keyheap_enter(d);
        unsigned char *p = aligned_alloc(a, 17);
        keyheap_leave(d);
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_eq(keyheap_domain_of(p), d);
        ck_assert_uint_eq((uintptr_t)p % a, 0);
        size_t usable = malloc_usable_size(p);
        /* An alignment p does not have: twice its lowest set bit. */
        size_t beyond = ((uintptr_t)p & -(uintptr_t)p) * 2;
        static const size_t bad[] = {0, 3, 48, 100};
        sized_size = 17;
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            sized_align = bad[k];
            kht_expect_abort(do_free_aligned_sized, p,
                             wrong_alignment_line(p, "sized-align", bad[k]));
        }
        sized_align = beyond;
        kht_expect_abort(do_free_aligned_sized, p, wrong_alignment_line(p, "sized-align", beyond));
        sized_align = a;
        sized_size = usable + 1;
        kht_expect_abort(
            do_free_aligned_sized, p,
            wrong_size_line("free_aligned_sized", p, "sized-align", usable + 1, usable));
        /* The twins: the right alignment and size, and smaller ones that
         * the block has too. */
        ck_assert_uint_eq(live_objects(d), 1);
        v_free_aligned_sized(p, a, 17);
        ck_assert_uint_eq(live_objects(d), 0);
        static const size_t smaller[] = {1, 16};
        for (size_t k = 0; k < sizeof smaller / sizeof smaller[0]; k++) {
            p = keyheap_aligned_alloc(d, a, 17);
            ck_assert_ptr_nonnull(p);
            v_free_aligned_sized(p, smaller[k], usable);
            ck_assert_uint_eq(live_objects(d), 0);
        }
    }
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* A pointer that is no live block gets free's own message, whatever the
 * size and alignment. */
START_TEST(test_free_sized_of_freed_interior_wild_or_destroyed_pointer_aborts_like_free)
{
    keyheap_domain_t *d = domain("sized-misuse");
    unsigned char *p = secret(d, 48, 1), *q = secret(d, 100, 2);
    v_free_sized(p, 48);
    sized_size = 48;
    sized_align = 16;
    kht_expect_abort(do_free_sized, p, misuse_line("double free", p, "sized-misuse"));
    kht_expect_abort(do_free_aligned_sized, p, misuse_line("double free", p, "sized-misuse"));
    sized_size = 16;
    kht_expect_abort(do_free_sized, q + 16,
                     misuse_line("interior-pointer free", q + 16, "sized-misuse"));
    kht_expect_abort(do_free_aligned_sized, q + 16,
                     misuse_line("interior-pointer free", q + 16, "sized-misuse"));
    unsigned char *wild = q + 256 * MiB;
    ck_assert_ptr_eq(keyheap_domain_of(wild), d);
    kht_expect_abort(do_free_sized, wild, misuse_line("wild free", wild, "sized-misuse"));
    /* The twin: the live block frees. */
    v_free_sized(q, 100);
    ck_assert_uint_eq(live_objects(d), 0);
    unsigned char *gone = secret(d, 64, 3);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
    sized_size = 64;
    kht_expect_abort(do_free_sized, gone,
                     misuse_line("use-after-destroy free", gone, "sized-misuse"));
}
END_TEST

/* KEYHEAP_STRICT holds for free_sized as for free. */
START_TEST(test_free_sized_in_strict_domain_from_outside_aborts_like_free)
{
    keyheap_domain_t *d = keyheap_domain_create("sized-strict", KEYHEAP_STRICT);
    ck_assert_ptr_nonnull(d);
    unsigned char *p = secret(d, 64, 1);
    char expect[256];
    snprintf(expect, sizeof expect,
             "keyheap: outside free of %p in domain \"sized-strict\" (KEYHEAP_STRICT: free only "
             "inside the domain)\n",
             (void *)p);
    sized_size = 64;
    sized_align = 16;
    kht_expect_abort(do_free_sized, p, expect);
    kht_expect_abort(do_free_aligned_sized, p, expect);
    /* The twin: inside. */
    keyheap_enter(d);
    v_free_sized(p, 64);
    keyheap_leave(d);
    ck_assert_uint_eq(live_objects(d), 0);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST
#endif /* KHT_NO_REPLACEMENT */

int main(void)
{
    Suite *s = suite_create("domain");
#ifdef KHT_UNPROTECTED
    /* Before anything reads it: keyheap's no-PKU mode, even on a CPU with
     * PKU.  The two no-PKU tests set their own. */
    setenv("KEYHEAP_CONF", "pku:off,unprotected:true", 1);
#else
    TCase *fault = tcase_create("access");
    tcase_set_timeout(fault, 120);
    tcase_add_exit_test(fault, test_read_outside_domain_faults, KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_read_inside_domain_works);
    tcase_add_exit_test(fault, test_write_outside_domain_faults, KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_write_inside_domain_works);
    tcase_add_exit_test(fault, test_write_in_read_only_enter_faults, KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_read_in_read_only_enter_works_and_keeps_malloc_target);
    tcase_add_test(fault, test_read_only_enter_inside_read_write_stays_writable);
    tcase_add_exit_test(fault, test_other_thread_cannot_read_while_this_one_is_inside,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_other_thread_that_enters_itself_can_read);
    tcase_add_exit_test(fault, test_thread_created_inside_domain_starts_closed,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_thread_created_inside_domain_can_enter_itself);
    tcase_add_exit_test(fault, test_signal_handler_cannot_read_domain_entered_by_interrupted_code,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_signal_handler_that_enters_can_read_and_interrupted_state_returns);
    tcase_add_test(fault, test_nesting_three_deep_restores_each_level);
    tcase_add_test(fault, test_audit_finds_and_repairs_a_key_opened_behind_keyheaps_back);
    tcase_add_test(fault, test_audit_counts_and_closes_an_unallocated_key_left_open);
    tcase_add_test(fault, test_audit_reports_but_never_touches_a_foreign_key);
    tcase_add_test(fault, test_verify_mode_aborts_when_pkru_differs_from_the_domain_stack);
    tcase_add_test(fault, test_verify_mode_enter_and_leave_work_and_restore_pkru);
    tcase_add_exit_test(fault, test_destroy_closes_its_key_in_a_thread_whose_pkru_went_stale,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(fault, test_thread_whose_pkru_went_stale_reads_next_owner_after_entering);
    tcase_add_test(fault, test_watchdog_resets_keys_a_thread_opened_behind_keyheaps_back);
    tcase_add_test(fault, test_misuse_of_enter_leave_and_destroy_aborts_with_message);
    suite_add_tcase(s, fault);
#endif

    TCase *heap = tcase_create("heap");
    tcase_set_timeout(heap, 120);
#ifndef KHT_NO_REPLACEMENT
    tcase_add_test(heap, test_every_malloc_family_call_inside_domain_lands_in_it);
    tcase_add_test(heap, test_without_magazines_every_domain_call_works);
#else
    (void)test_every_malloc_family_call_inside_domain_lands_in_it; /* needs keyheap's plain malloc */
#endif
    tcase_add_test(heap, test_explicit_allocation_from_outside_lands_in_domain);
    tcase_add_test(heap, test_free_of_domain_block_from_outside_and_from_another_thread);
    tcase_add_test(heap, test_realloc_across_size_classes_stays_in_domain_with_data);
    tcase_add_test(heap, test_huge_and_overflowing_requests_in_domain_give_enomem);
    suite_add_tcase(s, heap);

    TCase *misuse = tcase_create("misuse");
    tcase_set_timeout(misuse, 120);
    tcase_add_test(misuse, test_double_free_in_domain_aborts_with_message);
    tcase_add_test(misuse, test_free_of_interior_pointer_in_domain_aborts_with_message);
    tcase_add_test(misuse,
                   test_free_of_pointer_1_to_15_bytes_or_more_into_block_aborts_as_interior);
    tcase_add_test(misuse,
                   test_realloc_of_pointer_1_to_15_bytes_or_more_into_block_aborts_as_interior);
    tcase_add_test(misuse,
                   test_usable_size_of_pointer_1_to_15_bytes_or_more_into_block_aborts_as_interior);
    tcase_add_test(misuse, test_free_of_never_allocated_domain_address_aborts_with_message);
    tcase_add_test(misuse, test_free_or_realloc_of_destroyed_domains_block_aborts_with_message);
    tcase_add_test(misuse, test_strict_domain_aborts_when_a_block_is_freed_from_outside);
    suite_add_tcase(s, misuse);

    TCase *hygiene = tcase_create("hygiene");
    tcase_set_timeout(hygiene, 120);
    tcase_add_test(hygiene, test_domain_memory_is_excluded_from_core_dumps);
    tcase_add_test(hygiene, test_wipeonfork_domain_reads_zeros_in_fork_child);
#ifndef KHT_ASAN
    tcase_add_test(hygiene, test_mlock_domain_locks_its_pages);
    tcase_add_test(hygiene, test_mlock_domain_past_memlock_limit_gives_enomem_and_one_hint);
#else
    (void)test_mlock_domain_locks_its_pages;
    (void)test_mlock_domain_past_memlock_limit_gives_enomem_and_one_hint;
#endif
    suite_add_tcase(s, hygiene);

    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, test_domain_create_validates_its_arguments);
    tcase_add_test(life, test_destroy_while_a_thread_is_inside_fails_with_ebusy);
#ifdef KHT_UNPROTECTED
    /* The abort messages do not depend on keys.  (The stale-pointer fault
     * test is check_domain's only: memcheck counts the access to the
     * PROT_NONE region as an error.) */
    tcase_add_test(life, test_misuse_of_enter_leave_and_destroy_aborts_with_message);
    tcase_add_test(life, test_slot_exhaustion_gives_enospc_and_destroy_frees_a_slot);
#else
    tcase_add_exit_test(life, test_stale_pointer_into_destroyed_domain_faults,
                        KHT_EXIT_ACCERR_FAULT);
    tcase_add_test(life, test_more_domains_than_keys_share_them_and_destroy_frees_a_key);
#endif
    tcase_add_test(life, test_destroyed_domains_data_is_never_seen_by_next_owner_of_its_key);
    tcase_add_test(life, test_fork_child_keeps_its_domains);
    tcase_add_test(life, test_without_pku_domain_create_fails_with_enotsup);
#ifndef KHT_NO_REPLACEMENT
    tcase_add_test(life, test_without_pku_unprotected_domains_are_separate_heaps);
#else
    (void)test_without_pku_unprotected_domains_are_separate_heaps; /* needs keyheap's plain malloc */
#endif
    tcase_add_test(life, test_bad_keyheap_conf_is_reported_quoted_and_defaults_stay);
    suite_add_tcase(s, life);

    TCase *load = tcase_create("load");
    tcase_set_timeout(load, 240);
#ifndef KHT_ASAN
    tcase_add_test(load, test_thousand_create_destroy_cycles_leak_no_key_address_space_or_memory);
#else
    (void)test_thousand_create_destroy_cycles_leak_no_key_address_space_or_memory;
#endif
    tcase_add_test(load, test_thousand_threads_in_a_domain_leave_memory_bounded);
    tcase_add_test(load, test_eight_threads_four_domains_cross_thread_frees_keep_every_byte);
    suite_add_tcase(s, load);

    TCase *stats = tcase_create("stats");
    tcase_set_timeout(stats, 120);
    tcase_add_test(stats, test_stats_of_a_new_domain_are_all_zero_even_in_a_reused_slot);
    tcase_add_test(stats, test_stats_allocated_and_objects_are_exactly_the_live_blocks);
    tcase_add_test(stats, test_stats_committed_is_the_read_write_memory_and_covers_allocated);
#ifndef KHT_ASAN
    tcase_add_test(stats, test_stats_locked_is_committed_in_an_mlock_domain_and_zero_otherwise);
#else
    (void)test_stats_locked_is_committed_in_an_mlock_domain_and_zero_otherwise;
#endif
    tcase_add_test(stats, test_stats_peak_never_decreases_and_is_at_least_committed);
    tcase_add_test(stats, test_reused_slot_commits_what_it_hands_out_and_counts_it);
    tcase_add_test(stats, test_stats_into_null_fails_with_einval);
    tcase_add_test(stats, test_stats_of_a_destroyed_or_bad_handle_aborts_with_message);
#ifndef KHT_NO_REPLACEMENT
    tcase_add_test(stats, test_stats_print_writes_one_line_per_live_domain_at_exit);
#else
    (void)test_stats_print_writes_one_line_per_live_domain_at_exit; /* needs keyheap's plain malloc */
#endif
    suite_add_tcase(s, stats);

    TCase *guard = tcase_create("guard");
    tcase_set_timeout(guard, 120);
#ifndef KHT_UNPROTECTED
    /* Not in check_nopku: memcheck counts the deliberate fault as an error. */
    tcase_add_loop_exit_test(guard, test_write_past_large_domain_block_hits_guard_page,
                             KHT_EXIT_ACCERR_FAULT, 0, GUARD_KINDS);
#endif
    tcase_add_loop_test(guard, test_last_usable_byte_of_large_domain_block_works, 0, GUARD_KINDS);
    tcase_add_loop_test(guard, test_guard_page_of_freed_or_shrunk_large_block_is_usable_again, 0,
                        2);
    suite_add_tcase(s, guard);

#ifndef KHT_NO_REPLACEMENT
    /* C23's free_sized and free_aligned_sized (keyheap's, with the malloc
     * family). */
    TCase *sized = tcase_create("sized");
    tcase_set_timeout(sized, 120);
    tcase_add_test(sized, test_free_sized_in_domain_with_right_size_frees_and_scrubs);
    tcase_add_test(sized,
                   test_free_sized_in_domain_accepts_sizes_up_to_usable_size_and_aborts_past_it);
    tcase_add_test(sized, test_free_aligned_sized_in_domain_checks_alignment_and_size);
    tcase_add_test(sized,
                   test_free_sized_of_freed_interior_wild_or_destroyed_pointer_aborts_like_free);
    tcase_add_test(sized, test_free_sized_in_strict_domain_from_outside_aborts_like_free);
    suite_add_tcase(s, sized);
#endif
    return kht_main(s);
}
