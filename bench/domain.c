/*
 * bench/domain.c - the cost of domains, against references measured in the
 * same run.
 *
 *  (a) keyheap_enter + keyheap_leave, against a raw RDPKRU/WRPKRU/WRPKRU
 *      sequence doing the same, glibc's pkey_set pair and an mprotect pair.
 *      Needs a CPU with PKU: QEMU emulates WRPKRU some 100 times slower, so
 *      without PKU this part says so instead of printing a number.
 *  (b) malloc + free inside a domain (KEYHEAP_NOSCRUB), against Debian's
 *      jemalloc mallocx/dallocx on an explicit arena with an explicit thread
 *      cache, the fastest way jemalloc itself offers to keep a separate heap;
 *      and the same inside a domain that scrubs, to show what zeroing costs.
 *
 * The program links keyheap and Debian's libjemalloc both (keyheap first, so
 * malloc is keyheap's; mallocx and mallctl are libjemalloc's).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "include/keyheap.h"

#define REPS 9

static void *(*volatile v_malloc)(size_t) = malloc;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(long iters);

/* Median ns per iteration of each function, over REPS rounds in which the
 * functions take turns, so that machine noise hits all alike. */
static void measure(bench_fn *fns, int n, long iters, double *median)
{
    double t[8][REPS];
    for (int r = 0; r < REPS; r++)
        for (int i = 0; i < n; i++) {
            int k = (i + r) % n;
            double t0 = now_ns();
            fns[k](iters);
            t[k][r] = (now_ns() - t0) / (double)iters;
        }
    for (int i = 0; i < n; i++) {
        qsort(t[i], REPS, sizeof t[i][0], by_value);
        median[i] = t[i][REPS / 2];
    }
}

/* ------------------------------------------------------------ (a) */

static keyheap_domain_t *dom;
static int key;
static void *page;

static inline unsigned rdpkru(void)
{
    unsigned eax, edx;
    __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
    return eax;
}

static inline void wrpkru(unsigned v)
{
    __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(v), "c"(0), "d"(0) : "memory");
}

static void raw_pair(long iters)
{
    unsigned open_mask = ~(3u << (2 * key));
    for (long i = 0; i < iters; i++) {
        unsigned pkru = rdpkru();
        wrpkru(pkru & open_mask);
        wrpkru(pkru);
    }
}

static void keyheap_pair(long iters)
{
    for (long i = 0; i < iters; i++) {
        keyheap_enter(dom);
        keyheap_leave(dom);
    }
}

static void pkey_set_pair(long iters)
{
    for (long i = 0; i < iters; i++) {
        pkey_set(key, 0);
        pkey_set(key, PKEY_DISABLE_ACCESS);
    }
}

static void mprotect_pair(long iters)
{
    for (long i = 0; i < iters; i++) {
        mprotect(page, 4096, PROT_READ | PROT_WRITE);
        mprotect(page, 4096, PROT_NONE);
    }
}

static void bench_enter_leave(void)
{
    printf("## (a) enter + leave (one pair per iteration)\n\n");
    if (!keyheap_pku_supported()) {
        printf("Not measured: this CPU has no PKU (no `pku`/`ospke` in /proc/cpuinfo). "
               "QEMU's emulated WRPKRU is about 100 times slower than the real one, so a "
               "number from it would mean nothing.\n\n");
        return;
    }
    dom = keyheap_domain_create("bench-enter", 0);
    key = keyheap_domain_pkey(dom);
    page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bench_fn fns[] = {raw_pair, keyheap_pair, pkey_set_pair, mprotect_pair};
    const char *names[] = {"raw RDPKRU+WRPKRU+WRPKRU", "keyheap_enter+keyheap_leave",
                           "glibc pkey_set pair", "mprotect pair (4 KiB)"};
    double med[4];
    measure(fns, 2, 2000000, med);
    measure(fns + 2, 1, 2000000, med + 2);
    measure(fns + 3, 1, 20000, med + 3);
    printf("| operation | ns per pair | ratio to raw |\n|---|---:|---:|\n");
    for (int i = 0; i < 4; i++)
        printf("| %s | %.1f | %.2f |\n", names[i], med[i], med[i] / med[0]);
    printf("\nGoal: keyheap <= 1.10 x raw: %s\n\n", med[1] <= 1.10 * med[0] ? "met" : "MISSED");
    keyheap_domain_destroy(dom);
}

