/*
 * tests/check_coexist.c - a program that links Debian's libjemalloc keeps
 * working beside keyheap: linked with both (this test program itself, keyheap
 * first), and with keyheap preloaded into a program linked with libjemalloc
 * only (tests/programs/je_user).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "include/keyheap.h"
#include "tests/khtest.h"

static void *both_heaps(void *arg)
{
    size_t step = (size_t)arg;
    for (size_t n = 1; n < 200000; n += step) {
        char *a = mallocx(n, 0), *b = malloc(n);
        KHT_REQUIRE(a != NULL && b != NULL, "mallocx or malloc(%zu) failed", n);
        memset(a, 1, n);
        memset(b, 2, n);
        KHT_REQUIRE(malloc_usable_size(b) >= n, "malloc_usable_size of a %zu-byte block", n);
        dallocx(a, 0);
        free(b);
    }
    return NULL;
}

START_TEST(test_program_linking_keyheap_and_libjemalloc_uses_both)
{
    ck_assert_ptr_nonnull(strstr(kht_provider("malloc"), "libkeyheap.so"));
    ck_assert_ptr_nonnull(strstr(kht_provider("mallocx"), "libjemalloc.so"));
    const char *version = NULL;
    size_t len = sizeof version;
    ck_assert_int_eq(mallctl("version", &version, &len, NULL, 0), 0);
    ck_assert_int_eq(strncmp(version, "5.3", 3), 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, both_heaps, (void *)(size_t)(13 + i)), 0);
    both_heaps((void *)(size_t)11);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}
END_TEST

START_TEST(test_keyheap_preloaded_into_a_libjemalloc_program)
{
    char *exe, *out;
    ck_assert_int_gt(asprintf(&exe, "%s/tests/programs/je_user", kht_env("KEYHEAP_BUILDDIR")), 0);
    ck_assert_int_gt(asprintf(&out, "%s/je_user.out", kht_tmpdir()), 0);
    char *argv[] = {exe, NULL};
    int status = kht_run(argv, kht_env("KEYHEAP_LIB"), NULL, NULL, out, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "je_user failed: %#x", status);
    char *text = kht_slurp(out, NULL);
    ck_assert_msg(strstr(text, "ok\n") != NULL, "je_user printed:\n%s", text);
    ck_assert_msg(strstr(text, "malloc from ") != NULL &&
                      strstr(strstr(text, "malloc from "), "libkeyheap.so") != NULL,
                  "malloc did not come from keyheap:\n%s", text);
    ck_assert_msg(strstr(text, "mallocx from ") != NULL &&
                      strstr(strstr(text, "mallocx from "), "libjemalloc.so") != NULL,
                  "mallocx did not come from libjemalloc:\n%s", text);
    kht_cleanup();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("coexist");
    TCase *tc = tcase_create("libjemalloc");
    tcase_add_test(tc, test_program_linking_keyheap_and_libjemalloc_uses_both);
    tcase_add_test(tc, test_keyheap_preloaded_into_a_libjemalloc_program);
    suite_add_tcase(s, tc);
    return kht_main(s);
}
