/*
 * tests/check_scope.c - KEYHEAP_SCOPE and KEYHEAP_SCOPE_RO (keyheap.h,
 * "scopes").
 *
 * Runs through tools/pku-run.  Built twice: tests/check_scope with the
 * default C flags, and tests/check_scope_fexceptions with -fexceptions
 * (KHT_FEXCEPTIONS).  Both prove that every ordinary way out of a block
 * leaves its scopes; they differ on pthread_exit and pthread_cancel, where
 * gcc runs cleanup attributes only in code compiled with -fexceptions:
 * each build checks what its flags give.
 *
 * Every "closed after the scope" test reads the domain's block after the
 * scope and must die of SEGV_PKUERR on the domain's key (tests/khfault.h);
 * its twin makes the same read inside the scope, where it must work.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "include/keyheap.h"
#include "tests/khfault.h"
#include "tests/khtest.h"

/* PKRU rights of a key (tests/khfault.h): AD closes, WD alone is read-only. */
enum { RIGHTS_RW = 0, RIGHTS_CLOSED = 1, RIGHTS_RO = 2 };

static bool closed(int key)
{
    return (kht_key_rights(key) & 1u) != 0;
}

/* A domain with a hardware key and a 64-byte block of it filled with 0x5a. */
struct fixture {
    keyheap_domain_t *d;
    int key;
    unsigned char *p;
};

static struct fixture fixture(const char *name)
{
    struct fixture f;
    f.d = keyheap_domain_create(name, 0);
    ck_assert_msg(f.d != NULL, "keyheap_domain_create failed: run this test through tools/pku-run");
    f.key = keyheap_domain_pkey(f.d);
    ck_assert_msg(f.key > 0, "the domain has no hardware key: run this test through tools/pku-run");
    f.p = keyheap_malloc(f.d, 64);
    ck_assert_ptr_nonnull(f.p);
    keyheap_enter(f.d);
    memset(f.p, 0x5a, 64);
    keyheap_leave(f.d);
    return f;
}

/* Outside every scope again: no domain entered, f's key closed. */
static void expect_left(const struct fixture *f)
{
    ck_assert_ptr_null(keyheap_current());
    ck_assert_uint_eq(keyheap_abi_self.depth, 0);
    ck_assert_msg(closed(f->key), "key %d is still open after the scope", f->key);
}

/* The read after the scope, which must fault on f's key. */
static void read_must_fault(const struct fixture *f)
{
    kht_expect_pku_fault(f->key);
    kht_read(f->p + 1);
    ck_abort_msg("the read after the scope did not fault");
}

/* ------------------------------------------------------------ return */

static unsigned char read_and_return(const struct fixture *f)
{
    KEYHEAP_SCOPE(f->d);
    ck_assert_ptr_eq(keyheap_current(), f->d);
    ck_assert_uint_eq(kht_key_rights(f->key), RIGHTS_RW);
    return kht_read(f->p + 1);
}

START_TEST(test_scope_left_by_return_reads_inside)
{
    struct fixture f = fixture("scope-return");
    ck_assert_uint_eq(read_and_return(&f), 0x5a);
    expect_left(&f);
}
END_TEST

START_TEST(test_scope_left_by_return_closes_the_domain)
{
    struct fixture f = fixture("scope-return");
    ck_assert_uint_eq(read_and_return(&f), 0x5a);
    expect_left(&f);
    read_must_fault(&f);
}
END_TEST

/* Returns from inside a scope without its value passing through the scope
 * variable: an early return with the scope half way through its work. */
static int early_return(const struct fixture *f, bool early)
{
    KEYHEAP_SCOPE(f->d);
    if (early)
        return -1;
    kht_write(f->p, 7);
    return 0;
}