/* ------------------------------------------------------------ (b) */

static keyheap_domain_t *noscrub, *scrub;
static int je_flags;

#define BATCH 64
static const size_t sizes[BATCH] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512,
    24, 40, 56, 64, 64, 64, 64, 72, 88, 104, 120, 136, 152, 168, 184, 200,
    640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 16, 16, 32, 32,
    8, 8, 8, 16, 24, 32, 40, 48, 56, 64, 96, 128, 192, 256, 384, 512};

/* Allocate a batch, then free it: each iteration is one malloc + free. */
static void domain_batch(keyheap_domain_t *d, long iters)
{
    void *p[BATCH];
    keyheap_enter(d);
    for (long i = 0; i < iters; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            p[k] = v_malloc(sizes[k]);
        for (int k = 0; k < BATCH; k++)
            free(p[k]);
    }
    keyheap_leave(d);
}

static void in_domain_noscrub(long iters)
{
    domain_batch(noscrub, iters);
}

static void in_domain_scrub(long iters)
{
    domain_batch(scrub, iters);
}

static void je_explicit(long iters)
{
    void *p[BATCH];
    for (long i = 0; i < iters; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            p[k] = mallocx(sizes[k], je_flags);
        for (int k = 0; k < BATCH; k++)
            dallocx(p[k], je_flags);
    }
}

static void bench_domain_malloc(void)
{
    printf("## (b) malloc + free inside a domain (mixed sizes 8 B - 4 KiB)\n\n");
    printf("keyheap's misuse detection (the block map) is on, as always.\n\n");
    if (!keyheap_pku_supported())
        printf("This CPU has no PKU: measured with KEYHEAP_CONF=unprotected:true (domains "
               "are separate heaps without keys; the allocation path is the same).\n\n");
    noscrub = keyheap_domain_create("bench-noscrub", KEYHEAP_NOSCRUB);
    scrub = keyheap_domain_create("bench-scrub", 0);
    unsigned arena, tcache;
    size_t sz = sizeof arena;
    if (noscrub == NULL || scrub == NULL || mallctl("arenas.create", &arena, &sz, NULL, 0) != 0 ||
        mallctl("tcache.create", &tcache, &sz, NULL, 0) != 0) {
        printf("setup failed: %s\n", strerror(errno));
        exit(1);
    }
    je_flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tcache);
    bench_fn fns[] = {je_explicit, in_domain_noscrub, in_domain_scrub};
    double med[3];
    measure(fns, 3, 64 * 40000, med);
    printf("| allocator | ns per malloc+free | ratio to jemalloc |\n|---|---:|---:|\n");
    printf("| Debian jemalloc mallocx/dallocx, explicit arena + tcache | %.1f | 1.00 |\n", med[0]);
    printf("| keyheap domain, KEYHEAP_NOSCRUB | %.1f | %.2f |\n", med[1], med[1] / med[0]);
    printf("| keyheap domain, scrubbing (default) | %.1f | %.2f |\n", med[2], med[2] / med[0]);
    printf("\nGoal: NOSCRUB <= 1.15 x jemalloc: %s; scrubbing adds %.1f ns per free.\n\n",
           med[1] <= 1.15 * med[0] ? "met" : "MISSED", med[2] - med[1]);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (getenv("KEYHEAP_BENCH_PART_B") != NULL) {
        bench_domain_malloc();
        return 0;
    }
    printf("# keyheap domain benchmark (medians of %d rounds)\n\n", REPS);
    bench_enter_leave();
    fflush(stdout);
    /* Part (b) runs in a fresh image: KEYHEAP_CONF is read once, and without
     * PKU it must ask for unprotected domains before keyheap reads it. */
    setenv("KEYHEAP_BENCH_PART_B", "1", 1);
    if (!keyheap_pku_supported())
        setenv("KEYHEAP_CONF", "unprotected:true", 1);
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe");
    return 1;
}
