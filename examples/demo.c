/*
 * examples/demo.c - keyheap's demo: an ordinary program, not linked with
 * keyheap, run with LD_PRELOAD=libkeyheap.so.  It shows that every
 * allocation of the program now goes through keyheap, and what it did.
 *
 *   LD_PRELOAD=/usr/local/lib/libkeyheap.so ./demo
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *provider(const char *symbol)
{
    Dl_info info;
    void *p = dlsym(RTLD_DEFAULT, symbol);
    if (p == NULL || dladdr(p, &info) == 0)
        return "(not found)";
    return info.dli_fname;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct node {
    struct node *next;
    char *text;
};

/* Passes blocks from one thread to another, which frees them. */
#define HANDOFF 100000
static void *handoff[HANDOFF];

static void *consumer(void *arg)
{
    (void)arg;
    size_t bytes = 0;
    for (int i = 0; i < HANDOFF; i++) {
        bytes += malloc_usable_size(handoff[i]);
        free(handoff[i]);
    }
    return (void *)bytes;
}

int main(void)
{
    const char *self = provider("malloc");
    printf("malloc is provided by %s\n", self);
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "keyheap_version");
    int (*pku)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "keyheap_pku_supported");
    if (version == NULL || pku == NULL) {
        printf("keyheap is not loaded: run me with LD_PRELOAD=/path/to/libkeyheap.so\n");
        return 1;
    }
    printf("keyheap %s; protection keys on this machine: %s\n", version(),
           pku() ? "yes (domains are hardware-protected)" : "no (the CPU or kernel lacks PKU)");

    /* 1. A linked list of strings: many small allocations. */
    struct node *head = NULL;
    size_t bytes = 0;
    for (int i = 0; i < 100000; i++) {
        struct node *n = malloc(sizeof *n);
        if (n == NULL || asprintf(&n->text, "entry %d of the demo list", i) < 0)
            return 1;
        bytes += malloc_usable_size(n) + malloc_usable_size(n->text);
        n->next = head;
        head = n;
    }
    int count = 0;
    while (head != NULL) {
        struct node *next = head->next;
        free(head->text);
        free(head);
        head = next;
        count++;
    }
    printf("built and freed a list of %d strings (%zu bytes in use at its peak)\n", count, bytes);

    /* 2. realloc growth keeps the data. */
    size_t cap = 16;
    char *buf = malloc(cap), *grown;
    for (size_t len = 0; len < (16u << 20); len += 4096) {
        while (len + 4096 > cap) {
            grown = realloc(buf, cap * 2);
            if (grown == NULL)
                return 1;
            buf = grown, cap *= 2;
        }
        memset(buf + len, (int)(len / 4096) & 0x7f, 4096);
    }
    printf("grew one buffer by realloc to %zu MiB, contents intact: %s\n", cap >> 20,
           buf[5 * 4096] == 5 && buf[(16u << 20) - 1] == 4095 % 128 ? "yes" : "NO");
    free(buf);

    /* 3. Aligned allocations. */
    void *a = aligned_alloc(4096, 10000), *b;
    if (posix_memalign(&b, 1 << 20, 100) != 0)
        return 1;
    printf("aligned_alloc(4096) -> %p, posix_memalign(1 MiB) -> %p\n", a, b);
    free(a);
    free(b);

    /* 4. One thread allocates, another frees. */
    for (int i = 0; i < HANDOFF; i++)
        handoff[i] = malloc(16 + (size_t)(i * 37) % 4000);
    pthread_t t;
    void *freed;
    pthread_create(&t, NULL, consumer, NULL);
    pthread_join(t, &freed);
    printf("another thread freed %d blocks (%zu KiB) allocated here\n", HANDOFF,
           (size_t)(uintptr_t)freed >> 10);

    /* 5. The fast path. */
    enum { ROUNDS = 2000000 };
    void *volatile sink;
    double t0 = now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        sink = malloc(64);
        free(sink);
    }
    printf("malloc(64)+free: %.1f ns per pair\n", (now_ns() - t0) / ROUNDS);
    return 0;
}