START_TEST(test_scope_left_by_an_early_return_skips_the_rest_and_leaves)
{
    struct fixture f = fixture("scope-return");
    ck_assert_int_eq(early_return(&f, true), -1);
    expect_left(&f);
    ck_assert_int_eq(early_return(&f, false), 0);
    expect_left(&f);
    keyheap_enter_ro(f.d);
    ck_assert_uint_eq(kht_read(f.p), 7);
    keyheap_leave(f.d);
}
END_TEST

/* ------------------------------------------------- break and continue */

/* Enters in every iteration; iteration 1 continues, iteration 2 breaks
 * out of the loop.  Returns the number of reads made inside. */
static int loop_with_break(const struct fixture *f)
{
    int reads = 0;
    for (int i = 0; i < 10; i++) {
        KEYHEAP_SCOPE(f->d);
        ck_assert_uint_eq(keyheap_abi_self.depth, 1);
        ck_assert_uint_eq(kht_read(f->p + 1), 0x5a);
        reads++;
        if (i == 1)
            continue;
        if (i == 2)
            break;
    }
    return reads;
}

START_TEST(test_scope_left_by_break_and_continue_reads_inside)
{
    struct fixture f = fixture("scope-break");
    ck_assert_int_eq(loop_with_break(&f), 3);
    expect_left(&f);
}
END_TEST

START_TEST(test_scope_left_by_break_closes_the_domain)
{
    struct fixture f = fixture("scope-break");
    ck_assert_int_eq(loop_with_break(&f), 3);
    expect_left(&f);
    read_must_fault(&f);
}
END_TEST

/* --------------------------------------------------------------- goto */

static unsigned char read_then_goto(const struct fixture *f)
{
    unsigned char v = 0;
    {
        KEYHEAP_SCOPE(f->d);
        v = kht_read(f->p + 1);
        if (v == 0x5a)
            goto out;
        ck_abort_msg("the read inside gave %#x", v);
    }
out:
    expect_left(f);
    return v;
}

START_TEST(test_scope_left_by_goto_reads_inside)
{
    struct fixture f = fixture("scope-goto");
    ck_assert_uint_eq(read_then_goto(&f), 0x5a);
}
END_TEST

START_TEST(test_scope_left_by_goto_closes_the_domain)
{
    struct fixture f = fixture("scope-goto");
    ck_assert_uint_eq(read_then_goto(&f), 0x5a);
    read_must_fault(&f);
}
END_TEST

/* ------------------------------------------------------ two in a block */

/* a read-write and b read-only in one block, then a again inside: three
 * scopes, left innermost first. */
static void two_in_one_block(const struct fixture *a, const struct fixture *b)
{
    {
        KEYHEAP_SCOPE(a->d);
        KEYHEAP_SCOPE_RO(b->d);
        KEYHEAP_SCOPE(a->d);
        ck_assert_uint_eq(keyheap_abi_self.depth, 3);
        ck_assert_ptr_eq(keyheap_current(), a->d);
        ck_assert_uint_eq(kht_key_rights(a->key), RIGHTS_RW);
        ck_assert_uint_eq(kht_key_rights(b->key), RIGHTS_RO);
        ck_assert_uint_eq(kht_read(a->p + 1), 0x5a);
        ck_assert_uint_eq(kht_read(b->p + 1), 0x5a);
    }
    expect_left(a);
    expect_left(b);
}

START_TEST(test_nested_scopes_in_one_block_read_inside_and_leave_in_order)
{
    struct fixture a = fixture("scope-a"), b = fixture("scope-b");
    two_in_one_block(&a, &b);
}
END_TEST

START_TEST(test_nested_scopes_in_one_block_close_the_first_domain)
{
    struct fixture a = fixture("scope-a"), b = fixture("scope-b");
    two_in_one_block(&a, &b);
    read_must_fault(&a);
}
END_TEST

START_TEST(test_nested_scopes_in_one_block_close_the_second_domain)
{
    struct fixture a = fixture("scope-a"), b = fixture("scope-b");
    two_in_one_block(&a, &b);
    read_must_fault(&b);
}
END_TEST

/* ---------------------------------------------------------- read-only */

