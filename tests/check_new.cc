/*
 * tests/check_new.cc - every C++ operator new/delete keyheap exports.
 */
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <malloc.h>
#include <initializer_list>
#include <new>
#include <sys/resource.h>

#include "include/keyheap.h"
#include "tests/khtest.h"

namespace {

/* Calls through volatile function pointers, so the compiler cannot elide a
 * new/delete pair (C++14 allows that for new-expressions). */
void *(*volatile op_new)(std::size_t) = ::operator new;
void *(*volatile op_new_arr)(std::size_t) = ::operator new[];
void *(*volatile op_new_nt)(std::size_t, const std::nothrow_t &) noexcept = ::operator new;
void *(*volatile op_new_arr_nt)(std::size_t, const std::nothrow_t &) noexcept = ::operator new[];
void *(*volatile op_new_al)(std::size_t, std::align_val_t) = ::operator new;
void *(*volatile op_new_arr_al)(std::size_t, std::align_val_t) = ::operator new[];
void *(*volatile op_new_al_nt)(std::size_t, std::align_val_t, const std::nothrow_t &) noexcept =
    ::operator new;
void *(*volatile op_new_arr_al_nt)(std::size_t, std::align_val_t,
                                   const std::nothrow_t &) noexcept = ::operator new[];

const std::size_t huge = SIZE_MAX / 2;
int handler_calls;

void handler_gives_up_on_third_call()
{
    if (++handler_calls == 3)
        std::set_new_handler(nullptr);
}

void handler_throws()
{
    ++handler_calls;
    throw std::bad_alloc();
}

} // namespace

