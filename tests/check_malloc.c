/*
 * tests/check_malloc.c - the exported malloc family: sizes, alignments,
 * errno, realloc, threads, fork.  Linked with -lkeyheap, so every call below
 * lands in keyheap (test_malloc_resolves_to_keyheap proves it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/keyheap.h"
#include "tests/khtest.h"

#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)

/* Calls through these volatile pointers keep the compiler from folding
 * allocations it can see through (GCC removes a malloc whose result is only
 * compared with NULL). */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;

static int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static size_t next_pow2(size_t x)
{
    size_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* The alignment every malloc result must have: that of any object that fits. */
static size_t natural_align(size_t size)
{
    size_t a = 16;
    while (a > 1 && a > size)
        a >>= 1;
    return a;
}

START_TEST(test_malloc_resolves_to_keyheap)
{
    const char *lib = kht_object_of((void *)keyheap_version);
    ck_assert_ptr_nonnull(strstr(lib, "libkeyheap.so"));
    static const char *const names[] = {
        "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *from = kht_provider(names[i]);
        ck_assert_msg(strcmp(from, lib) == 0, "%s comes from %s, not %s", names[i], from, lib);
    }
}
END_TEST

static size_t test_sizes[256];
static size_t n_test_sizes;

static void collect_sizes(void)
{
    n_test_sizes = 0;
    for (size_t s = 0; s <= 64; s++)
        test_sizes[n_test_sizes++] = s;
    for (size_t p = 128; p <= 64 * MiB; p <<= 1) {
        test_sizes[n_test_sizes++] = p - 1;
        test_sizes[n_test_sizes++] = p;
        if (p < 64 * MiB)
            test_sizes[n_test_sizes++] = p + 1;
        if (p < 64 * MiB)
            test_sizes[n_test_sizes++] = p + p / 2;
    }
}

/* Fills a block with a pattern derived from its address and its index. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31u + i * 7u);
}

static int check_fill(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31u + i * 7u))
            return 0;
    return 1;
}

START_TEST(test_sizes_0_to_64mib_are_usable_aligned_and_disjoint)
{
    collect_sizes();
    unsigned char *blocks[256];
    size_t usable[256];
    for (size_t i = 0; i < n_test_sizes; i++) {
        size_t n = test_sizes[i];
        blocks[i] = v_malloc(n);
        ck_assert_msg(blocks[i] != NULL, "malloc(%zu) failed", n);
        usable[i] = malloc_usable_size(blocks[i]);
        ck_assert_msg(usable[i] >= n, "malloc_usable_size %zu < %zu", usable[i], n);
        ck_assert_msg((uintptr_t)blocks[i] % natural_align(n) == 0,
                      "malloc(%zu) = %p is not %zu-aligned", n, (void *)blocks[i],
                      natural_align(n));
        /* The whole usable size is the caller's to write. */
        fill(blocks[i], usable[i], (unsigned)i);
    }
    /* All blocks live at once: no write above reached another block. */
    for (size_t i = 0; i < n_test_sizes; i++) {
        ck_assert_msg(check_fill(blocks[i], usable[i], (unsigned)i),
                      "block of %zu bytes was overwritten", test_sizes[i]);
        free(blocks[i]);
    }
}
END_TEST

START_TEST(test_malloc_zero_returns_unique_freeable_pointers)
{
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = v_malloc(0);
        ck_assert_ptr_nonnull(p[i]);
        for (int j = 0; j < i; j++)
            ck_assert_ptr_ne(p[i], p[j]);
    }
    for (int i = 0; i < 64; i++)
        free(p[i]);
}
END_TEST

START_TEST(test_free_null_is_harmless)
{
    free(NULL);
    ck_assert_uint_eq(malloc_usable_size(NULL), 0);
}
END_TEST

