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
#include "tests/khtest.h"

__attribute__((visibility("default"))) keyheap_domain_t *khctor_domain;

__attribute__((constructor)) static void make_domain(void)
{
    const char *sync = getenv("KHCTOR_SYNC");
    if (sync == NULL)
        return;
    struct khctor_sync *k = (struct khctor_sync *)(uintptr_t)strtoull(sync, NULL, 16);
    k->ctor_running = 1;
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 5000 && !(k->creating && kht_task_sleeping(k->tid)); i++)
        nanosleep(&ms, NULL);
    khctor_domain = keyheap_domain_create("from-a-constructor", 0);
}