static unsigned char read_only_scope(const struct fixture *f, bool write)
{
    KEYHEAP_SCOPE_RO(f->d);
    ck_assert_ptr_null(keyheap_current()); /* malloc's target stays */
    ck_assert_uint_eq(kht_key_rights(f->key), RIGHTS_RO);
    if (write) {
        kht_expect_pku_fault(f->key);
        kht_write(f->p + 1, 1);
        ck_abort_msg("the write in the read-only scope did not fault");
    }
    return kht_read(f->p + 1);
}

START_TEST(test_read_only_scope_reads_inside)
{
    struct fixture f = fixture("scope-ro");
    ck_assert_uint_eq(read_only_scope(&f, false), 0x5a);
    expect_left(&f);
}
END_TEST

START_TEST(test_read_only_scope_cannot_write)
{
    struct fixture f = fixture("scope-ro");
    read_only_scope(&f, true);
}
END_TEST

START_TEST(test_read_only_scope_closes_the_domain)
{
    struct fixture f = fixture("scope-ro");
    ck_assert_uint_eq(read_only_scope(&f, false), 0x5a);
    expect_left(&f);
    read_must_fault(&f);
}
END_TEST

/* ------------------------------------ pthread_exit and pthread_cancel */

/* What a thread's pthread key destructor saw: the thread's last state,
 * after its stack was unwound. */
static struct {
    keyheap_domain_t *current;
    unsigned depth, rights;
    bool seen;
} last;
static pthread_key_t last_key;
static struct fixture thread_f;
static volatile bool inside;
static volatile pid_t inside_tid;

static void record_last(void *arg)
{
    (void)arg;
    last.current = keyheap_current();
    last.depth = keyheap_abi_self.depth;
    last.rights = kht_key_rights(thread_f.key);
    last.seen = true;
}

/* Waits until thread tid sleeps in a system call (state S in
 * /proc/self/task/<tid>/stat): then a cancellation reaches it inside the
 * blocking call, not between two. */
static void wait_blocked(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    for (int tries = 0; tries < 10000; tries++) {
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *paren = strrchr(buf, ')');
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'S')
            return;
        usleep(1000);
    }
    ck_abort_msg("thread %d never blocked", (int)tid);
}

static void *exit_inside(void *cancel)
{
    pthread_setspecific(last_key, &last);
    KEYHEAP_SCOPE(thread_f.d);
    inside_tid = (pid_t)syscall(SYS_gettid);
    if (kht_read(thread_f.p + 1) != 0x5a)
        return NULL;
    inside = true;
    if (cancel == NULL)
        pthread_exit(NULL);
    for (;;)
        pause(); /* a cancellation point, blocked in the system call */
}

static void run_thread(bool cancel)
{
    thread_f = fixture("scope-thread");
    ck_assert_int_eq(pthread_key_create(&last_key, record_last), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, exit_inside, cancel ? &t : NULL), 0);
    if (cancel) {
        while (!inside)
            usleep(1000);
        wait_blocked(inside_tid);
        ck_assert_int_eq(pthread_cancel(t), 0);
    }
    void *ret;
    ck_assert_int_eq(pthread_join(t, &ret), 0);
    ck_assert_ptr_eq(ret, cancel ? PTHREAD_CANCELED : NULL);
    ck_assert(inside);
    ck_assert(last.seen);
}

#ifdef KHT_FEXCEPTIONS
/* With -fexceptions, glibc's forced unwinding runs the scope's cleanup. */
static void expect_thread_left(void)
{
    ck_assert_ptr_null(last.current);
    ck_assert_uint_eq(last.depth, 0);
    ck_assert_msg(last.rights & 1u, "the key was still open at the thread's end");
}

START_TEST(test_pthread_exit_inside_scope_leaves_with_fexceptions)
{
    run_thread(false);
    expect_thread_left();
}
END_TEST