START_TEST(test_calloc_returns_zeroed_memory_even_when_reused)
{
    collect_sizes();
    for (size_t i = 0; i < n_test_sizes; i++) {
        size_t n = test_sizes[i];
        unsigned char *dirty = v_malloc(n);
        ck_assert_ptr_nonnull(dirty);
        memset(dirty, 0xa5, n);
        free(dirty);
        unsigned char *z = v_calloc(1, n);
        ck_assert_msg(z != NULL, "calloc(1, %zu) failed", n);
        size_t k = 0;
        while (k < n && z[k] == 0)
            k++;
        ck_assert_msg(k == n, "calloc(1, %zu)[%zu] = %#x", n, k, k < n ? z[k] : 0);
        free(z);
    }
}
END_TEST

START_TEST(test_calloc_overflow_gives_null_and_enomem)
{
    errno = 0;
    ck_assert_ptr_null(v_calloc(SIZE_MAX / 2 + 1, 2));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(v_calloc(SIZE_MAX, SIZE_MAX));
    ck_assert_int_eq(errno, ENOMEM);
    /* The twin: the largest product that does not overflow is accepted as a
     * request (and then fails for want of memory, not for overflow). */
    void *p = v_calloc(4096, 4096);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(test_reallocarray_overflow_gives_enomem_and_keeps_block)
{
    unsigned char *p = v_malloc(100);
    ck_assert_ptr_nonnull(p);
    fill(p, 100, 9);
    errno = 0;
    volatile size_t too_many = SIZE_MAX / 8; /* hidden from GCC's size warning */
    ck_assert_ptr_null(reallocarray(p, too_many, 16));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert(check_fill(p, 100, 9));
    unsigned char *q = reallocarray(p, 1000, 8);
    ck_assert_ptr_nonnull(q);
    ck_assert(check_fill(q, 100, 9));
    ck_assert_uint_ge(malloc_usable_size(q), 8000);
    free(q);
}
END_TEST

START_TEST(test_huge_requests_give_null_and_enomem)
{
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1,
                                  (size_t)1 << 62};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        ck_assert_ptr_null(v_malloc(huge[i]));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(v_aligned_alloc(64, huge[i]));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(memalign(4096, huge[i]));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(valloc(huge[i]));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(pvalloc(huge[i]));
        ck_assert_int_eq(errno, ENOMEM);

        void *sentinel = (void *)0x1234, *p = sentinel;
        errno = 12345;
        ck_assert_int_eq(posix_memalign(&p, 64, huge[i]), ENOMEM);
        ck_assert_int_eq(errno, 12345);
        ck_assert_ptr_eq(p, sentinel);

        unsigned char *keep = v_malloc(64);
        fill(keep, 64, 3);
        errno = 0;
        ck_assert_ptr_null(v_realloc(keep, huge[i]));
        ck_assert_int_eq(errno, ENOMEM);
        ck_assert(check_fill(keep, 64, 3));
        free(keep);
    }
}
END_TEST

START_TEST(test_realloc_keeps_data_across_size_classes)
{
    size_t size = 1;
    unsigned char *p = v_malloc(size);
    ck_assert_ptr_nonnull(p);
    fill(p, size, 5);
    /* Grow through every kind of size class up to 64 MiB, then shrink. */
    while (size < 64 * MiB) {
        size_t next = size + size / 2 + 1;
        if (next > 64 * MiB)
            next = 64 * MiB;
        p = v_realloc(p, next);
        ck_assert_msg(p != NULL, "realloc to %zu failed", next);
        ck_assert_msg(check_fill(p, size, 5), "data lost growing %zu -> %zu", size, next);
        fill(p, next, 5);
        size = next;
    }
    while (size > 1) {
        size_t next = size / 3 + 1;
        p = v_realloc(p, next);
        ck_assert_msg(p != NULL, "realloc to %zu failed", next);
        ck_assert_msg(check_fill(p, next, 5), "data lost shrinking %zu -> %zu", size, next);
        size = next == size ? 1 : next;
    }
    free(p);
}
END_TEST

