/*
 * tests/khtest.h - small helpers shared by keyheap's Check tests.
 */
#ifndef KH_TESTS_KHTEST_H
#define KH_TESTS_KHTEST_H

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* KHT_ASAN is 1 in a build with AddressSanitizer (gcc or clang). */
#if defined(__SANITIZE_ADDRESS__)
#define KHT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KHT_ASAN 1
#endif
#endif

/* KHT_REQUIRE(expr, fmt, ...): ck_assert_msg(expr, fmt, ...) for hot loops.
 * A failure is reported exactly as by ck_assert_msg (this is its failing
 * branch), but a passing check costs nothing: every passing ck_assert_*
 * records its place (_mark_point writes a message to the test's message
 * file, and Check's parent process reads each one back after the test),
 * which in a loop of a million iterations is most of the native run time
 * and minutes under valgrind. */
#define KHT_REQUIRE(expr, ...)                                                         \
    do {                                                                               \
        if (!(expr))                                                                   \
            _ck_assert_failed(__FILE__, __LINE__, "Assertion '" #expr "' failed",      \
                              __VA_ARGS__);                                            \
    } while (0)

/* The value of environment variable name; the test fails when it is unset
 * (make check sets KEYHEAP_LIB, KEYHEAP_SRCDIR, KEYHEAP_BUILDDIR, ...). */
const char *kht_env(const char *name);

/* Runs argv[0] (looked up in PATH) with stdin from in_path (NULL: /dev/null),
 * stdout to out_path and stderr to err_path (NULL: inherited).  When preload
 * is not NULL the child gets LD_PRELOAD=preload; extra_env is a
 * NULL-terminated list of "NAME=value" strings added to the environment (or
 * NULL).  Returns the raw wait status. */
int kht_run(char *const argv[], const char *preload, char *const extra_env[],
            const char *in_path, const char *out_path, const char *err_path);

/* Reads a whole file into a NUL-terminated heap buffer; *len gets its size.
 * The test fails when the file cannot be read. */
char *kht_slurp(const char *path, size_t *len);

/* A fresh directory under $TMPDIR (or /tmp) that kht_cleanup() removes. */
const char *kht_tmpdir(void);
void kht_cleanup(void);

/* The resident set size of this process, in bytes, from /proc/self/statm. */
size_t kht_rss(void);

/* The file name of the loaded object that holds address addr (a failed
 * test when there is none). */
const char *kht_object_of(const void *addr);

/* The object that provides symbol name to this process (RTLD_DEFAULT). */
const char *kht_provider(const char *name);

/* Whether task tid of this process is asleep (state S in
 * /proc/self/task/<tid>/stat): blocked in a system call, as a test that
 * forces an interleaving waits for.  Inline, so that the shims (which do
 * not link this library) have it too. */
static inline int kht_task_sleeping(long tid)
{
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *state = strrchr(text, ')');
    return state != NULL && state[1] == ' ' && state[2] == 'S';
}

/* A thread made with the raw clone system call (CLONE_VM, CLONE_THREAD,
 * ...: no pthread, no TLS of its own, its creator's PKRU) on a fresh
 * 256 KiB stack, running fn(arg); it must end with syscall(SYS_exit, 0).
 * Returns its tid (a failed test when clone fails). */
int kht_raw_clone(int (*fn)(void *), void *arg);

/* Runs a Check suite with CK_NORMAL output; the process exit status. */
int kht_main(Suite *s);

#ifdef __cplusplus
}
#endif

#endif /* KH_TESTS_KHTEST_H */
