/*
 * tests/programs/je_user.c - a program that links Debian's libjemalloc and
 * uses its own API (mallocx, mallctl) beside plain malloc.  check_coexist
 * runs it with libkeyheap.so preloaded.  Prints where malloc and mallocx
 * come from, then "ok".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <string.h>

static const char *object_of(const char *name)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, name);
    if (sym == NULL || dladdr(sym, &info) == 0)
        return "?";
    return info.dli_fname;
}

int main(void)
{
    const char *version = NULL;
    size_t len = sizeof version;
    if (mallctl("version", &version, &len, NULL, 0) != 0 || strncmp(version, "5.3", 3) != 0)
        return 1;
    for (int i = 1; i < 100000; i += 7) {
        char *a = mallocx((size_t)i, MALLOCX_ZERO);
        char *b = malloc((size_t)i);
        if (a == NULL || b == NULL || a[i - 1] != 0)
            return 2;
        memset(b, 1, (size_t)i);
        if (sallocx(a, 0) < (size_t)i)
            return 3;
        dallocx(a, 0);
        free(b);
    }
    printf("malloc from %s\nmallocx from %s\nok\n", object_of("malloc"), object_of("mallocx"));
    return 0;
}
