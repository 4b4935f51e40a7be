/*
 * examples/crypto_demo.c - keyheap's main demo (make demo): an Ed25519
 * signing key that lives in a domain.
 *
 * The program links keyheap (so malloc is keyheap's) and OpenSSL.  OpenSSL
 * generates the key inside keyheap_enter, so every block OpenSSL allocates
 * for it lands in the domain "signing-key"; every signature is made inside
 * enter/leave.  Outside the domain it shows that (a) an over-read of all of
 * the default heap finds no copy of the private key and (b) a read through
 * a leaked pointer to OpenSSL's copy of the key is stopped by the hardware
 * (in a child process, which dies by SIGSEGV after keyheap's fault report),
 * and (c) where the kernel has memfd_secret the domain is KEYHEAP_SECRETMEM,
 * so even the kernel's reads for /proc/self/mem fail on the key, while they
 * read an ordinary domain's block.
 * Last it shows what keyheap_scan_self() (keyheap-scan --pid) finds in its
 * own process: the WRPKRUs and XRSTORs that are not keyheap's.
 *
 * Where the CPU has no PKU it re-runs itself in the QEMU machine of
 * tools/pku-run.  KEYHEAP_DEMO_ROUNDS sets the number of signatures timed
 * (default 2000; 200 in the QEMU machine).  Exit status 0 when every claim
 * held, 1 otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, mincore */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <keyheap.h>

#ifndef KEYHEAP_SRCDIR
#define KEYHEAP_SRCDIR "."
#endif
#define DOMAIN_NAME "signing-key"
#define KEY_LEN 32

static const unsigned char message[] = "Pay 100 EUR to account DE00 1234 5678 9012, ref 4711";
static int failures;

static void claim(int ok, const char *what)
{
    if (!ok) {
        printf("   FAILED: %s\n", what);
        failures++;
    }
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Whether this runs in QEMU's emulator (TCG), as in tools/pku-run's machine. */
static int in_emulator(void)
{
    char line[256];
    int found = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
        found = strncmp(line, "model name", 10) == 0 && strstr(line, "QEMU TCG") != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

/* Without PKU: say so, and run this program again in tools/pku-run's QEMU
 * machine, which emulates PKU. */
static void rerun_where_pku_works(void)
{
    if (keyheap_pku_supported())
        return;
    if (getenv("KEYHEAP_DEMO_IN_PKU_RUN") != NULL) {
        printf("keyheap cannot use protection keys even in the PKU machine; giving up\n");
        exit(1);
    }
    const char *src = getenv("KEYHEAP_SRCDIR") ? getenv("KEYHEAP_SRCDIR") : KEYHEAP_SRCDIR;
    char runner[PATH_MAX], self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0 || snprintf(runner, sizeof runner, "%s/tools/pku-run", src) >= (int)sizeof runner) {
        printf("cannot find this program or tools/pku-run\n");
        exit(1);
    }
    self[n] = '\0';
    printf("This CPU has no memory protection keys (no PKU), so domains cannot be\n"
           "hardware-protected here.  Running the demo in the QEMU machine of\n"
           "%s, which emulates PKU (TCG: everything runs\n"
           "10-100 times slower there, so timings are the emulator's)...\n\n",
           runner);
    fflush(stdout);
    setenv("KEYHEAP_DEMO_IN_PKU_RUN", "1", 1);
    char *args[] = {"bash", runner, self, NULL};
    execv("/bin/bash", args);
    printf("cannot run /bin/bash: %s\n", strerror(errno));
    exit(1);
}

/* ---- The process's memory, from /proc/self/smaps. */
struct mapping {
    unsigned char *start, *end;
    int readable, writable, data, pkey; /* data: anonymous, [heap] or a file, not a stack */
};
static struct mapping maps[8192];
static int nmaps;

static void read_mappings(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512], perms[8], path[256];
    unsigned long start, end;
    int key;
    nmaps = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        path[0] = '\0';
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &start, &end, perms, path) >= 3 &&
            nmaps < (int)(sizeof maps / sizeof maps[0])) {
            struct mapping *m = &maps[nmaps++];
            m->start = (unsigned char *)start, m->end = (unsigned char *)end;
            m->readable = perms[0] == 'r', m->writable = perms[1] == 'w';
            m->data = path[0] != '[' || strcmp(path, "[heap]") == 0;
            m->pkey = 0;
        } else if (nmaps > 0 && sscanf(line, "ProtectionKey: %d", &key) == 1) {
            maps[nmaps - 1].pkey = key;
        }
    }
    if (f != NULL)
        fclose(f);
}

