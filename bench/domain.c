/*
 * bench/domain.c - the cost of domains, against references measured in the
 * same run.
 *
 *  (a) keyheap_enter + keyheap_leave, against a raw RDPKRU/WRPKRU/WRPKRU
 *      sequence doing the same, glibc's pkey_set pair, an mprotect pair and
 *      libsodium's sodium_mprotect_readwrite + sodium_mprotect_noaccess pair.
 *      The first three need a CPU with PKU: QEMU emulates WRPKRU some 100
 *      times slower, so without PKU those rows say "needs PKU" instead of
 *      printing a number.  The mprotect and libsodium pairs need no PKU and
 *      are measured on every CPU.
 *  (b) malloc + free inside a domain (KEYHEAP_NOSCRUB), against Debian's
 *      jemalloc mallocx/dallocx on an explicit arena with an explicit thread
 *      cache, the fastest way jemalloc itself offers to keep a separate heap;
 *      the same inside a domain that scrubs, to show what zeroing costs; and
 *      the two secret-keeping heaps of the crypto libraries: libsodium's
 *      sodium_malloc/sodium_free and OpenSSL's OPENSSL_secure_malloc/
 *      OPENSSL_secure_free (after CRYPTO_secure_malloc_init, SECURE_HEAP).
 *
 * Every row runs in a process of its own (this program executed again with
 * --row ID), so that each row has its own peak RSS (VmHWM of that process:
 * the program with all its libraries loaded, plus what the row used).  The
 * rows take turns, in an order that rotates every round, so that noise from
 * the machine hits all of them alike; each figure is the median over ROUNDS
 * processes (-n) of each process's median of INPROC timed runs, after a
 * calibration run that also warms up.  With -o FILE one tab-separated line
 * per row also goes to FILE, for bench/compare.sh.
 *
 * The program links keyheap, Debian's libjemalloc, libsodium and libcrypto
 * (keyheap first, so malloc is keyheap's; mallocx and mallctl are
 * libjemalloc's).  libsodium and libcrypto are optional here; rows
 * without them say "not built".  Built as a user's program is, with the
 * public header only (no config.h): Makefile.am defines HAVE_SODIUM where
 * configure found libsodium, and HAVE_LIBCRYPTO (configure requires it).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SODIUM
#include <sodium.h>
#endif
#ifdef HAVE_LIBCRYPTO
#include <openssl/crypto.h>
#endif

#include <keyheap.h>

#include "bench.h"

#define ROUNDS 7               /* processes per row (default of -n) */
#define INPROC 3               /* timed runs per process, median taken */
#define CALIBRATE_NS 20e6      /* the calibration run doubles up to this... */
#define RUN_NS 50e6            /* ...then each timed run aims at this */
#define SECURE_HEAP (1u << 20) /* OpenSSL's secure heap: 64 blocks <= 4 KiB fit */

static void *(*volatile v_malloc)(size_t) = malloc;

typedef void (*bench_fn)(long iters);

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench/domain: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ------------------------------------------------------------ (a) */

static keyheap_domain_t *dom;
static int key;
static void *page;