START_TEST(test_realloc_null_is_malloc)
{
    void *p = v_realloc(NULL, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(malloc_usable_size(p), 100);
    free(p);
    p = v_realloc(NULL, 0);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(test_realloc_to_zero_frees_and_returns_null_errno_untouched)
{
    /* Freed blocks are reused: a block freed by realloc(p, 0) comes back
     * from the next malloc of its size class in this thread's cache. */
    void *p = v_malloc(48);
    ck_assert_ptr_nonnull(p);
    errno = 4321;
    ck_assert_ptr_null(v_realloc(p, 0));
    ck_assert_int_eq(errno, 4321);
    void *q = v_malloc(48);
    ck_assert_ptr_eq(q, p);
    free(q);
}
END_TEST

START_TEST(test_posix_memalign_every_alignment_1_to_1mib)
{
    for (size_t a = 1; a <= MiB; a++) {
        int valid = is_pow2(a) && a >= sizeof(void *);
        void *sentinel = (void *)0x5678, *p = sentinel;
        errno = 777;
        int rc = posix_memalign(&p, a, 24);
        KHT_REQUIRE(errno == 777, "posix_memalign(%zu) set errno to %d", a, errno);
        if (!valid) {
            KHT_REQUIRE(rc == EINVAL, "posix_memalign(%zu) returned %d, not EINVAL", a, rc);
            KHT_REQUIRE(p == sentinel, "posix_memalign(%zu) changed the pointer", a);
            continue;
        }
        KHT_REQUIRE(rc == 0, "posix_memalign(%zu) returned %d", a, rc);
        KHT_REQUIRE((uintptr_t)p % a == 0, "posix_memalign(%zu) = %p", a, p);
        KHT_REQUIRE(malloc_usable_size(p) >= 24, "posix_memalign(%zu): usable size", a);
        memset(p, 0x5a, 24);
        free(p);
    }
    void *p = (void *)0x5678;
    ck_assert_int_eq(posix_memalign(&p, 0, 24), EINVAL);
    ck_assert_int_eq(posix_memalign(&p, SIZE_MAX / 2 + 1, 24), ENOMEM);
}
END_TEST

START_TEST(test_aligned_alloc_every_alignment_1_to_1mib)
{
    for (size_t a = 1; a <= MiB; a++) {
        errno = 0;
        void *p = v_aligned_alloc(a, 3 * a);
        if (!is_pow2(a)) {
            KHT_REQUIRE(p == NULL && errno == EINVAL,
                        "aligned_alloc(%zu) gave %p errno %d, not NULL/EINVAL", a, p, errno);
            continue;
        }
        KHT_REQUIRE(p != NULL, "aligned_alloc(%zu) failed", a);
        KHT_REQUIRE((uintptr_t)p % a == 0, "aligned_alloc(%zu) = %p", a, p);
        KHT_REQUIRE(malloc_usable_size(p) >= 3 * a, "aligned_alloc(%zu): usable size", a);
        memset(p, 0x33, 3 * a);
        free(p);
    }
    errno = 0;
    ck_assert_ptr_null(v_aligned_alloc(0, 16));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_memalign_every_alignment_rounds_up_like_glibc)
{
    for (size_t a = 1; a <= MiB; a++) {
        void *p = memalign(a, 40);
        KHT_REQUIRE(p != NULL, "memalign(%zu) failed", a);
        size_t want = a <= 16 ? 16 : next_pow2(a);
        KHT_REQUIRE((uintptr_t)p % want == 0, "memalign(%zu) = %p, not %zu-aligned", a, p,
                    want);
        KHT_REQUIRE(malloc_usable_size(p) >= 40, "memalign(%zu): usable size", a);
        free(p);
    }
    errno = 0;
    ck_assert_ptr_null(memalign(SIZE_MAX / 2 + 2, 16));
    ck_assert_int_eq(errno, EINVAL);
    void *p = memalign(0, 16);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(test_valloc_and_pvalloc_are_page_aligned)
{
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 3 * MiB + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *v = valloc(sizes[i]);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq((uintptr_t)v % PAGE, 0);
        ck_assert_uint_ge(malloc_usable_size(v), sizes[i]);
        void *pv = pvalloc(sizes[i]);
        ck_assert_ptr_nonnull(pv);
        ck_assert_uint_eq((uintptr_t)pv % PAGE, 0);
        size_t whole = sizes[i] == 0 ? PAGE : (sizes[i] + PAGE - 1) / PAGE * PAGE;
        ck_assert_uint_ge(malloc_usable_size(pv), whole);
        memset(pv, 1, whole);
        free(v);
        free(pv);
    }
}
END_TEST

/* ----------------------------------------------------------- threads */

#define QUEUE_CAP 1024
#define PER_PRODUCER 200000

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned char *items[QUEUE_CAP];
    size_t sizes[QUEUE_CAP];
    size_t head, count;
    int producers_left;
    size_t consumed_ok;
};

static struct queue q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void *producer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 2 + (seed >> 8) % ((seed & 15) == 0 ? 65536 : 512);
        unsigned char *b = v_malloc(n);
        KHT_REQUIRE(b != NULL, "malloc(%zu) failed", n);
        b[0] = (unsigned char)n;
        b[n - 1] = (unsigned char)(n >> 3);
        pthread_mutex_lock(&q.lock);
        while (q.count == QUEUE_CAP)
            pthread_cond_wait(&q.cond, &q.lock);
        size_t slot = (q.head + q.count) % QUEUE_CAP;
        q.items[slot] = b;
        q.sizes[slot] = n;
        q.count++;
        pthread_cond_broadcast(&q.cond);
        pthread_mutex_unlock(&q.lock);
    }
    pthread_mutex_lock(&q.lock);
    q.producers_left--;
    pthread_cond_broadcast(&q.cond);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q.lock);
        while (q.count == 0 && q.producers_left > 0)
            pthread_cond_wait(&q.cond, &q.lock);
        if (q.count == 0) {
            pthread_mutex_unlock(&q.lock);
            return NULL;
        }
        unsigned char *b = q.items[q.head];
        size_t n = q.sizes[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        pthread_cond_broadcast(&q.cond);
        int ok = b[0] == (unsigned char)n && b[n - 1] == (unsigned char)(n >> 3) &&
                 malloc_usable_size(b) >= n;
        if (ok)
            q.consumed_ok++;
        pthread_mutex_unlock(&q.lock);
        free(b);
    }
}