/* Adds to *hits the copies of the KEY_LEN bytes at pattern in [from, to),
 * storing up to max addresses in found. */
static void search(unsigned char *from, unsigned char *to, const unsigned char *pattern,
                   unsigned char **found, int max, int *hits)
{
    for (unsigned char *q = from; q + KEY_LEN <= to; q++) {
        q = memmem(q, (size_t)(to - q), pattern, KEY_LEN);
        if (q == NULL)
            return;
        if (*hits < max)
            found[*hits] = q;
        (*hits)++;
    }
}

/* Searches the resident pages of [start, end) for the KEY_LEN bytes at
 * pattern; stores up to max hits in found.  Returns the hit count and adds
 * the bytes read to *scanned.  Pages never touched hold no data and are
 * skipped (mincore), so a huge MAP_NORESERVE reservation costs nothing. */
static int scan(unsigned char *start, unsigned char *end, const unsigned char *pattern,
                unsigned char **found, int max, size_t *scanned)
{
    static unsigned char resident[16384];
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *run = NULL, *p = start;
    int hits = 0;
    while (p < end) {
        size_t pages = (size_t)(end - p) / page;
        if (pages > sizeof resident)
            pages = sizeof resident;
        if (mincore(p, pages * page, resident) != 0)
            memset(resident, 1, pages);
        for (size_t i = 0; i < pages; i++, p += page) {
            if (resident[i] & 1) {
                if (run == NULL)
                    run = p;
            } else if (run != NULL) {
                *scanned += (size_t)(p - run);
                search(run, p, pattern, found, max, &hits);
                run = NULL;
            }
        }
    }
    if (run != NULL) {
        *scanned += (size_t)(end - run);
        search(run, end, pattern, found, max, &hits);
    }
    return hits;
}

/* Over-reads the default heap and more: every readable, writable mapping
 * tagged with key 0 (jemalloc's heap, [heap], the libraries' data), the
 * stack left out.  Returns the copies of pattern found. */
static int overread_default_heap(const unsigned char *pattern, size_t *scanned, int *nmappings)
{
    unsigned char *found[4];
    int hits = 0;
    *scanned = 0, *nmappings = 0;
    for (int i = 0; i < nmaps; i++) {
        struct mapping *m = &maps[i];
        if (!m->readable || !m->writable || !m->data || m->pkey != 0)
            continue;
        (*nmappings)++;
        hits += scan(m->start, m->end, pattern, found, 4, scanned);
    }
    return hits;
}

static EVP_PKEY *generate_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static int sign(EVP_PKEY *key, unsigned char sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 64;
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, &len, message, sizeof message) == 1 && len == 64;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int verify(EVP_PKEY *key, const unsigned char sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, 64, message, sizeof message) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* In a child process, reads one byte at p without entering its domain.
 * Prints how the child ended and keyheap's report from its stderr. */
