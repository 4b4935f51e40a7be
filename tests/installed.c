/*
 * tests/installed.c - built by make installcheck against the installed
 * library with $(pkg-config --cflags --libs keyheap): proves the header,
 * the library and keyheap.pc work together.  Prints the object that
 * provides malloc and exits 0 only when that is libkeyheap.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <keyheap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    Dl_info info;
    void *volatile p = malloc(100);
    if (p == NULL || dladdr(dlsym(RTLD_DEFAULT, "malloc"), &info) == 0)
        return 1;
    printf("keyheap %s, malloc from %s, pku %d\n", keyheap_version(), info.dli_fname,
           keyheap_pku_supported());
    free(p);
    return strstr(info.dli_fname, "libkeyheap.so") != NULL ? 0 : 1;
}