START_TEST(test_threads_free_each_others_blocks)
{
    pthread_t prod[2], cons[2];
    q.producers_left = 2;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pthread_create(&prod[i], NULL, producer, (void *)(uintptr_t)(i + 1)), 0);
        ck_assert_int_eq(pthread_create(&cons[i], NULL, consumer, NULL), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(prod[i], NULL);
        pthread_join(cons[i], NULL);
    }
    ck_assert_uint_eq(q.consumed_ok, 2 * PER_PRODUCER);
}
END_TEST

static volatile int churn_stop;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *live[64] = {0};
    while (!churn_stop) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % 64;
        free(live[k]);
        live[k] = v_malloc(1 + (seed >> 4) % 20000);
    }
    for (int k = 0; k < 64; k++)
        free(live[k]);
    return NULL;
}

START_TEST(test_fork_while_threads_busy_in_malloc_leaves_child_that_can_malloc)
{
    pthread_t t[3];
    churn_stop = 0;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 7)), 0);
    for (int round = 0; round < 50; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            /* A child that inherited a held allocator lock would hang here;
             * the alarm turns that into a failure instead of a stuck test. */
            alarm(20);
            for (size_t n = 1; n <= 8 * MiB; n *= 3) {
                unsigned char *p = v_malloc(n);
                if (p == NULL)
                    _exit(2);
                memset(p, 7, n);
                free(p);
            }
            pthread_t t2;
            if (pthread_create(&t2, NULL, churn, (void *)1) != 0)
                _exit(3);
            usleep(1000);
            churn_stop = 1;
            pthread_join(t2, NULL);
            _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "fork child %d failed: status %#x (signal %d)", round, status,
                      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    churn_stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
}
END_TEST

#define THREAD_BYTES (512 * 1024)

