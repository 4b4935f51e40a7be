/*
 * tests/check_scope.cc - keyheap::scope and keyheap::scope_ro (keyheap.h,
 * "scopes"): the guards leave their domain when a C++ exception or
 * pthread_exit unwinds through them.  Runs through tools/pku-run.
 *
 * Every "closed afterwards" test reads the domain's block and must die of
 * SEGV_PKUERR on the domain's key (tests/khfault.h); its twin makes the
 * same read inside the guard.
 */
#include <cstdio>
#include <cstring>
#include <sys/syscall.h>
#include <pthread.h>
#include <stdexcept>
#include <type_traits>
#include <unistd.h>

#include "include/keyheap.h"
#include "tests/khfault.h"
#include "tests/khtest.h"

static_assert(!std::is_copy_constructible<keyheap::scope>::value, "scope is not copyable");
static_assert(!std::is_move_constructible<keyheap::scope>::value, "scope is not movable");
static_assert(!std::is_copy_assignable<keyheap::scope>::value, "scope is not assignable");
static_assert(!std::is_move_assignable<keyheap::scope>::value, "scope is not assignable");
static_assert(!std::is_copy_constructible<keyheap::scope_ro>::value, "scope_ro is not copyable");
static_assert(!std::is_move_constructible<keyheap::scope_ro>::value, "scope_ro is not movable");
static_assert(std::is_nothrow_constructible<keyheap::scope, keyheap_domain_t *>::value,
              "entering does not throw");
static_assert(std::is_nothrow_destructible<keyheap::scope>::value, "leaving does not throw");
static_assert(std::is_nothrow_destructible<keyheap::scope_ro>::value, "leaving does not throw");

