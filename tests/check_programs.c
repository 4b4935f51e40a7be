/*
 * tests/check_programs.c - real programs run under LD_PRELOAD=libkeyheap.so
 * produce the same output as without it.
 *
 * Every program runs twice: plainly, and with keyheap preloaded.  The
 * dynamic linker's own record of the second run (LD_DEBUG=bindings) must show
 * the program's malloc bound to libkeyheap.so, which proves the preload took
 * effect, and the two runs' stdout must be identical and non-empty.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/khtest.h"

static char *path_in(const char *name)
{
    char *p;
    ck_assert_int_gt(asprintf(&p, "%s/%s", kht_tmpdir(), name), 0);
    return p;
}

static const char *program(const char *var, const char *package)
{
    const char *p = getenv(var);
    ck_assert_msg(p != NULL && *p != '\0' && access(p, X_OK) == 0,
                  "%s is not set or not executable: apt-get install %s, then re-run configure",
                  var, package);
    return p;
}

/* Whether the LD_DEBUG=bindings logs (one per process) of the last run
 * show some object's reference to malloc bound to libkeyheap.so. */
static int malloc_bound_to_keyheap(void)
{
    char *pattern;
    ck_assert_int_gt(asprintf(&pattern, "%s/ld.debug.*", kht_tmpdir()), 0);
    glob_t g;
    int found = 0;
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !found; i++) {
            char *log = kht_slurp(g.gl_pathv[i], NULL);
            for (char *line = strtok(log, "\n"); line != NULL && !found;
                 line = strtok(NULL, "\n"))
                found = strstr(line, "binding file") != NULL &&
                        strstr(line, "libkeyheap.so") != NULL &&
                        strstr(line, "normal symbol `malloc'") != NULL;
            free(log);
            unlink(g.gl_pathv[i]);
        }
        globfree(&g);
    }
    free(pattern);
    return found;
}

/* Runs argv with and without keyheap and compares what it printed.  When
 * fresh is not NULL, that file is removed before each run. */
static void same_output_with_and_without_keyheap(char *const argv[], const char *input,
                                                 const char *fresh)
{
    char *plain = path_in("plain.out"), *kh = path_in("keyheap.out");
    char *kh_err = path_in("keyheap.err"), *debug_env;
    ck_assert_int_gt(asprintf(&debug_env, "LD_DEBUG_OUTPUT=%s/ld.debug", kht_tmpdir()), 0);
    char *ld_env[] = {"LD_DEBUG=bindings", debug_env, NULL};

    if (fresh != NULL)
        unlink(fresh);
    int s1 = kht_run(argv, NULL, NULL, input, plain, NULL);
    ck_assert_msg(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "%s failed without keyheap: %#x",
                  argv[0], s1);
    if (fresh != NULL)
        unlink(fresh);
    int s2 = kht_run(argv, kht_env("KEYHEAP_LIB"), ld_env, input, kh, kh_err);
    char *err = kht_slurp(kh_err, NULL);
    ck_assert_msg(WIFEXITED(s2) && WEXITSTATUS(s2) == 0,
                  "%s failed with keyheap: status %#x, stderr:\n%.2000s", argv[0], s2, err);
    ck_assert_msg(malloc_bound_to_keyheap(), "%s did not run on keyheap: no binding of malloc "
                  "to libkeyheap.so in the dynamic linker's log", argv[0]);

    size_t n1, n2;
    char *a = kht_slurp(plain, &n1), *b = kht_slurp(kh, &n2);
    ck_assert_msg(n1 > 0, "%s printed nothing", argv[0]);
    ck_assert_msg(n1 == n2 && memcmp(a, b, n1) == 0,
                  "%s printed different output with keyheap (%zu vs %zu bytes)", argv[0], n1, n2);
    free(a), free(b), free(err);
    free(plain), free(kh), free(kh_err), free(debug_env);
}

