/*
 * tests/khctor.c - a library whose constructor creates a domain, loaded
 * with dlopen by tests/check_ctor.c: the constructor runs with the dynamic
 * loader's lock held.  KHCTOR_SYNC has the address of the test's struct
 * khctor_sync: the constructor says it runs, waits until the other thread
 * called keyheap_domain_create (the process's first) and sleeps in it,
 * then makes its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keyheap.h>

#include "tests/khctor.h"

__attribute__((visibility("default"))) keyheap_domain_t *khctor_domain;

static int sleeping(long tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')');
    return end != NULL && end[1] == ' ' && end[2] == 'S';
}

__attribute__((constructor)) static void make_domain(void)
{
    const char *sync = getenv("KHCTOR_SYNC");
    if (sync == NULL)
        return;
    struct khctor_sync *k = (struct khctor_sync *)(uintptr_t)strtoull(sync, NULL, 16);
    k->ctor_running = 1;
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 5000 && !(k->creating && sleeping(k->tid)); i++)
        nanosleep(&ms, NULL);
    khctor_domain = keyheap_domain_create("from-a-constructor", 0);
}