namespace
{

enum { RIGHTS_RW = 0, RIGHTS_RO = 2 };

struct fixture {
    keyheap_domain_t *d;
    int key;
    unsigned char *p;
};

fixture make_fixture(const char *name)
{
    fixture f;
    f.d = keyheap_domain_create(name, 0);
    ck_assert_msg(f.d != nullptr, "keyheap_domain_create failed: run this test through pku-run");
    f.key = keyheap_domain_pkey(f.d);
    ck_assert_msg(f.key > 0, "the domain has no hardware key: run this test through pku-run");
    f.p = static_cast<unsigned char *>(keyheap_malloc(f.d, 64));
    ck_assert_ptr_nonnull(f.p);
    keyheap_enter(f.d);
    std::memset(f.p, 0x5a, 64);
    keyheap_leave(f.d);
    return f;
}

bool closed(int key)
{
    return (kht_key_rights(key) & 1u) != 0;
}

void expect_left(const fixture &f)
{
    ck_assert_ptr_null(keyheap_current());
    ck_assert_uint_eq(keyheap_abi_self.depth, 0);
    ck_assert_msg(closed(f.key), "key %d is still open", f.key);
}

void read_must_fault(const fixture &f)
{
    kht_expect_pku_fault(f.key);
    kht_read(f.p + 1);
    ck_abort_msg("the read after the guard did not fault");
}

struct thrown {
    int value;
};

/* --------------------------------------------------------- exceptions */

/* The exception is thrown inside a read-only guard, so it is allocated on
 * the default heap (malloc's target stays; see the WARNING in keyheap.h
 * about read-write guards). */
[[noreturn]] void throw_inside_read_only(const fixture &f, unsigned char *seen)
{
    keyheap::scope_ro in(f.d);
    ck_assert_uint_eq(kht_key_rights(f.key), RIGHTS_RO);
    *seen = kht_read(f.p + 1);
    throw std::runtime_error("thrown inside the guard");
}

void catch_outside(const fixture &f)
{
    unsigned char seen = 0;
    try {
        throw_inside_read_only(f, &seen);
    } catch (const std::runtime_error &e) {
        ck_assert_str_eq(e.what(), "thrown inside the guard");
    }
    ck_assert_uint_eq(seen, 0x5a);
    expect_left(f);
}

START_TEST(test_exception_out_of_read_only_guard_is_caught_after_reading_inside)
{
    fixture f = make_fixture("scope-exception");
    catch_outside(f);
}
END_TEST

START_TEST(test_exception_out_of_read_only_guard_leaves_the_domain)
{
    fixture f = make_fixture("scope-exception");
    catch_outside(f);
    read_must_fault(f);
}
END_TEST

/* An exception out of a read-write guard, caught inside an outer
 * read-write guard of the same domain: the inner guard's destructor runs
 * (the depth drops) while the domain stays open for the exception object,
 * which was allocated in it. */
void throw_out_of_inner_guard(const fixture &f, bool throw_it)
{
    keyheap::scope outer(f.d);
    unsigned depth_inside = 0;
    try {
        keyheap::scope in(f.d);
        depth_inside = keyheap_abi_self.depth;
        kht_write(f.p + 2, 9);
        if (throw_it)
            throw thrown{7};
    } catch (const thrown &t) {
        ck_assert_int_eq(t.value, 7);
        ck_assert_uint_eq(keyheap_abi_self.depth, 1);
    }
    ck_assert_uint_eq(depth_inside, 2);
    ck_assert_uint_eq(keyheap_abi_self.depth, 1);
    ck_assert_ptr_eq(keyheap_current(), f.d);
    ck_assert_uint_eq(kht_read(f.p + 2), 9);
}

START_TEST(test_exception_out_of_inner_read_write_guard_leaves_it_and_is_caught_in_the_outer)
{
    fixture f = make_fixture("scope-exception");
    throw_out_of_inner_guard(f, true);
    expect_left(f);
}
END_TEST

START_TEST(test_inner_read_write_guard_left_without_exception_keeps_the_outer)
{
    fixture f = make_fixture("scope-exception");
    throw_out_of_inner_guard(f, false);
    expect_left(f);
}
END_TEST

START_TEST(test_exception_caught_inside_read_write_guard_works)
{
    /* Thrown and caught inside the read-write guard: the exception object
     * lives in the domain and is only touched while the domain is open. */
    fixture f = make_fixture("scope-exception");
    {
        keyheap::scope in(f.d);
        try {
            throw std::runtime_error("inside");
        } catch (const std::runtime_error &e) {
            ck_assert_str_eq(e.what(), "inside");
        }
        ck_assert_ptr_eq(keyheap_current(), f.d);
    }
    expect_left(f);
}
END_TEST

/* The exception is allocated while f.d is malloc's target: in the domain.
 * Once the guard's destructor has closed the domain, the unwinder faults on
 * it: the proof that the destructor ran, and the pitfall keyheap.h warns
 * about. */
START_TEST(test_exception_thrown_inside_read_write_guard_faults_once_the_guard_left)
{
    fixture f = make_fixture("scope-exception");
#ifdef KHT_NO_REPLACEMENT
    /* Without malloc replacement (configure --disable-malloc-replacement)
     * libstdc++'s malloc is not keyheap's: the exception is on the
     * program's own heap, and is caught outside with the guard left. */
    int caught = 0;
    try {
        keyheap::scope in(f.d);
        throw thrown{7};
    } catch (const thrown &e) {
        caught = e.value;
    }
    ck_assert_int_eq(caught, 7);
    expect_left(f);
#else
    kht_expect_pku_fault(f.key);
    try {
        keyheap::scope in(f.d);
        throw thrown{7};
    } catch (const thrown &) {
    }
    ck_abort_msg("the exception allocated in the domain was caught outside it");
#endif
}
END_TEST

/* The C macro in C++ code: g++ runs its cleanup while unwinding. */
[[noreturn]] void throw_inside_macro_scope(const fixture &f)
{
    KEYHEAP_SCOPE_RO(f.d);
    ck_assert_uint_eq(kht_key_rights(f.key), RIGHTS_RO);
    throw thrown{3};
}

START_TEST(test_exception_out_of_keyheap_scope_ro_macro_in_cxx_leaves_the_domain)
{
    fixture f = make_fixture("scope-macro");
    try {
        throw_inside_macro_scope(f);
    } catch (const thrown &t) {
        ck_assert_int_eq(t.value, 3);
    }
    expect_left(f);
}
END_TEST

/* Without a guard, an exception leaves the domain entered. */
START_TEST(test_exception_out_of_plain_enter_stays_inside)
{
    fixture f = make_fixture("scope-plain");
    try {
        keyheap_enter_ro(f.d);
        throw thrown{1};
    } catch (const thrown &) {
    }
    ck_assert_uint_eq(keyheap_abi_self.depth, 1);
    ck_assert_uint_eq(kht_key_rights(f.key), RIGHTS_RO);
    ck_assert_uint_eq(kht_read(f.p + 1), 0x5a);
    keyheap_leave(f.d);
    expect_left(f);
}
END_TEST

/* ------------------------------------------------------- pthread_exit */

struct last_state {
    keyheap_domain_t *current;
    unsigned depth, rights;
    bool seen;
};
last_state last;
pthread_key_t last_key;
fixture thread_f;
volatile bool inside;
volatile pid_t inside_tid;

extern "C" void record_last(void *)
{
    last.current = keyheap_current();
    last.depth = keyheap_abi_self.depth;
    last.rights = kht_key_rights(thread_f.key);
    last.seen = true;
}

/* An object outside the guard: its destructor runs after the guard's. */
struct observer {
    last_state *into;
    ~observer()
    {
        into->current = keyheap_current();
        into->depth = keyheap_abi_self.depth;
        into->rights = kht_key_rights(thread_f.key);
        into->seen = true;
    }
};
last_state after_guard;

/* Waits until thread tid sleeps in a system call (state S in
 * /proc/self/task/<tid>/stat): then a cancellation reaches it inside the
 * blocking call, not between two. */
void wait_blocked(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
    for (int tries = 0; tries < 10000; tries++) {
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *paren = strrchr(buf, ')');
        if (paren != nullptr && paren[1] == ' ' && paren[2] == 'S')
            return;
        usleep(1000);
    }
    ck_abort_msg("thread %d never blocked", static_cast<int>(tid));
}

extern "C" void *exit_inside(void *cancel)
{
    pthread_setspecific(last_key, &last);
    observer o{&after_guard};
    keyheap::scope in(thread_f.d);
    inside_tid = static_cast<pid_t>(syscall(SYS_gettid));
    if (kht_read(thread_f.p + 1) == 0x5a)
        inside = true;
    if (cancel == nullptr)
        pthread_exit(nullptr);
    for (;;)
        pause(); /* a cancellation point, blocked in the system call */
}

void run_thread(bool cancel)
{
    thread_f = make_fixture("scope-thread");
    ck_assert_int_eq(pthread_key_create(&last_key, record_last), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, nullptr, exit_inside, cancel ? &t : nullptr), 0);
    if (cancel) {
        while (!inside)
            usleep(1000);
        wait_blocked(inside_tid);
        ck_assert_int_eq(pthread_cancel(t), 0);
    }
    void *ret;
    ck_assert_int_eq(pthread_join(t, &ret), 0);
    ck_assert_ptr_eq(ret, cancel ? PTHREAD_CANCELED : nullptr);
    ck_assert(inside);
    for (const last_state *s : {&after_guard, &last}) {
        ck_assert(s->seen);
        ck_assert_ptr_null(s->current);
        ck_assert_uint_eq(s->depth, 0);
        ck_assert_msg(s->rights & 1u, "the key was still open at the thread's end");
    }
}

