/*
 * check_pkey: proves that the machine the tests run on has working memory
 * protection keys, i.e. that tools/pku-run gives real PKU.  Every "must
 * fault" test has a twin that differs only in PKRU and must not fault.
 *
 * Run it through tools/pku-run (make check does): on a CPU without PKU,
 * pkey_alloc fails and every test here fails on purpose.
 */
/* Also defined by the build's AM_CPPFLAGS; either way, before any header. */
#ifndef _GNU_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#endif
#include <check.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Exit codes of the SIGSEGV handler; only the first one passes. */
enum {
    EXIT_PKU_FAULT_ON_KEY = 42,
    EXIT_FAULT_NOT_PKUERR = 43,
    EXIT_FAULT_ON_OTHER_KEY = 44,
    EXIT_FAULT_ON_OTHER_ADDRESS = 45,
};

#define NO_PKU_MESSAGE                                                                             \
    "pkey_alloc failed (%s): this CPU or kernel has no usable PKU; "                               \
    "run this test through tools/pku-run (make check does)"

/* PKRU holds two bits per key: access-disable and write-disable. */
static uint32_t pkru_ad_bit(int key)
{
    return UINT32_C(1) << (2 * key);
}
static uint32_t pkru_wd_bit(int key)
{
    return UINT32_C(1) << (2 * key + 1);
}

/* RDPKRU and WRPKRU as bytes, so no -mpku is needed; both need ECX = 0. */
static uint32_t pkru_read(void)
{
    uint32_t eax, edx;
    __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
    return eax;
}

static void pkru_write(uint32_t pkru)
{
    __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(pkru), "c"(0), "d"(0) : "memory");
}

/* Sets the rights of KEY in this thread: bits from PKEY_DISABLE_*. */
static void pkru_set_key(int key, unsigned int disable)
{
    uint32_t pkru = pkru_read() & ~(pkru_ad_bit(key) | pkru_wd_bit(key));
    if (disable & PKEY_DISABLE_ACCESS)
        pkru |= pkru_ad_bit(key);
    if (disable & PKEY_DISABLE_WRITE)
        pkru |= pkru_wd_bit(key);
    pkru_write(pkru);
}

/*
 * The accesses under test live in their own functions, through volatile
 * pointers, so the compiler can neither drop nor move them.
 */
__attribute__((noinline)) static void page_write(volatile char *p, char v)
{
    *p = v;
}

__attribute__((noinline)) static char page_read(volatile char *p)
{
    return *p;
}

/* Each test runs in its own forked child (CK_FORK), with its own copies. */
static int test_key = -1;
static char *test_page = MAP_FAILED;
static size_t test_page_size;

/* A fixed line on stderr, then the exit code: no stdio in a handler. */
static void fault_exit(int code, const char *line)
{
    ssize_t unused = write(STDERR_FILENO, line, strlen(line));
    (void)unused;
    _exit(code);
}

/* Accepts exactly one fault: SEGV_PKUERR on test_key, inside test_page. */
static void on_sigsegv(int sig, siginfo_t *si, void *ucontext)
{
    (void)sig;
    (void)ucontext;
    if (si->si_code != SEGV_PKUERR)
        fault_exit(EXIT_FAULT_NOT_PKUERR, "check_pkey: SIGSEGV, but si_code is not SEGV_PKUERR\n");
    if ((int)si->si_pkey != test_key)
        fault_exit(EXIT_FAULT_ON_OTHER_KEY, "check_pkey: SEGV_PKUERR on another key\n");
    if ((char *)si->si_addr < test_page || (char *)si->si_addr >= test_page + test_page_size)
        fault_exit(EXIT_FAULT_ON_OTHER_ADDRESS, "check_pkey: SEGV_PKUERR outside the test page\n");
    _exit(EXIT_PKU_FAULT_ON_KEY);
}

static void sigsegv_handler_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsegv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