static void raw_pair(long iters)
{
    unsigned open_mask = ~(3u << (2 * key));
    for (long i = 0; i < iters; i++) {
        unsigned pkru = bench_rdpkru();
        bench_wrpkru(pkru & open_mask);
        bench_wrpkru(pkru);
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

#ifdef HAVE_SODIUM
static unsigned char *sodium_block;

static void sodium_pair(long iters)
{
    for (long i = 0; i < iters; i++) {
        sodium_mprotect_readwrite(sodium_block);
        sodium_mprotect_noaccess(sodium_block);
    }
}
#endif

static void setup_keys(void)
{
    dom = keyheap_domain_create("bench-enter", 0);
    if (dom == NULL)
        die("keyheap_domain_create");
    key = keyheap_domain_pkey(dom);
}

static void setup_page(void)
{
    page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        die("mmap");
}

#ifdef HAVE_SODIUM
/* A 32-byte block (a key) of libsodium's guarded heap: one page. */
static void setup_sodium_block(void)
{
    if (sodium_init() < 0)
        die("sodium_init");
    sodium_block = sodium_malloc(32);
    if (sodium_block == NULL || sodium_mprotect_noaccess(sodium_block) != 0)
        die("sodium_malloc");
}
#endif

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

static void setup_je(void)
{
    unsigned arena, tcache;
    size_t sz = sizeof arena;
    if (mallctl("arenas.create", &arena, &sz, NULL, 0) != 0 ||
        mallctl("tcache.create", &tcache, &sz, NULL, 0) != 0)
        die("mallctl arenas.create/tcache.create");
    je_flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tcache);
}

static void setup_noscrub(void)
{
    noscrub = keyheap_domain_create("bench-noscrub", KEYHEAP_NOSCRUB);
    if (noscrub == NULL)
        die("keyheap_domain_create");
}

static void setup_scrub(void)
{
    scrub = keyheap_domain_create("bench-scrub", 0);
    if (scrub == NULL)
        die("keyheap_domain_create");
}

#ifdef HAVE_SODIUM
static void setup_sodium(void)
{
    if (sodium_init() < 0)
        die("sodium_init");
}

static void sodium_batch(long iters)
{
    void *p[BATCH];
    for (long i = 0; i < iters; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            p[k] = sodium_malloc(sizes[k]);
        for (int k = 0; k < BATCH; k++)
            sodium_free(p[k]);
    }
}
#endif

#ifdef HAVE_LIBCRYPTO
static void setup_ossl(void)
{
    int r = CRYPTO_secure_malloc_init(SECURE_HEAP, 16);
    if (r == 0)
        die("CRYPTO_secure_malloc_init");
    if (r == 2)
        fprintf(stderr, "bench/domain: note: OpenSSL's secure heap is not locked in memory "
                        "(mlock failed: RLIMIT_MEMLOCK?)\n");
}

static void ossl_batch(long iters)
{
    void *p[BATCH];
    for (long i = 0; i < iters; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            if ((p[k] = OPENSSL_secure_malloc(sizes[k])) == NULL)
                die("OPENSSL_secure_malloc");
        for (int k = 0; k < BATCH; k++)
            OPENSSL_secure_free(p[k]);
    }
}
#endif

/* ------------------------------------------------------------ rows */

enum { OK, NEEDS_PKU, NOT_BUILT };

struct row {
    const char *id;   /* for --row and the -o file */
    char part;        /* 'a' or 'b' */
    const char *name; /* for the tables */
    int pku;          /* needs a CPU with PKU */
    void (*setup)(void);
    bench_fn fn;         /* NULL: not built (library missing at configure) */
    long unit;           /* iterations come in multiples of this */
    const char *missing; /* the Debian package that was missing */
};

#ifdef HAVE_SODIUM
#define SODIUM(x) x
#else
#define SODIUM(x) NULL
#endif
#ifdef HAVE_LIBCRYPTO
#define OSSL(x) x
#else
#define OSSL(x) NULL
#endif

/* The rows main refers to by index, in the order of rows[].  The first row
 * of each part is its reference; in part (a), without PKU, the mprotect pair
 * is. */
enum { R_RAW, R_ENTER, R_PKEY_SET, R_MPROTECT, R_SODIUM_MPROTECT, R_JEMALLOC, R_NOSCRUB, R_SCRUB };

static const struct row rows[] = {
    {"raw", 'a', "raw RDPKRU+WRPKRU+WRPKRU", 1, setup_keys, raw_pair, 1, NULL},
    {"enter", 'a', "keyheap_enter+keyheap_leave", 1, setup_keys, keyheap_pair, 1, NULL},
    {"pkey_set", 'a', "glibc pkey_set pair", 1, setup_keys, pkey_set_pair, 1, NULL},
    {"mprotect", 'a', "mprotect pair (4 KiB)", 0, setup_page, mprotect_pair, 1, NULL},
    {"sodium_mprotect", 'a', "sodium_mprotect_readwrite+noaccess (1 page)", 0,
     SODIUM(setup_sodium_block), SODIUM(sodium_pair), 1, "libsodium-dev"},
    {"jemalloc", 'b', "Debian jemalloc mallocx/dallocx, explicit arena + tcache", 0, setup_je,
     je_explicit, BATCH, NULL},
    {"noscrub", 'b', "keyheap domain, KEYHEAP_NOSCRUB", 0, setup_noscrub, in_domain_noscrub, BATCH,
     NULL},
    {"scrub", 'b', "keyheap domain, scrubbing (default)", 0, setup_scrub, in_domain_scrub, BATCH,
     NULL},
    {"sodium_malloc", 'b', "libsodium sodium_malloc/sodium_free", 0, SODIUM(setup_sodium),
     SODIUM(sodium_batch), BATCH, "libsodium-dev"},
    {"openssl_secure", 'b', "OpenSSL OPENSSL_secure_malloc/secure_free (1 MiB secure heap)", 0,
     OSSL(setup_ossl), OSSL(ossl_batch), BATCH, "libssl-dev"},
};
#define NROWS (int)(sizeof rows / sizeof rows[0])

static long status_kib(const char *field)
{
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* --row ID: one row in this process.  Prints "ns=... hwm_kib=... iters=...". */
static int run_row(const char *id)
{
    const struct row *r = NULL;
    for (int i = 0; i < NROWS; i++)
        if (strcmp(rows[i].id, id) == 0)
            r = &rows[i];
    if (r == NULL || r->fn == NULL) {
        fprintf(stderr, "bench/domain: no row '%s' in this build\n", id);
        return 2;
    }
    r->setup();
    long iters = r->unit;
    double t;
    for (;;) { /* calibration, and warm-up */
        double t0 = bench_now_ns();
        r->fn(iters);
        t = bench_now_ns() - t0;
        if (t >= CALIBRATE_NS || iters >= (1L << 40))
            break;
        iters *= 2;
    }
    iters = (long)((double)iters * RUN_NS / t) / r->unit * r->unit;
    if (iters < r->unit)
        iters = r->unit;
    double ns[INPROC];
    for (int k = 0; k < INPROC; k++) {
        double t0 = bench_now_ns();
        r->fn(iters);
        ns[k] = (bench_now_ns() - t0) / (double)iters;
    }
    printf("ns=%.3f hwm_kib=%ld iters=%ld\n", bench_median(ns, INPROC), status_kib("VmHWM"), iters);
    return 0;
}

/* One process for row r: its ns per iteration and its peak RSS. */
static void run_child(const struct row *r, double *ns, long *kib)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "domain", "--row", r->id, (char *)NULL);
        perror("bench/domain: execl /proc/self/exe");
        _exit(127);
    }
    close(fd[1]);
    char buf[256];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf - 1 && (got = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        sscanf(buf, "ns=%lf hwm_kib=%ld", ns, kib) != 2) {
        fprintf(stderr, "bench/domain: row %s failed (status 0x%x, output '%s')\n", r->id,
                (unsigned)status, buf);
        exit(1);
    }
}