START_TEST(test_pthread_exit_inside_guard_leaves_the_domain)
{
    run_thread(false);
}
END_TEST

START_TEST(test_pthread_cancel_inside_guard_leaves_the_domain)
{
    run_thread(true);
}
END_TEST

/* glibc loads its unwinder with dlopen at the first pthread_exit or
 * cancellation; inside a domain the loader's allocations would land there
 * (keyheap.h, "scopes").  One thread exits here first, outside. */
extern "C" void *just_exit(void *arg)
{
    pthread_exit(arg);
}

void load_unwinder()
{
    pthread_t t;
    if (pthread_create(&t, nullptr, just_exit, nullptr) != 0 || pthread_join(t, nullptr) != 0)
        std::abort();
}

} // namespace

int main()
{
    load_unwinder();
    Suite *s = suite_create("scope-c++");

    TCase *exceptions = tcase_create("exceptions");
    tcase_set_timeout(exceptions, 120);
    tcase_add_test(exceptions,
                   test_exception_out_of_read_only_guard_is_caught_after_reading_inside);
    tcase_add_exit_test(exceptions, test_exception_out_of_read_only_guard_leaves_the_domain,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(exceptions, test_exception_caught_inside_read_write_guard_works);
    tcase_add_test(
        exceptions,
        test_exception_out_of_inner_read_write_guard_leaves_it_and_is_caught_in_the_outer);
    tcase_add_test(exceptions, test_inner_read_write_guard_left_without_exception_keeps_the_outer);
#ifdef KHT_NO_REPLACEMENT
    tcase_add_test(exceptions,
                   test_exception_thrown_inside_read_write_guard_faults_once_the_guard_left);
#else
    tcase_add_exit_test(exceptions,
                        test_exception_thrown_inside_read_write_guard_faults_once_the_guard_left,
                        KHT_EXIT_PKU_FAULT);
#endif
    tcase_add_test(exceptions,
                   test_exception_out_of_keyheap_scope_ro_macro_in_cxx_leaves_the_domain);
    tcase_add_test(exceptions, test_exception_out_of_plain_enter_stays_inside);
    suite_add_tcase(s, exceptions);

    TCase *threads = tcase_create("threads");
    tcase_set_timeout(threads, 120);
    tcase_add_test(threads, test_pthread_exit_inside_guard_leaves_the_domain);
    tcase_add_test(threads, test_pthread_cancel_inside_guard_leaves_the_domain);
    suite_add_tcase(s, threads);

    return kht_main(s);
}