static void *short_lived(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *blocks[256];
    size_t total = 0;
    int n = 0;
    while (total < THREAD_BYTES && n < 256) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 16 + (seed >> 8) % 8192;
        blocks[n] = v_malloc(size);
        KHT_REQUIRE(blocks[n] != NULL, "malloc(%zu) failed", size);
        memset(blocks[n], 1, size);
        total += size;
        n++;
    }
    for (int i = 0; i < n; i++)
        free(blocks[i]);
    return NULL;
}

static void run_threads(int count, int batch)
{
    for (int done = 0; done < count; done += batch) {
        pthread_t t[64];
        for (int i = 0; i < batch; i++)
            ck_assert_int_eq(
                pthread_create(&t[i], NULL, short_lived, (void *)(uintptr_t)(done + i)), 0);
        for (int i = 0; i < batch; i++)
            pthread_join(t[i], NULL);
    }
}

START_TEST(test_thousand_threads_leave_memory_bounded)
{
    /* 1000 threads each allocate and touch 512 KiB, then exit; the memory
     * they leave behind (thread caches, arenas) must not add up: growth from
     * after the first 100 to after all 1000 stays far below the 450 MiB the
     * last 900 touched. */
    run_threads(100, 20);
    size_t warm = kht_rss();
    run_threads(900, 20);
    size_t after = kht_rss();
    size_t growth = after > warm ? after - warm : 0;
    ck_assert_msg(growth < 48 * MiB, "RSS grew by %zu MiB over 900 threads (%zu -> %zu MiB)",
                  growth / MiB, warm / MiB, after / MiB);
}
END_TEST

/* ------------------------------------------ C23's sized deallocation */

/* C23's, which glibc 2.36's <stdlib.h> does not declare; keyheap exports
 * them (include/keyheap.h, the malloc family). */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

static void (*volatile v_free_sized)(void *, size_t) = free_sized;
static void (*volatile v_free_aligned_sized)(void *, size_t, size_t) = free_aligned_sized;

START_TEST(test_free_sized_and_free_aligned_sized_resolve_to_keyheap)
{
    const char *lib = kht_object_of((void *)keyheap_version);
    static const char *const names[] = {"free_sized", "free_aligned_sized"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *from = kht_provider(names[i]);
        ck_assert_msg(strcmp(from, lib) == 0, "%s comes from %s, not %s", names[i], from, lib);
    }
}
END_TEST