static void read_in_child(const unsigned char *p)
{
    int fds[2];
    char report[1024];
    size_t got = 0;
    ssize_t n;
    fflush(stdout);
    if (pipe(fds) != 0) {
        claim(0, "pipe");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        printf("   child: read the byte: %d (NOT stopped)\n", *(volatile const unsigned char *)p);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    while (got < sizeof report - 1 && (n = read(fds[0], report + got, sizeof report - 1 - got)) > 0)
        got += (size_t)n;
    report[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
    printf("   The child was %s\n",
           segv ? "killed by SIGSEGV (signal 11): the hardware stopped the read."
                : "NOT killed by SIGSEGV.");
    printf("   keyheap's report, from the child's stderr:\n");
    for (char *line = strtok(report, "\n"); line != NULL; line = strtok(NULL, "\n"))
        printf("     %s\n", line);
    claim(segv, "the child must die by SIGSEGV");
    claim(strstr(report, "keyheap: protection-key fault: ") != NULL &&
              strstr(report, "in domain \"" DOMAIN_NAME "\"") != NULL,
          "the report must name the domain");
}

/* keyheap_scan_self() with its report (one line per finding, on stderr)
 * caught in a temporary file and printed indented. */
#define PLAIN_DOMAIN_NAME "no-secretmem"

/* Reads KEY_LEN bytes at p through /proc/self/mem: how many were read, or
 * -1 with the reason in why. */
static int read_through_kernel(const void *p, char why[128])
{
    unsigned char buf[KEY_LEN];
    int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf, (off_t)(uintptr_t)p) : -1;
    snprintf(why, 128, "the read fails (%s)", strerror(errno));
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(buf, sizeof buf);
    return (int)n;
}

static int scan_self_indented(void)
{
    FILE *log = tmpfile();
    int saved = dup(2);
    if (log == NULL || saved < 0)
        return -1;
    fflush(stderr);
    dup2(fileno(log), 2);
    int findings = keyheap_scan_self();
    dup2(saved, 2);
    close(saved);
    rewind(log);
    char line[1024];
    while (fgets(line, sizeof line, log) != NULL)
        printf("     %s", line);
    fclose(log);
    return findings;
}

int main(void)
{
    rerun_where_pku_works();
    const int emulated = in_emulator();
    int rounds = emulated ? 200 : 2000;
    if (getenv("KEYHEAP_DEMO_ROUNDS") != NULL)
        rounds = atoi(getenv("KEYHEAP_DEMO_ROUNDS"));
    if (rounds < 1)
        rounds = 1;
    unsigned char sig[64];
    double t0;

    printf("keyheap %s, %s, protection keys: %s\n\n", keyheap_version(),
           OpenSSL_version(OPENSSL_VERSION), emulated ? "yes, emulated by QEMU (TCG)" : "yes");

    printf("1. Initialise OpenSSL outside any domain: one throwaway Ed25519 key and\n"
           "   one signature, so OpenSSL's lazily built global state is made on the\n"
           "   default heap (made inside a domain it would fault outside later).\n");
    OPENSSL_init_crypto(0, NULL);
    EVP_PKEY *plain = generate_key();
    claim(plain != NULL && sign(plain, sig) && verify(plain, sig), "OpenSSL's warm-up");

    /* Secret memory where the kernel has memfd_secret (Linux 5.14+, booted
     * with secretmem.enable=1 before 6.5): the kernel's own reads fail too. */
    int secretmem = 1;
    keyheap_domain_t *dom = keyheap_domain_create(DOMAIN_NAME, KEYHEAP_SECRETMEM);
    if (dom == NULL && errno == ENOSYS) {
        secretmem = 0;
        dom = keyheap_domain_create(DOMAIN_NAME, 0);
    }
    if (dom == NULL) {
        printf("keyheap_domain_create: %s\n", strerror(errno));
        return 1;
    }
    printf("\n2. Create the domain \"%s\": its own heap, tagged with protection key %d,\n"
           "   %s.\n",
           keyheap_domain_name(dom), keyheap_domain_pkey(dom),
           secretmem ? "its pages from memfd_secret(2), out of the kernel's direct map "
                       "(KEYHEAP_SECRETMEM)"
                     : "on ordinary pages (this kernel has no memfd_secret(2), so no "
                       "KEYHEAP_SECRETMEM)");

    keyheap_enter(dom);
    void *probe = malloc(16);
    keyheap_leave(dom);
    int routed = keyheap_domain_of(probe) == dom;
    free(probe);
    if (!routed) {
        printf("malloc is not keyheap's in this build (configured with "
               "--disable-malloc-replacement?):\n"
               "a library's allocations cannot land in a domain.\n");
        return 1;
    }

    struct keyheap_stats before, after;
    keyheap_domain_stats(dom, &before);
    t0 = now_ns();
    keyheap_enter(dom);
    EVP_PKEY *key = generate_key(); /* every malloc OpenSSL makes here lands in the domain */
    keyheap_leave(dom);
    double keygen_us = (now_ns() - t0) / 1e3;
    keyheap_domain_stats(dom, &after);
    if (key == NULL) {
        printf("EVP_PKEY_Q_keygen failed\n");
        return 1;
    }
    printf("\n3. Generate the signing key inside keyheap_enter/keyheap_leave (%.0f us).\n"
           "   OpenSSL made %zu allocations for it (%zu bytes), all in the domain: the\n"
           "   domain held %zu objects before and %zu after.  The EVP_PKEY is at\n"
           "   %p, in domain \"%s\" says keyheap_domain_of().\n",
           keygen_us, after.objects - before.objects, after.allocated - before.allocated,
           before.objects, after.objects, (void *)key,
           keyheap_domain_of(key) ? keyheap_domain_name(keyheap_domain_of(key))
                                  : "(none: default heap)");
    claim(after.objects > before.objects && keyheap_domain_of(key) == dom,
          "OpenSSL's allocations must land in the domain");

    /* Where are the private key's bytes?  A copy of them, made inside the
     * domain into a domain block, is the pattern to look for. */
    unsigned char pub[KEY_LEN], *raw, *copies[8];
    size_t len = KEY_LEN, scanned = 0;
    keyheap_enter(dom);
    raw = malloc(KEY_LEN);
    int exported =
        raw != NULL && EVP_PKEY_get_raw_private_key(key, raw, &len) == 1 && len == KEY_LEN;
    len = KEY_LEN;
    exported = exported && EVP_PKEY_get_raw_public_key(key, pub, &len) == 1;
    keyheap_leave(dom);
    claim(exported, "EVP_PKEY_get_raw_private_key");
    read_mappings();
    int ncopies = 0;
    keyheap_enter_ro(dom);
    for (int i = 0; i < nmaps; i++)
        if (maps[i].readable && maps[i].pkey == keyheap_domain_pkey(dom)) {
            int room = ncopies < 8 ? 8 - ncopies : 0;
            ncopies += scan(maps[i].start, maps[i].end, raw, copies + 8 - room, room, &scanned);
        }
    keyheap_leave(dom);
    unsigned char *openssl_copy = NULL;
    printf("   The private key's 32 bytes are in the domain's memory at %d places:\n", ncopies);
    for (int i = 0; i < ncopies && i < 8; i++) {
        printf("     %p %s\n", (void *)copies[i],
               copies[i] == raw ? "(the demo's own export, for the search below)"
                                : "(OpenSSL's copy)");
        if (copies[i] != raw && openssl_copy == NULL)
            openssl_copy = copies[i];
    }
    claim(openssl_copy != NULL, "OpenSSL's copy of the key must be in the domain");

    printf("\n4. Sign a %zu-byte message %d times, each inside its own enter/leave.\n",
           sizeof message - 1, rounds);
    int signed_ok = 1;
    t0 = now_ns();
    for (int i = 0; i < rounds; i++) {
        keyheap_enter(dom);
        signed_ok &= sign(key, sig);
        keyheap_leave(dom);
    }
    double ns_domain = (now_ns() - t0) / rounds;
    t0 = now_ns();
    for (int i = 0; i < rounds; i++)
        sign(plain, sig);
    double ns_plain = (now_ns() - t0) / rounds;
    int pairs = rounds * 500;
    t0 = now_ns();
    for (int i = 0; i < pairs; i++) {
        keyheap_enter(dom);
        keyheap_leave(dom);
    }
    double ns_pair = (now_ns() - t0) / pairs;
    keyheap_enter(dom);
    signed_ok &= sign(key, sig);
    keyheap_leave(dom);
    claim(signed_ok, "signing");
    printf("   %.1f us per signature with the key in the domain (enter and leave included),\n"
           "   %.1f us per signature with a key on the default heap (the throwaway key);\n"
           "   one keyheap_enter+keyheap_leave pair alone: %.1f ns (%d pairs).\n",
           ns_domain / 1e3, ns_plain / 1e3, ns_pair, pairs);
    if (emulated)
        printf("   (Emulator timings: QEMU's WRPKRU flushes its software TLB, so here a pair\n"
               "   costs microseconds and slows what follows; about 30 ns on real PKU.)\n");

    EVP_PKEY *public_only = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, KEY_LEN);
    int verified = public_only != NULL && verify(public_only, sig);
    printf("\n5. Verify the signature outside the domain, with the public key alone (it is\n"
           "   not secret, so it was copied out): %s.\n",
           verified ? "the signature verifies" : "VERIFICATION FAILED");
    claim(verified, "the signature must verify");

    printf("\n6. (a) Over-read the default heap, as a Heartbleed-style bug would: read\n"
           "   every readable, writable mapping with protection key 0 (the default\n"
           "   heap, [heap], the libraries' data; not the stack), looking for the\n"
           "   private key.  The pattern stays in the domain: the search runs inside\n"
           "   keyheap_enter_ro, which opens the domain only to read the pattern.\n");
    read_mappings();
    int nmappings;
    t0 = now_ns();
    keyheap_enter_ro(dom);
    int leaks = overread_default_heap(raw, &scanned, &nmappings);
    keyheap_leave(dom);
    printf("   Read %.1f MiB in %d mappings (%.0f ms): %d copies of the signing key.\n",
           scanned / 1048576.0, nmappings, (now_ns() - t0) / 1e6, leaks);
    claim(leaks == 0, "no copy of the key may be on the default heap");
    unsigned char plain_raw[KEY_LEN]; /* on the stack, which the scan leaves out */
    len = KEY_LEN;
    EVP_PKEY_get_raw_private_key(plain, plain_raw, &len);
    int plain_leaks = overread_default_heap(plain_raw, &scanned, &nmappings);
    printf("   For comparison, the same scan for the throwaway key, which OpenSSL made\n"
           "   outside any domain: %d %s on the default heap.\n",
           plain_leaks, plain_leaks == 1 ? "copy" : "copies");
    claim(plain_leaks > 0, "the scan must find a key that is on the default heap");
    OPENSSL_cleanse(plain_raw, sizeof plain_raw);

    printf("\n6. (b) Read OpenSSL's copy of the key through a leaked pointer,\n"
           "   %p, without entering the domain, in a child process so that\n"
           "   the demo goes on.\n",
           (void *)openssl_copy);
    read_in_child(openssl_copy ? openssl_copy : raw);

    printf("\n6. (c) Read it through the kernel, as a debugger, another process of the\n"
           "   same user or root would: pread() of /proc/self/mem, which ignores\n"
           "   protection keys.  For comparison, the same read of a block of an\n"
           "   ordinary domain, \"%s\", whose key is closed here too.\n",
           PLAIN_DOMAIN_NAME);
    char proc_err[128];
    int proc_read = read_through_kernel(openssl_copy ? openssl_copy : raw, proc_err);
    keyheap_domain_t *ordinary = keyheap_domain_create(PLAIN_DOMAIN_NAME, 0);
    unsigned char *marker = ordinary != NULL ? keyheap_malloc(ordinary, KEY_LEN) : NULL;
    int ordinary_read = -1;
    char ordinary_err[128];
    if (marker != NULL) {
        keyheap_enter(ordinary);
        memset(marker, 0x5a, KEY_LEN);
        keyheap_leave(ordinary);
        ordinary_read = read_through_kernel(marker, ordinary_err);
        keyheap_free(marker);
    }
    printf("   The signing key: %s.\n"
           "   The ordinary domain's block: %s.\n",
           proc_read == KEY_LEN ? "read, 32 bytes (no KEYHEAP_SECRETMEM here)" : proc_err,
           ordinary_read == KEY_LEN ? "read, 32 bytes: its key does not stop the kernel"
                                    : ordinary_err);
    claim(secretmem ? proc_read < 0 : proc_read == KEY_LEN,
          "/proc/self/mem must fail on a KEYHEAP_SECRETMEM domain");
    claim(ordinary_read == KEY_LEN, "/proc/self/mem reads an ordinary domain");
    claim(ordinary != NULL && keyheap_domain_destroy(ordinary) == 0, "the ordinary domain");

    keyheap_enter(dom);
    EVP_PKEY_free(key);
    free(raw);
    keyheap_leave(dom);
    keyheap_domain_stats(dom, &after);
    int destroyed = keyheap_domain_destroy(dom) == 0;
    printf("\n7. Free the key inside the domain (keyheap zeroes each freed block): the\n"
           "   domain holds %zu objects now.  Destroy it:\n   %s.\n",
           after.objects,
           destroyed ? "its pages are discarded, then its protection key is freed"
                     : strerror(errno));
    claim(destroyed, "keyheap_domain_destroy");
    EVP_PKEY_free(public_only);
    EVP_PKEY_free(plain);

    printf("\n8. What keyheap-scan says about this process: keyheap_scan_self() reads the\n"
           "   code of every executable mapping, looking for WRPKRU and XRSTOR, the\n"
           "   instructions that rewrite PKRU.  Code an attacker steers (a corrupted\n"
           "   function pointer, a ROP chain) could jump to any of them, also to one\n"
           "   hidden inside another instruction, and open the domain without keyheap.\n"
           "   keyheap's own (this program's inlined enters and leaves, the library's)\n"
           "   are recognised and not listed.  Its report (stderr, caught here):\n");
    fflush(stdout);
    int findings = scan_self_indented();
    printf("   %d findings, none of them keyheap's own sequences: glibc's pkey_set()\n"
           "   is a WRPKRU by design, ld.so saves and restores registers with XRSTOR, and\n"
           "   libcrypto's WRPKRU is the bytes 0f 01 ef inside a call's displacement\n"
           "   (\"embedded\").  Each is a place where an attacker who controls the\n"
           "   instruction pointer could open the key; keyheap cannot remove them, it\n"
           "   shows them.  keyheap-scan FILE or keyheap-scan --pid PID reports the same\n"
           "   for any program.\n",
           findings);
    claim(findings >= 0, "keyheap_scan_self must read this process's mappings");

    if (failures == 0)
        printf("\nEvery claim held: the key never left its domain.\n");
    else
        printf("\n%d claims FAILED.\n", failures);
    return failures == 0 ? 0 : 1;
}
