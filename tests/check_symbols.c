/*
 * tests/check_symbols.c - what libkeyheap.so exports and links.
 *
 * KEYHEAP_LIB names the library to inspect: the build tree's during
 * make check, the installed one during make installcheck.
 * KEYHEAP_EXPORTED_SYMBOLS names the approved list (default: the source
 * tree's tests/exported-symbols.txt; a build configured with
 * --disable-malloc-replacement approves tests/exported-symbols-noreplace.txt,
 * the same list without the malloc family and the C++ operators).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "include/keyheap.h"
#include "tests/khtest.h"

#define MAX_SYMS 512

struct symlist {
    char *names[MAX_SYMS];
    size_t n;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parses "nm -D --defined-only" output: "<addr> <type> <name>" lines. */
static void exported(struct symlist *out)
{
    const char *dir = kht_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/nm.out", dir);
    char *argv[] = {(char *)kht_env("KEYHEAP_NM"), "-D", "--defined-only",
                    (char *)kht_env("KEYHEAP_LIB"), NULL};
    int status = kht_run(argv, NULL, NULL, NULL, path, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nm failed on %s", argv[3]);
    char *text = kht_slurp(path, NULL);
    out->n = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char addr[64], type[8], name[512];
        if (sscanf(line, "%63s %7s %511s", addr, type, name) == 3) {
            ck_assert_uint_lt(out->n, MAX_SYMS);
            out->names[out->n++] = strdup(name);
        }
    }
    free(text);
    qsort(out->names, out->n, sizeof out->names[0], by_name);
}

static void approved(struct symlist *out)
{
    char path[4096];
    const char *list = getenv("KEYHEAP_EXPORTED_SYMBOLS");
    if (list != NULL && list[0] != '\0')
        snprintf(path, sizeof path, "%s", list);
    else
        snprintf(path, sizeof path, "%s/tests/exported-symbols.txt", kht_env("KEYHEAP_SRCDIR"));
    char *text = kht_slurp(path, NULL);
    out->n = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (line[0] != '\0' && line[0] != '#')
            out->names[out->n++] = strdup(line);
    free(text);
    qsort(out->names, out->n, sizeof out->names[0], by_name);
}

static void drop(struct symlist *l)
{
    while (l->n > 0)
        free(l->names[--l->n]);
}

static int contains(const struct symlist *l, const char *name)
{
    return bsearch(&name, l->names, l->n, sizeof l->names[0], by_name) != NULL;
}

START_TEST(test_exported_symbols_are_exactly_the_approved_list)
{
    struct symlist have, want;
    exported(&have);
    approved(&want);
    /* The keyheap_* API alone is 19 symbols. */
    ck_assert_uint_gt(want.n, 18);
    int bad = 0;
    for (size_t i = 0; i < have.n; i++)
        if (!contains(&want, have.names[i])) {
            fprintf(stderr, "exported but not approved: %s\n", have.names[i]);
            bad++;
        }
    for (size_t i = 0; i < want.n; i++)
        if (!contains(&have, want.names[i])) {
            fprintf(stderr, "approved but not exported: %s\n", want.names[i]);
            bad++;
        }
    ck_assert_msg(bad == 0, "%d symbols differ from the approved list", bad);
    drop(&have);
    drop(&want);
    kht_cleanup();
}
END_TEST

START_TEST(test_no_jemalloc_symbol_is_exported)
{
    static const char *const jemalloc_only[] = {
        "mallocx", "rallocx", "xallocx", "sallocx", "dallocx", "sdallocx", "nallocx",
        "mallctl", "mallctlnametomib", "mallctlbymib", "malloc_stats_print",
        "malloc_conf", "malloc_message",
    };
    struct symlist have;
    exported(&have);
    ck_assert_uint_gt(have.n, 0);
    for (size_t i = 0; i < have.n; i++) {
        ck_assert_msg(strncmp(have.names[i], "je_", 3) != 0, "%s is exported", have.names[i]);
        ck_assert_msg(strstr(have.names[i], "kh_je_") == NULL, "%s is exported", have.names[i]);
    }
    for (size_t i = 0; i < sizeof jemalloc_only / sizeof jemalloc_only[0]; i++)
        ck_assert_msg(!contains(&have, jemalloc_only[i]), "%s is exported", jemalloc_only[i]);
    drop(&have);
    kht_cleanup();
}
END_TEST

START_TEST(test_library_does_not_load_libjemalloc)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ldd.out", kht_tmpdir());
    char *argv[] = {"ldd", (char *)kht_env("KEYHEAP_LIB"), NULL};
    int status = kht_run(argv, NULL, NULL, NULL, path, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ldd failed");
    char *text = kht_slurp(path, NULL);
    /* The twin of the assertion below: ldd did list the libraries. */
    ck_assert_ptr_nonnull(strstr(text, "libc.so.6"));
    ck_assert_msg(strstr(text, "jemalloc") == NULL, "ldd lists jemalloc:\n%s", text);
    free(text);
    kht_cleanup();
}
END_TEST

/* The soname is the ABI's version: programs compile keyheap_enter and
 * keyheap_leave (keyheap.h's inline protocol) in, so a change to it is a new
 * soname (0.2.0's key cache made it libkeyheap.so.1).  Change this with
 * KH_LT_VERSION in configure.ac, debian/libkeyheapN.* and tools/check-deb. */
START_TEST(test_soname_is_libkeyheap_so_1)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/objdump.out", kht_tmpdir());
    char *argv[] = {"objdump", "-p", (char *)kht_env("KEYHEAP_LIB"), NULL};
    int status = kht_run(argv, NULL, NULL, NULL, path, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "objdump -p failed on %s", argv[2]);
    char *text = kht_slurp(path, NULL);
    char soname[256] = "";
    const char *line = strstr(text, "  SONAME ");
    ck_assert_msg(line != NULL, "objdump -p shows no SONAME:\n%s", text);
    ck_assert_int_eq(sscanf(line, " SONAME %255s", soname), 1);
    ck_assert_str_eq(soname, "libkeyheap.so.1");
    free(text);
    kht_cleanup();
}
END_TEST

/* keyheap.h's KEYHEAP_VERSION_* macros are configure.ac's version (the one
 * keyheap_version(), keyheap.pc and the man pages give). */
START_TEST(test_header_version_macros_are_the_package_version)
{
    char v[64];
    snprintf(v, sizeof v, "%d.%d.%d", KEYHEAP_VERSION_MAJOR, KEYHEAP_VERSION_MINOR,
             KEYHEAP_VERSION_PATCH);
    ck_assert_str_eq(v, PACKAGE_VERSION);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("symbols");
    TCase *tc = tcase_create("exports");
    tcase_add_test(tc, test_exported_symbols_are_exactly_the_approved_list);
    tcase_add_test(tc, test_no_jemalloc_symbol_is_exported);
    tcase_add_test(tc, test_library_does_not_load_libjemalloc);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("version");
    tcase_add_test(tv, test_soname_is_libkeyheap_so_1);
    tcase_add_test(tv, test_header_version_macros_are_the_package_version);
    suite_add_tcase(s, tv);
    return kht_main(s);
}