struct result {
    int status;
    double ns, lo, hi, mib;
};

static void print_row(const struct row *r, const struct result *x, double ref)
{
    if (x->status == NEEDS_PKU)
        printf("| %s | needs PKU | | | |\n", r->name);
    else if (x->status == NOT_BUILT)
        printf("| %s | not built (%s) | | | |\n", r->name, r->missing);
    else
        printf("| %s | %.1f | %.1f-%.1f | %.2f | %.1f |\n", r->name, x->ns, x->lo, x->hi,
               x->ns / ref, x->mib);
}

int main(int argc, char **argv)
{
    int rounds = ROUNDS, opt;
    const char *outfile = NULL;
    if (argc == 3 && strcmp(argv[1], "--row") == 0)
        return run_row(argv[2]);
    while ((opt = getopt(argc, argv, "n:o:")) != -1) {
        if (opt == 'n' && (rounds = atoi(optarg)) > 0 && rounds <= 99)
            continue;
        if (opt == 'o') {
            outfile = optarg;
            continue;
        }
        fprintf(stderr, "usage: bench/domain [-n ROUNDS (1-99)] [-o TSVFILE] | --row ID\n");
        return 2;
    }
    int pku = keyheap_pku_supported();
    /* KEYHEAP_CONF is read once per process: without PKU the children must
     * ask for unprotected domains before keyheap starts. */
    if (!pku)
        setenv("KEYHEAP_CONF", "unprotected:true", 1);

    struct result res[NROWS];
    double t[NROWS][99];
    long kib[NROWS][99];
    int idx[NROWS], n = 0;
    for (int i = 0; i < NROWS; i++) {
        res[i].status = rows[i].fn == NULL ? NOT_BUILT : rows[i].pku && !pku ? NEEDS_PKU : OK;
        if (res[i].status == OK)
            idx[n++] = i;
    }
    printf("# keyheap domain benchmark (each row a process of its own; medians of %d "
           "processes per row, rows interleaved)\n\n",
           rounds);
    fflush(stdout);
    for (int round = 0; round < rounds; round++)
        for (int j = 0; j < n; j++) {
            int i = idx[(j + round) % n];
            run_child(&rows[i], &t[i][round], &kib[i][round]);
        }
    for (int j = 0; j < n; j++) {
        int i = idx[j];
        double k[99];
        for (int round = 0; round < rounds; round++)
            k[round] = (double)kib[i][round];
        res[i].mib = bench_median(k, rounds) / 1024;
        res[i].ns = bench_median(t[i], rounds);
        res[i].lo = t[i][0];
        res[i].hi = t[i][rounds - 1];
    }

    /* (a): the raw sequence is the reference, the mprotect pair without PKU. */
    int a_ref = pku ? R_RAW : R_MPROTECT;
    printf("## (a) enter + leave (one pair per iteration)\n\n");
    if (!pku)
        printf("This CPU has no PKU (no `pku`/`ospke` in /proc/cpuinfo): the key-based rows "
               "are not measured, because QEMU's emulated WRPKRU is about 100 times slower "
               "than the real one and a number from it would mean nothing.  The ratios are "
               "to the mprotect pair instead.\n\n");
    printf("| operation | ns per pair | spread | ratio to %s | peak RSS MiB |\n"
           "|---|---:|---:|---:|---:|\n",
           pku ? "raw" : "mprotect pair");
    for (int i = 0; i < NROWS; i++)
        if (rows[i].part == 'a')
            print_row(&rows[i], &res[i], res[a_ref].ns);
    if (pku)
        printf("\nGoal: keyheap <= 1.10 x raw: %s\n\n",
               res[R_ENTER].ns <= 1.10 * res[R_RAW].ns ? "met" : "MISSED");
    else
        printf("\nGoal: keyheap <= 1.10 x raw: needs PKU, not measured.\n\n");

    printf("## (b) malloc + free inside a domain (mixed sizes 8 B - 4 KiB)\n\n");
    printf("keyheap's misuse detection (the block map) is on, as always.\n\n");
    if (!pku)
        printf("This CPU has no PKU: measured with KEYHEAP_CONF=unprotected:true (domains "
               "are separate heaps without keys; the allocation path is the same).\n\n");
    printf("| allocator | ns per malloc+free | spread | ratio to jemalloc | peak RSS MiB |\n"
           "|---|---:|---:|---:|---:|\n");
    for (int i = 0; i < NROWS; i++)
        if (rows[i].part == 'b')
            print_row(&rows[i], &res[i], res[R_JEMALLOC].ns);
    printf("\nGoal: NOSCRUB <= 1.15 x jemalloc: %s; scrubbing adds %.1f ns per free.\n\n",
           res[R_NOSCRUB].ns <= 1.15 * res[R_JEMALLOC].ns ? "met" : "MISSED",
           res[R_SCRUB].ns - res[R_NOSCRUB].ns);
    fflush(stdout);

    if (outfile != NULL) {
        FILE *f = fopen(outfile, "w");
        if (f == NULL)
            die(outfile);
        /* part, id, status, ns, lo, hi, peak RSS KiB, reference?, name */
        for (int i = 0; i < NROWS; i++) {
            const struct result *x = &res[i];
            int ref = rows[i].part == 'a' ? i == a_ref : i == R_JEMALLOC;
            if (x->status == OK)
                fprintf(f, "%c\t%s\tok\t%.2f\t%.2f\t%.2f\t%.0f\t%d\t%s\n", rows[i].part, rows[i].id,
                        x->ns, x->lo, x->hi, x->mib * 1024, ref, rows[i].name);
            else
                fprintf(f, "%c\t%s\t%s\t-\t-\t-\t-\t%d\t%s\n", rows[i].part, rows[i].id,
                        x->status == NEEDS_PKU ? "needs PKU" : "not built", ref, rows[i].name);
        }
        if (fclose(f) != 0)
            die(outfile);
    }
    return 0;
}