/* Checked fixture: a fresh key and a page tagged with it, key open. */
static void tagged_page_setup(void)
{
    test_key = pkey_alloc(0, 0);
    ck_assert_msg(test_key >= 0, NO_PKU_MESSAGE, strerror(errno));
    ck_assert_msg(test_key != 0, "pkey_alloc returned key 0");
    test_page_size = (size_t)sysconf(_SC_PAGESIZE);
    test_page =
        mmap(NULL, test_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(test_page, MAP_FAILED);
    test_page[0] = 'k';
    ck_assert_int_eq(pkey_mprotect(test_page, test_page_size, PROT_READ | PROT_WRITE, test_key), 0);
    sigsegv_handler_install();
}

static void tagged_page_teardown(void)
{
    if (test_key <= 0)
        return;
    pkru_set_key(test_key, 0);
    munmap(test_page, test_page_size);
    pkey_free(test_key);
}

START_TEST(test_write_of_access_disabled_page_faults_with_pkuerr)
{
    pkru_set_key(test_key, PKEY_DISABLE_ACCESS);
    page_write(test_page, 'x');
    pkru_set_key(test_key, 0);
    ck_abort_msg("a write to an access-disabled page did not fault");
}
END_TEST

START_TEST(test_write_of_access_enabled_page_does_not_fault)
{
    pkru_set_key(test_key, 0);
    page_write(test_page, 'x');
    ck_assert_int_eq(page_read(test_page), 'x');
}
END_TEST

START_TEST(test_read_of_access_disabled_page_faults_with_pkuerr)
{
    pkru_set_key(test_key, PKEY_DISABLE_ACCESS);
    (void)page_read(test_page);
    pkru_set_key(test_key, 0);
    ck_abort_msg("a read of an access-disabled page did not fault");
}
END_TEST

START_TEST(test_read_of_access_enabled_page_does_not_fault)
{
    pkru_set_key(test_key, 0);
    ck_assert_int_eq(page_read(test_page), 'k');
}
END_TEST

START_TEST(test_write_of_write_disabled_page_faults_with_pkuerr)
{
    pkru_set_key(test_key, PKEY_DISABLE_WRITE);
    page_write(test_page, 'x');
    pkru_set_key(test_key, 0);
    ck_abort_msg("a write to a write-disabled page did not fault");
}
END_TEST

START_TEST(test_read_of_write_disabled_page_does_not_fault)
{
    pkru_set_key(test_key, PKEY_DISABLE_WRITE);
    ck_assert_int_eq(page_read(test_page), 'k');
    pkru_set_key(test_key, 0);
}
END_TEST

START_TEST(test_pkey_alloc_returns_a_key_from_1_to_15)
{
    int key = pkey_alloc(0, 0);
    ck_assert_msg(key >= 0, NO_PKU_MESSAGE, strerror(errno));
    ck_assert_int_ge(key, 1);
    ck_assert_int_le(key, 15);
    ck_assert_int_eq(pkey_free(key), 0);
}
END_TEST

START_TEST(test_pkey_free_releases_the_key)
{
    int key = pkey_alloc(0, 0);
    ck_assert_msg(key >= 0, NO_PKU_MESSAGE, strerror(errno));
    ck_assert_int_eq(pkey_free(key), 0);
    /* A key that is no longer allocated cannot be freed again. */
    errno = 0;
    ck_assert_int_eq(pkey_free(key), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static Suite *pkey_suite(void)
{
    Suite *s = suite_create("pkey");
    TCase *faults = tcase_create("faults");
    TCase *keys = tcase_create("keys");

    tcase_add_checked_fixture(faults, tagged_page_setup, tagged_page_teardown);
    tcase_add_exit_test(faults, test_write_of_access_disabled_page_faults_with_pkuerr,
                        EXIT_PKU_FAULT_ON_KEY);
    tcase_add_test(faults, test_write_of_access_enabled_page_does_not_fault);
    tcase_add_exit_test(faults, test_read_of_access_disabled_page_faults_with_pkuerr,
                        EXIT_PKU_FAULT_ON_KEY);
    tcase_add_test(faults, test_read_of_access_enabled_page_does_not_fault);
    tcase_add_exit_test(faults, test_write_of_write_disabled_page_faults_with_pkuerr,
                        EXIT_PKU_FAULT_ON_KEY);
    tcase_add_test(faults, test_read_of_write_disabled_page_does_not_fault);
    suite_add_tcase(s, faults);

    tcase_add_test(keys, test_pkey_alloc_returns_a_key_from_1_to_15);
    tcase_add_test(keys, test_pkey_free_releases_the_key);
    suite_add_tcase(s, keys);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pkey_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