START_TEST(test_pthread_cancel_inside_scope_leaves_with_fexceptions)
{
    run_thread(true);
    expect_thread_left();
}
END_TEST
#else
/* Without -fexceptions, gcc emits no landing pad for the cleanup, and the
 * forced unwinding passes the frame by: the thread ends inside, by its
 * domain stack.  Its PKRU then is what the unwinding ran with: the
 * domain's key still open after pthread_exit; but cancellation acted upon
 * in a blocking call unwinds from glibc's SIGCANCEL handler (glibc 2.36
 * makes cancellation asynchronous around such calls), which runs with the
 * kernel's default PKRU, every key but 0 closed. */
static void expect_thread_still_inside(unsigned rights)
{
    ck_assert_ptr_eq(last.current, thread_f.d);
    ck_assert_uint_eq(last.depth, 1);
    ck_assert_uint_eq(last.rights, rights);
}

START_TEST(test_pthread_exit_inside_scope_stays_inside_without_fexceptions)
{
    run_thread(false);
    expect_thread_still_inside(RIGHTS_RW);
}
END_TEST

START_TEST(test_pthread_cancel_inside_scope_stays_inside_without_fexceptions)
{
    run_thread(true);
    expect_thread_still_inside(RIGHTS_CLOSED);
}
END_TEST
#endif

/* glibc loads its unwinder (libgcc_s, with dlopen) at the first
 * pthread_exit, cancellation or backtrace of the process; done inside a
 * domain, the loader's allocations would land there and exit() would fault
 * in _dl_fini (keyheap.h, "scopes").  One thread exits here first, outside
 * every domain, and the test children inherit the loaded unwinder. */
static void *just_exit(void *arg)
{
    pthread_exit(arg);
}

static void load_unwinder(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, just_exit, NULL) != 0 || pthread_join(t, NULL) != 0)
        abort();
}

int main(void)
{
    load_unwinder();
    Suite *s = suite_create("scope");

    TCase *paths = tcase_create("paths");
    tcase_set_timeout(paths, 120);
    tcase_add_test(paths, test_scope_left_by_return_reads_inside);
    tcase_add_exit_test(paths, test_scope_left_by_return_closes_the_domain, KHT_EXIT_PKU_FAULT);
    tcase_add_test(paths, test_scope_left_by_an_early_return_skips_the_rest_and_leaves);
    tcase_add_test(paths, test_scope_left_by_break_and_continue_reads_inside);
    tcase_add_exit_test(paths, test_scope_left_by_break_closes_the_domain, KHT_EXIT_PKU_FAULT);
    tcase_add_test(paths, test_scope_left_by_goto_reads_inside);
    tcase_add_exit_test(paths, test_scope_left_by_goto_closes_the_domain, KHT_EXIT_PKU_FAULT);
    tcase_add_test(paths, test_nested_scopes_in_one_block_read_inside_and_leave_in_order);
    tcase_add_exit_test(paths, test_nested_scopes_in_one_block_close_the_first_domain,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_exit_test(paths, test_nested_scopes_in_one_block_close_the_second_domain,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(paths, test_read_only_scope_reads_inside);
    tcase_add_exit_test(paths, test_read_only_scope_cannot_write, KHT_EXIT_PKU_FAULT);
    tcase_add_exit_test(paths, test_read_only_scope_closes_the_domain, KHT_EXIT_PKU_FAULT);
    suite_add_tcase(s, paths);

    TCase *threads = tcase_create("threads");
    tcase_set_timeout(threads, 120);
#ifdef KHT_FEXCEPTIONS
    tcase_add_test(threads, test_pthread_exit_inside_scope_leaves_with_fexceptions);
    tcase_add_test(threads, test_pthread_cancel_inside_scope_leaves_with_fexceptions);
#else
    tcase_add_test(threads, test_pthread_exit_inside_scope_stays_inside_without_fexceptions);
    tcase_add_test(threads, test_pthread_cancel_inside_scope_stays_inside_without_fexceptions);
#endif
    suite_add_tcase(s, threads);

    return kht_main(s);
}