START_TEST(test_operators_resolve_to_keyheap)
{
    const char *lib = kht_object_of(reinterpret_cast<void *>(keyheap_version));
    static const char *const names[] = {
        "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
        "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
        "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
        "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvm",
        "_ZdaPvm", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
        "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
        "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    };
    for (const char *name : names) {
        const char *from = kht_provider(name);
        ck_assert_msg(std::strcmp(from, lib) == 0, "%s comes from %s", name, from);
    }
}
END_TEST

START_TEST(test_new_zero_returns_unique_pointers)
{
    void *a = op_new(0), *b = op_new(0), *c = op_new_arr(0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_ne(a, c);
    ::operator delete(a);
    ::operator delete(b, std::size_t(0));
    ::operator delete[](c);
}
END_TEST

START_TEST(test_new_memory_is_usable_and_sized_delete_frees_it)
{
    for (std::size_t n = 1; n <= (std::size_t(16) << 20); n = n * 2 + 3) {
        auto *p = static_cast<unsigned char *>(op_new(n));
        auto *q = static_cast<unsigned char *>(op_new_arr(n));
        ck_assert_uint_ge(malloc_usable_size(p), n);
        ck_assert_uint_eq(reinterpret_cast<std::uintptr_t>(p) % (n >= 16 ? 16 : 1), 0);
        std::memset(p, 1, n);
        std::memset(q, 2, n);
        ck_assert_int_eq(p[n - 1], 1);
        ::operator delete(p, n);
        ::operator delete[](q, n);
    }
    /* Sized delete really released the block: the next request of the same
     * small size gets it back from this thread's cache. */
    void *p = op_new(40);
    ::operator delete(p, std::size_t(40));
    void *again = op_new(40);
    ck_assert_ptr_eq(again, p);
    ::operator delete(again);
}
END_TEST

START_TEST(test_aligned_new_honours_every_power_of_two_to_1mib)
{
    for (std::size_t a = 1; a <= (std::size_t(1) << 20); a <<= 1) {
        auto al = std::align_val_t(a);
        void *ps[4] = {op_new_al(3, al), op_new_arr_al(a + 1, al),
                       op_new_al_nt(a * 2, al, std::nothrow),
                       op_new_arr_al_nt(0, al, std::nothrow)};
        for (void *p : ps) {
            ck_assert_ptr_nonnull(p);
            ck_assert_msg(reinterpret_cast<std::uintptr_t>(p) % a == 0, "%p not %zu-aligned", p,
                          a);
        }
        std::memset(ps[1], 3, a + 1);
        ::operator delete(ps[0], al);
        ::operator delete[](ps[1], a + 1, al);
        ::operator delete(ps[2], a * 2, al);
        ::operator delete[](ps[3], al, std::nothrow);
    }
}
END_TEST

START_TEST(test_failed_new_without_handler_throws_bad_alloc)
{
    std::set_new_handler(nullptr);
    bool threw = false;
    try {
        void *p = op_new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    ck_assert(threw);
    threw = false;
    try {
        void *p = op_new_arr_al(huge, std::align_val_t(64));
        ::operator delete[](p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    ck_assert(threw);
}
END_TEST

START_TEST(test_failed_new_calls_new_handler_until_it_is_removed)
{
    handler_calls = 0;
    std::set_new_handler(handler_gives_up_on_third_call);
    bool threw = false;
    try {
        void *p = op_new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    ck_assert(threw);
    ck_assert_int_eq(handler_calls, 3);
}
END_TEST

START_TEST(test_nothrow_new_returns_null_instead_of_throwing)
{
    std::set_new_handler(nullptr);
    ck_assert_ptr_null(op_new_nt(huge, std::nothrow));
    ck_assert_ptr_null(op_new_arr_nt(huge, std::nothrow));
    ck_assert_ptr_null(op_new_al_nt(huge, std::align_val_t(4096), std::nothrow));
    /* A handler that throws bad_alloc is called once, and nothrow new turns
     * the exception into nullptr. */
    handler_calls = 0;
    std::set_new_handler(handler_throws);
    ck_assert_ptr_null(op_new_arr_al_nt(huge, std::align_val_t(32), std::nothrow));
    ck_assert_int_eq(handler_calls, 1);
    std::set_new_handler(nullptr);
    /* The twin: a satisfiable nothrow request succeeds. */
    void *p = op_new_nt(100, std::nothrow);
    ck_assert_ptr_nonnull(p);
    ::operator delete(p, std::nothrow);
}
END_TEST

void *reserve;

void handler_releases_reserve()
{
    ++handler_calls;
    ::operator delete(reserve);
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

START_TEST(test_new_handler_that_releases_memory_lets_new_succeed)
{
    /* Address space is capped so that a 256 MiB block cannot be had while a
     * 512 MiB reserve is held; the handler frees the reserve and the retry
     * succeeds: the loop ends with memory, not with bad_alloc. */
    struct rlimit lim;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &lim), 0);
    std::size_t mapped = std::size_t(1) << 30; /* generous room for everything else */
    lim.rlim_cur = mapped + (std::size_t(600) << 20);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    reserve = op_new(std::size_t(512) << 20);
    ck_assert_ptr_nonnull(reserve);
    void *filler[64];
    int n = 0;
    /* Take what address space is left, so that only the reserve can help. */
    while (n < 64 && (filler[n] = op_new_nt(std::size_t(64) << 20, std::nothrow)) != nullptr)
        n++;
    handler_calls = 0;
    std::set_new_handler(handler_releases_reserve);
    void *big = op_new(std::size_t(256) << 20);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(handler_calls, 1);
    ck_assert_ptr_null(reserve);
    ::operator delete(big);
    while (n > 0)
        ::operator delete(filler[--n]);
}
END_TEST

START_TEST(test_new_inside_domain_lands_in_domain_and_delete_works_outside)
{
    /* Hardware keys where the CPU has them, a separate heap elsewhere:
     * landing is the same either way. */
    setenv("KEYHEAP_CONF", "unprotected:true", 1);
    keyheap_domain_t *d = keyheap_domain_create("cxx", 0);
    ck_assert_ptr_nonnull(d);
    keyheap_enter(d);
    void *plain = op_new(24), *arr = op_new_arr(100);
    void *al = op_new_al(64, std::align_val_t(256));
    void *nt = op_new_nt(10, std::nothrow);
    keyheap_leave(d);
    for (void *p : {plain, arr, al, nt})
        ck_assert_ptr_eq(keyheap_domain_of(p), d);
    void *outside = op_new(24);
    ck_assert_ptr_null(keyheap_domain_of(outside));
    /* Every delete form frees by address, from outside the domain. */
    ::operator delete(plain, std::size_t(24));
    ::operator delete[](arr);
    ::operator delete(al, std::size_t(64), std::align_val_t(256));
    ::operator delete(nt, std::nothrow);
    ::operator delete(outside);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

int main()
{
    Suite *s = suite_create("new");
    TCase *tc = tcase_create("operators");
    tcase_add_test(tc, test_operators_resolve_to_keyheap);
    tcase_add_test(tc, test_new_zero_returns_unique_pointers);
    tcase_add_test(tc, test_new_memory_is_usable_and_sized_delete_frees_it);
    tcase_add_test(tc, test_aligned_new_honours_every_power_of_two_to_1mib);
    tcase_add_test(tc, test_failed_new_without_handler_throws_bad_alloc);
    tcase_add_test(tc, test_failed_new_calls_new_handler_until_it_is_removed);
    tcase_add_test(tc, test_nothrow_new_returns_null_instead_of_throwing);
    tcase_add_test(tc, test_new_handler_that_releases_memory_lets_new_succeed);
    tcase_add_test(tc, test_new_inside_domain_lands_in_domain_and_delete_works_outside);
    suite_add_tcase(s, tc);
    return kht_main(s);
}