static char *srcfile(const char *rel)
{
    char *p;
    ck_assert_int_gt(asprintf(&p, "%s/%s", kht_env("KEYHEAP_SRCDIR"), rel), 0);
    return p;
}

START_TEST(test_python3_json_regex_threads_hashlib)
{
    char *argv[] = {(char *)program("KEYHEAP_PYTHON3", "python3"),
                    srcfile("tests/programs/workload.py"), NULL};
    same_output_with_and_without_keyheap(argv, NULL, NULL);
    kht_cleanup();
}
END_TEST

/* A repository to run git log on: the source tree's own when it is a git
 * checkout, otherwise (a release tarball) one made here from its files. */
static char *git_repository(const char *git)
{
    const char *src = kht_env("KEYHEAP_SRCDIR");
    char *dotgit;
    ck_assert_int_gt(asprintf(&dotgit, "%s/.git", src), 0);
    if (access(dotgit, F_OK) == 0)
        return (char *)src;
    char *repo = path_in("repo"), *script;
    ck_assert_int_gt(
        asprintf(&script,
                 "set -e; mkdir -p '%s'; cd '%s'; '%s' init -q .;"
                 " export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t"
                 " GIT_COMMITTER_EMAIL=t@t GIT_AUTHOR_DATE='2026-01-01T00:00:00Z'"
                 " GIT_COMMITTER_DATE='2026-01-01T00:00:00Z';"
                 " for d in include alloc tests; do cp -r '%s'/$d .; '%s' add $d;"
                 " '%s' commit -q -m \"add $d\"; done",
                 repo, repo, git, src, git, git),
        0);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    int status = kht_run(argv, NULL, NULL, NULL, NULL, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "making a git repository failed");
    return repo;
}

START_TEST(test_git_log_stat_on_a_repository)
{
    const char *git = program("KEYHEAP_GIT", "git");
    char *argv[] = {(char *)git, "-C", git_repository(git), "--no-pager", "log", "--stat",
                    "--no-color", NULL};
    same_output_with_and_without_keyheap(argv, NULL, NULL);
    kht_cleanup();
}
END_TEST

START_TEST(test_sort_of_200k_lines)
{
    char *input = path_in("lines.txt");
    FILE *f = fopen(input, "w");
    ck_assert_ptr_nonnull(f);
    unsigned long x = 88172645463325252ul;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        fprintf(f, "%08lx,%lu,%.*s\n", x & 0xffffffff, x % 100000, (int)(x % 40),
                "the quick brown fox jumps over the lazy dog");
    }
    fclose(f);
    char *argv[] = {"sort", "-t,", "-k2,2n", "-k1,1", NULL};
    same_output_with_and_without_keyheap(argv, input, NULL);
    free(input);
    kht_cleanup();
}
END_TEST

START_TEST(test_sqlite3_builds_indexed_table_of_200k_rows)
{
    char *db = path_in("test.db");
    char *argv[] = {(char *)program("KEYHEAP_SQLITE3", "sqlite3"), db, NULL};
    same_output_with_and_without_keyheap(argv, srcfile("tests/programs/index.sql"), db);
    kht_cleanup();
}
END_TEST

START_TEST(test_cxx_standard_containers_across_threads)
{
    char *exe;
    ck_assert_int_gt(asprintf(&exe, "%s/tests/programs/containers", kht_env("KEYHEAP_BUILDDIR")),
                     0);
    char *argv[] = {exe, NULL};
    same_output_with_and_without_keyheap(argv, NULL, NULL);
    kht_cleanup();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("programs");
    TCase *tc = tcase_create("preload");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_python3_json_regex_threads_hashlib);
    tcase_add_test(tc, test_git_log_stat_on_a_repository);
    tcase_add_test(tc, test_sort_of_200k_lines);
    tcase_add_test(tc, test_sqlite3_builds_indexed_table_of_200k_rows);
    tcase_add_test(tc, test_cxx_standard_containers_across_threads);
    suite_add_tcase(s, tc);
    return kht_main(s);
}