START_TEST(test_free_sized_of_null_does_nothing)
{
    /* C23: a null pointer does nothing, whatever the size and alignment. */
    v_free_sized(NULL, 0);
    v_free_sized(NULL, 100);
    v_free_sized(NULL, SIZE_MAX);
    v_free_aligned_sized(NULL, 64, 0);
    v_free_aligned_sized(NULL, 3, 5);
    v_free_aligned_sized(NULL, 0, SIZE_MAX);
    /* The heap works on. */
    void *p = v_malloc(100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(malloc_usable_size(p), 100);
    v_free_sized(p, 100);
}
END_TEST

/* Every size from 0 to 64 MiB, from malloc, calloc (n * m), realloc
 * growing and realloc shrinking, freed with its requested size; each block
 * is fully usable before, and the heap hands out sound blocks after. */
START_TEST(test_free_sized_frees_malloc_calloc_and_realloc_blocks_of_every_size)
{
    collect_sizes();
    for (size_t i = 0; i < n_test_sizes; i++) {
        size_t n = test_sizes[i];
        unsigned char *p = v_malloc(n);
        ck_assert_msg(p != NULL, "malloc(%zu) failed", n);
        size_t usable = malloc_usable_size(p);
        ck_assert_uint_ge(usable, n);
        fill(p, usable, (unsigned)i);
        v_free_sized(p, n);

        /* calloc(3, k): the requested size is 3 * k. */
        size_t k = n / 3 + 1;
        unsigned char *z = v_calloc(3, k);
        ck_assert_msg(z != NULL, "calloc(3, %zu) failed", k);
        ck_assert_uint_ge(malloc_usable_size(z), 3 * k);
        ck_assert_uint_eq(z[3 * k - 1], 0);
        v_free_sized(z, 3 * k);

        /* realloc to n (n > 0: realloc(p, 0) frees), from smaller and from
         * bigger; the size C23 wants is realloc's. */
        if (n == 0)
            continue;
        unsigned char *g = v_malloc(n / 2 + 1);
        ck_assert_ptr_nonnull(g);
        g = v_realloc(g, n);
        ck_assert_msg(g != NULL, "realloc to %zu failed", n);
        ck_assert_uint_ge(malloc_usable_size(g), n);
        g[n - 1] = 1;
        v_free_sized(g, n);
        unsigned char *s = v_malloc(n + 5000);
        ck_assert_ptr_nonnull(s);
        s = v_realloc(s, n);
        ck_assert_msg(s != NULL, "realloc down to %zu failed", n);
        ck_assert_uint_ge(malloc_usable_size(s), n);
        s[n - 1] = 2;
        v_free_sized(s, n);

        /* What comes next is a sound block of its own. */
        unsigned char *after = v_malloc(n);
        ck_assert_ptr_nonnull(after);
        usable = malloc_usable_size(after);
        ck_assert_uint_ge(usable, n);
        fill(after, usable, (unsigned)i + 1);
        ck_assert(check_fill(after, usable, (unsigned)i + 1));
        v_free_sized(after, n);
    }
}
END_TEST

START_TEST(test_free_aligned_sized_frees_aligned_alloc_blocks_of_every_alignment)
{
    for (size_t a = 1; a <= MiB; a <<= 1) {
        static const size_t mult[] = {0, 1, 3};
        for (size_t m = 0; m < sizeof mult / sizeof mult[0]; m++) {
            size_t n = mult[m] * a + m; /* 0, a + 1, 3a + 2 */
            unsigned char *p = v_aligned_alloc(a, n);
            ck_assert_msg(p != NULL, "aligned_alloc(%zu, %zu) failed", a, n);
            ck_assert_uint_eq((uintptr_t)p % a, 0);
            ck_assert_uint_ge(malloc_usable_size(p), n);
            memset(p, 0x5a, n);
            v_free_aligned_sized(p, a, n);
        }
    }
}
END_TEST

/* The size does not reach jemalloc on the default heap (alloc/malloc.c:
 * sdallocx would file a block under the class of the size it is told).
 * With a wrong one (undefined in C23, documented as plain free by keyheap)
 * a 16-byte block freed as 8192 bytes must not come back as an 8192-byte
 * block over its neighbours: every block keeps its own bytes. */
START_TEST(test_free_sized_with_wrong_size_on_default_heap_is_plain_free)
{
    enum { SMALL = 256, BIG = 64 };
    unsigned char *small[SMALL], *big[BIG];
    for (int i = 0; i < SMALL; i++) {
        small[i] = v_malloc(16);
        ck_assert_ptr_nonnull(small[i]);
        memset(small[i], i & 0xff, 16);
    }
    for (int i = 0; i < SMALL; i += 2)
        v_free_sized(small[i], 8192);
    unsigned char *aligned = v_aligned_alloc(64, 64);
    ck_assert_ptr_nonnull(aligned);
    v_free_aligned_sized(aligned, 4096, 8192);
    for (int i = 0; i < BIG; i++) {
        big[i] = v_malloc(8192);
        ck_assert_ptr_nonnull(big[i]);
        ck_assert_uint_ge(malloc_usable_size(big[i]), 8192);
        memset(big[i], 0xc3, 8192);
    }
    for (int i = 1; i < SMALL; i += 2)
        for (int k = 0; k < 16; k++)
            ck_assert_msg(small[i][k] == (i & 0xff), "live block %d lost byte %d", i, k);
    for (int i = 0; i < BIG; i++) {
        for (int k = 0; k < 8192; k++)
            KHT_REQUIRE(big[i][k] == 0xc3, "block %d of 8192 lost byte %d", i, k);
        v_free_sized(big[i], 8192);
    }
    for (int i = 1; i < SMALL; i += 2) {
        ck_assert_uint_ge(malloc_usable_size(small[i]), 16);
        v_free_sized(small[i], 16);
    }
}
END_TEST

/* Blocks freed with free_sized and free_aligned_sized are given back: 64
 * rounds of 8 MiB (every page touched) and 200000 of 1 KiB would leave 512
 * MiB and 200 MiB resident if they were not. */
START_TEST(test_free_sized_gives_memory_back)
{
    size_t before = kht_rss();
    for (int round = 0; round < 64; round++) {
        size_t n = 8 * MiB;
        unsigned char *p = v_malloc(n);
        KHT_REQUIRE(p != NULL, "round %d: malloc failed", round);
        for (size_t k = 0; k < n; k += PAGE)
            p[k] = 1;
        v_free_sized(p, n);
        unsigned char *a = v_aligned_alloc(PAGE, n);
        KHT_REQUIRE(a != NULL, "round %d: aligned_alloc failed", round);
        for (size_t k = 0; k < n; k += PAGE)
            a[k] = 1;
        v_free_aligned_sized(a, PAGE, n);
    }
    for (int round = 0; round < 200000; round++) {
        unsigned char *p = v_malloc(1024);
        KHT_REQUIRE(p != NULL, "round %d: malloc failed", round);
        p[0] = p[1023] = 1;
        v_free_sized(p, 1024);
    }
    size_t after = kht_rss();
    size_t growth = after > before ? after - before : 0;
    ck_assert_msg(growth < 64 * MiB, "RSS grew by %zu MiB (%zu -> %zu MiB)", growth / MiB,
                  before / MiB, after / MiB);
}
END_TEST

static Suite *malloc_suite(void)
{
    Suite *s = suite_create("malloc");
    TCase *tc = tcase_create("family");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_malloc_resolves_to_keyheap);
    tcase_add_test(tc, test_sizes_0_to_64mib_are_usable_aligned_and_disjoint);
    tcase_add_test(tc, test_malloc_zero_returns_unique_freeable_pointers);
    tcase_add_test(tc, test_free_null_is_harmless);
    tcase_add_test(tc, test_calloc_returns_zeroed_memory_even_when_reused);
    tcase_add_test(tc, test_calloc_overflow_gives_null_and_enomem);
    tcase_add_test(tc, test_reallocarray_overflow_gives_enomem_and_keeps_block);
    tcase_add_test(tc, test_huge_requests_give_null_and_enomem);
    tcase_add_test(tc, test_realloc_keeps_data_across_size_classes);
    tcase_add_test(tc, test_realloc_null_is_malloc);
    tcase_add_test(tc, test_realloc_to_zero_frees_and_returns_null_errno_untouched);
    tcase_add_test(tc, test_posix_memalign_every_alignment_1_to_1mib);
    tcase_add_test(tc, test_aligned_alloc_every_alignment_1_to_1mib);
    tcase_add_test(tc, test_memalign_every_alignment_rounds_up_like_glibc);
    tcase_add_test(tc, test_valloc_and_pvalloc_are_page_aligned);
    suite_add_tcase(s, tc);

    TCase *th = tcase_create("threads");
    tcase_set_timeout(th, 300);
    tcase_add_test(th, test_threads_free_each_others_blocks);
    tcase_add_test(th, test_fork_while_threads_busy_in_malloc_leaves_child_that_can_malloc);
    tcase_add_test(th, test_thousand_threads_leave_memory_bounded);
    suite_add_tcase(s, th);

    TCase *sized = tcase_create("sized");
    tcase_set_timeout(sized, 120);
    tcase_add_test(sized, test_free_sized_and_free_aligned_sized_resolve_to_keyheap);
    tcase_add_test(sized, test_free_sized_of_null_does_nothing);
    tcase_add_test(sized, test_free_sized_frees_malloc_calloc_and_realloc_blocks_of_every_size);
    tcase_add_test(sized, test_free_aligned_sized_frees_aligned_alloc_blocks_of_every_alignment);
    tcase_add_test(sized, test_free_sized_with_wrong_size_on_default_heap_is_plain_free);
    tcase_add_test(sized, test_free_sized_gives_memory_back);
    suite_add_tcase(s, sized);
    return s;
}

int main(void)
{
    return kht_main(malloc_suite());
}
