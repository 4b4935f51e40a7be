/*
 * tests/check_secretmem.c - KEYHEAP_SECRETMEM domains: memory from
 * memfd_secret(2), out of the kernel's direct map.
 *
 * The kernel's side (tcase "kernel"): /proc/self/mem and process_vm_readv
 * (from a child) cannot read or write a secret domain's block, each with a
 * twin on an ordinary domain that reads the same bytes; every block lies in
 * a secretmem mapping (the twin: an ordinary domain's never does), through
 * growth past many extents; RLIMIT_MEMLOCK exhaustion fails with ENOMEM and
 * one hint; destroy unmaps everything and closes the descriptor, over
 * create/destroy cycles; pages that jemalloc decommits come back as zeroes
 * (calloc); a fork child gets zeroes in a file of its own and never shares
 * the parent's pages; a kernel without memfd_secret (a seccomp filter says
 * ENOSYS) makes creation fail with ENOSYS and a hint, never an ordinary
 * domain; a program that closes keyheap's descriptor and opens a file under
 * its number stops the domain from growing and the file gets nothing;
 * free scrubs.  These need no protection keys: tests/secretmem-native.sh
 * runs them on any machine (with KEYHEAP_CONF unprotected:true where the
 * CPU lacks PKU), on the host's own kernel.
 *
 * The key's side (tcase "keys", and everything again through
 * tools/pku-run, natively with PKU, otherwise in QEMU's Linux 6.1 booted
 * with secretmem.enable=1): a secret block faults outside the domain with
 * SEGV_PKUERR on its key (twin: reads fine inside), also from another
 * thread, a thread made inside and a signal handler while the code they
 * interrupt or run beside is inside (twins enter); with one key, two
 * secret domains park and come back with their secrets, and a parked one
 * faults with SEGV_ACCERR at the address; threads under a 1 ms watchdog
 * free secret blocks from outside (the decommit zeroing in threads that
 * have not entered) and keep every byte.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keyheap.h>

#include "tests/khfault.h"
#include "tests/khtest.h"

#define TEXT "a secret of the domain, 0123456789"

/* Escapes, so that no store before a free is dropped. */
static void *volatile sink;

static keyheap_domain_t *create(const char *name, unsigned flags)
{
    keyheap_domain_t *d = keyheap_domain_create(name, flags);
    ck_assert_msg(d != NULL, "keyheap_domain_create(\"%s\", %#x): %s", name, flags,
                  strerror(errno));
    return d;
}

/* A block of d holding TEXT. */
static char *put(keyheap_domain_t *d, size_t size)
{
    char *p = keyheap_malloc(d, size);
    ck_assert_msg(p != NULL, "keyheap_malloc(%zu): %s", size, strerror(errno));
    keyheap_enter(d);
    memcpy(p, TEXT, sizeof TEXT);
    keyheap_leave(d);
    sink = p;
    return p;
}

/* /proc/self/maps, open; aborts when it cannot be (no ck_assert: the
 * --zero-child program runs outside Check). */
static FILE *maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        abort();
    return f;
}

/* Whether [p, p + n) lies in a mapping of a memfd_secret file (its maps line
 * names /secretmem). */
static bool in_secretmem(const void *p, size_t n)
{
    FILE *f = maps();
    char line[512];
    bool found = false;
    uintptr_t a = (uintptr_t)p;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= a && a + n <= hi)
            found = strstr(line, "/secretmem") != NULL;
    }
    fclose(f);
    return found;
}

/* How many maps lines name /secretmem. */
static unsigned secretmem_mappings(void)
{
    FILE *f = maps();
    char line[512];
    unsigned n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += strstr(line, "/secretmem") != NULL;
    fclose(f);
    return n;
}

/* The descriptors of this process naming a memfd_secret file; the last
 * one's number in *last. */
static unsigned secret_fds(int *last)
{
    DIR *dir = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(dir);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strncmp(target, "/secretmem", 10) == 0) {
            n++;
            if (last != NULL)
                *last = atoi(e->d_name);
        }
    }
    closedir(dir);
    return n;
}

/* Waits for child pid, which must exit 0; codes says what its other exit
 * codes mean. */
static void wait_ok(pid_t pid, const char *codes)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x (%s)", status,
                  codes);
}

/* Runs fn(arg) in a forked child whose stderr is captured: it must exit 0
 * and, unless want is NULL, print exactly want.  Returns what it printed
 * (valid until the next call). */
static const char *child_ok(void (*fn)(void *), void *arg, const char *want)
{
    static char err[4096];
    int status = kht_child_stderr(fn, arg, err, sizeof err);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x: %s", status,
                  err);
    if (want != NULL)
        ck_assert_str_eq(err, want);
    return err;
}

/* ---------------------------------------------- /proc/self/mem, twins */

static ssize_t proc_mem(void *p, char *buf, size_t n, bool write)
{
    int fd = open("/proc/self/mem", write ? O_RDWR : O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ssize_t r =
        write ? pwrite(fd, buf, n, (off_t)(uintptr_t)p) : pread(fd, buf, n, (off_t)(uintptr_t)p);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

START_TEST(test_proc_self_mem_cannot_read_or_write_a_secret_block)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    char *p = put(d, 64);
    char buf[sizeof TEXT] = {0};
    errno = 0;
    ck_assert_int_eq(proc_mem(p, buf, sizeof TEXT, false), -1);
    ck_assert_msg(errno == EIO || errno == EFAULT, "read: %s", strerror(errno));
    ck_assert_msg(memchr(buf, 's', sizeof buf) == NULL, "read something: %s", buf);
    char evil[sizeof TEXT];
    memset(evil, 'X', sizeof evil);
    ck_assert_int_eq(proc_mem(p, evil, sizeof evil, true), -1);
    keyheap_enter(d);
    ck_assert_str_eq(p, TEXT);
    keyheap_leave(d);
}
END_TEST

START_TEST(test_proc_self_mem_reads_and_writes_an_ordinary_block)
{
    /* The twin: the route exists for an ordinary domain (PKRU does not
     * stop the kernel), so the failure above is memfd_secret's doing. */
    keyheap_domain_t *d = create("ordinary", 0);
    char *p = put(d, 64);
    char buf[sizeof TEXT] = {0};
    ck_assert_int_eq(proc_mem(p, buf, sizeof TEXT, false), (ssize_t)sizeof TEXT);
    ck_assert_str_eq(buf, TEXT);
    char evil[] = "X";
    ck_assert_int_eq(proc_mem(p, evil, 1, true), 1);
    keyheap_enter(d);
    ck_assert_int_eq(p[0], 'X');
    keyheap_leave(d);
}
END_TEST

/* A child reads its parent's p with process_vm_readv: exit 0 when the call
 * failed with EFAULT (want_fail), or read TEXT (!want_fail). */
static void vm_read_from_child(char *p, bool want_fail)
{
    /* Under Yama's ptrace_scope 1 a child may not read its parent unless
     * the parent says so. */
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char buf[sizeof TEXT] = {0};
        struct iovec local = {buf, sizeof buf}, remote = {p, sizeof buf};
        ssize_t r = process_vm_readv(parent, &local, 1, &remote, 1, 0);
        if (want_fail)
            _exit(r == -1 && errno == EFAULT && buf[0] == '\0' ? 0 : 1);
        _exit(r == (ssize_t)sizeof buf && strcmp(buf, TEXT) == 0 ? 0 : 2);
    }
    wait_ok(pid, "1: its process_vm_readv read the secret; 2: it could not read the ordinary "
                 "block");
}

START_TEST(test_process_vm_readv_from_a_child_fails_on_a_secret_block)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    vm_read_from_child(put(d, 64), true);
}
END_TEST

START_TEST(test_process_vm_readv_from_a_child_reads_an_ordinary_block)
{
    keyheap_domain_t *d = create("ordinary", 0);
    vm_read_from_child(put(d, 64), false);
}
END_TEST

/* ------------------------------------------------------------ growth */

/* About 4.6 MB in all: within the default RLIMIT_MEMLOCK of 8 MiB, which
 * binds every process (keyheap's count of secret pages; Linux 6.1 itself
 * raises SIGBUS past it, root or not).  Every block of 70000 bytes is a
 * large block, an extent of its own with a guard page after it. */
static const size_t sizes[] = {24, 3000, 20000, 70000};
#define BLOCKS 200

START_TEST(test_every_block_lies_in_secret_memory_through_growth)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    static unsigned char *blocks[BLOCKS];
    keyheap_enter(d);
    for (unsigned i = 0; i < BLOCKS; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        blocks[i] = keyheap_malloc(d, n);
        KHT_REQUIRE(blocks[i] != NULL, "block %u of %zu bytes: %s", i, n, strerror(errno));
        memset(blocks[i], (int)(i & 0xff), n);
    }
    for (unsigned i = 0; i < BLOCKS; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        KHT_REQUIRE(blocks[i][0] == (i & 0xff) && blocks[i][n - 1] == (i & 0xff),
                    "block %u lost its bytes", i);
        KHT_REQUIRE(in_secretmem(blocks[i], n), "block %u (%p, %zu bytes) is not secret memory", i,
                    (void *)blocks[i], n);
    }
    keyheap_leave(d);
    /* Secret pages are locked: the statistics say so. */
    struct keyheap_stats st;
    ck_assert_int_eq(keyheap_domain_stats(d, &st), 0);
    ck_assert_uint_gt(st.committed, BLOCKS / 4 * 70000);
    ck_assert_uint_eq(st.locked, st.committed);
    /* Many extents, each large block followed by its guard page: many
     * mappings. */
    ck_assert_uint_gt(secretmem_mappings(), BLOCKS / 8);
    for (unsigned i = 0; i < BLOCKS; i++)
        keyheap_free(blocks[i]);
}
END_TEST

START_TEST(test_an_ordinary_domain_has_no_secret_memory)
{
    keyheap_domain_t *d = create("ordinary", 0);
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = keyheap_malloc(d, sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(!in_secretmem(p, sizes[i]), "an ordinary block in secret memory");
        sink = p;
    }
    ck_assert_uint_eq(secretmem_mappings(), 0);
}
END_TEST

/* -------------------------------------------------------- RLIMIT_MEMLOCK */

/* Allocates 64 KiB blocks in a new secret domain until one fails; their
 * number, or -1 when none failed, or when one failed with errno other than
 * ENOMEM or a block lost its bytes. */
static int fill(const char *name)
{
    keyheap_domain_t *d = keyheap_domain_create(name, KEYHEAP_SECRETMEM);
    if (d == NULL)
        return -1;
    static char *b[64];
    int n = 0;
    errno = 0;
    while (n < 64 && (b[n] = keyheap_malloc(d, 64 << 10)) != NULL) {
        keyheap_enter(d);
        memset(b[n], n + 1, 64 << 10);
        keyheap_leave(d);
        n++;
    }
    if (n == 64 || errno != ENOMEM)
        return -1;
    keyheap_enter(d);
    for (int i = 0; i < n; i++)
        if (b[i][0] != (char)(i + 1) || b[i][(64 << 10) - 1] != (char)(i + 1))
            return -1;
    keyheap_leave(d);
    /* A freed block's memory serves again. */
    keyheap_free(b[0]);
    char *again = keyheap_malloc(d, 64 << 10);
    if (again == NULL)
        return -1;
    sink = again;
    return keyheap_domain_destroy(d) == 0 ? n : -1;
}

/* Limits locked memory to 1 MiB, with CAP_IPC_LOCK (tests run as root) or
 * without it (*arg), and fills a secret domain until an allocation fails:
 * exit 0 when it failed with ENOMEM (never SIGBUS on a touch) after some
 * succeeded, every earlier block kept its bytes, and after the domain's
 * destroy a new one gets as many blocks again (destroy gave its pages
 * back). */
static void memlock_child(void *arg)
{
    if (!*(bool *)arg) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct c[2];
        if (syscall(SYS_capget, &h, c) != 0)
            _exit(10);
        c[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
        if (syscall(SYS_capset, &h, c) != 0)
            _exit(11);
    }
    struct rlimit rl = {1u << 20, 1u << 20};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        _exit(12);
    int first = fill("locked");
    if (first <= 0)
        _exit(13);
    int second = fill("locked");
    if (second < first - 1 || second > first + 1)
        _exit(14);
    _exit(0);
}

static void expect_memlock_enomem(bool cap_ipc_lock)
{
    const char *err = child_ok(memlock_child, &cap_ipc_lock, NULL);
    ck_assert_msg(strstr(err, "keyheap: KEYHEAP_SECRETMEM domain \"locked\": the kernel refused "
                              "more secret memory") != NULL &&
                      strstr(err, "RLIMIT_MEMLOCK") != NULL,
                  "no hint: %s", err);
    /* One hint, however many failures. */
    ck_assert_ptr_null(strstr(strstr(err, "refused") + 1, "refused"));
}

START_TEST(test_rlimit_memlock_exhaustion_fails_with_enomem_and_a_hint)
{
    expect_memlock_enomem(false);
}
END_TEST

START_TEST(test_rlimit_memlock_binds_with_cap_ipc_lock_too)
{
    /* Linux 6.1 raises SIGBUS at the touch past the limit whatever the
     * capabilities: keyheap's count must stop the allocation first. */
    expect_memlock_enomem(true);
}
END_TEST

/* ------------------------------------------------------------ destroy */

START_TEST(test_destroy_unmaps_the_pages_and_closes_the_file)
{
    unsigned fds = secret_fds(NULL), maps = secretmem_mappings();
    for (unsigned round = 0; round < 30; round++) {
        keyheap_domain_t *d = create("cycled", KEYHEAP_SECRETMEM);
        char *p = keyheap_calloc(d, 1, 100000);
        ck_assert_ptr_nonnull(p);
        keyheap_enter(d);
        for (size_t i = 0; i < 100000; i++)
            KHT_REQUIRE(p[i] == 0, "round %u: calloc byte %zu is %d", round, i, p[i]);
        memset(p, 0x5a, 100000);
        keyheap_leave(d);
        ck_assert_uint_eq(secret_fds(NULL), fds + 1);
        ck_assert_uint_gt(secretmem_mappings(), maps);
        ck_assert_int_eq(keyheap_domain_destroy(d), 0);
        ck_assert_uint_eq(secret_fds(NULL), fds);
        ck_assert_uint_eq(secretmem_mappings(), maps);
    }
}
END_TEST

/* ------------------------------------------- decommitted pages, zeroes */

/* Run as a program of its own (main, --zero-child) with MALLOC_CONF
 * dirty_decay_ms:0: every free of a large block decommits its pages at
 * once, and a calloc that gets them back trusts them to be zeroes. */
static int zero_child(void)
{
    keyheap_domain_t *d = keyheap_domain_create("zeroes", KEYHEAP_SECRETMEM | KEYHEAP_NOSCRUB);
    if (d == NULL)
        return 10;
    for (unsigned round = 0; round < 20; round++) {
        unsigned char *p = keyheap_malloc(d, 1u << 20);
        if (p == NULL || !in_secretmem(p, 1u << 20))
            return 11;
        keyheap_enter(d);
        memset(p, 0xaa, 1u << 20);
        keyheap_leave(d);
        keyheap_free(p);
        unsigned char *q = keyheap_calloc(d, 1, 1u << 20);
        if (q == NULL)
            return 12;
        keyheap_enter(d);
        for (size_t i = 0; i < 1u << 20; i++)
            if (q[i] != 0) {
                fprintf(stderr, "round %u: byte %zu of calloc is %#x\n", round, i, q[i]);
                return 13;
            }
        keyheap_leave(d);
        keyheap_free(q);
    }
    return 0;
}

/* Runs this program again with the one argument mode and extra_env added
 * (jemalloc reads MALLOC_CONF, keyheap KEYHEAP_CONF, at start): its wait
 * status. */
static int run_self(char *mode, char *const extra_env[])
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    char *argv[] = {exe, mode, NULL};
    return kht_run(argv, NULL, extra_env, NULL, NULL, NULL);
}

START_TEST(test_decommitted_secret_pages_come_back_as_zeroes)
{
    char *env[] = {"MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0", NULL};
    int status = run_self("--zero-child", env);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--zero-child: status %#x",
                  status);
}
END_TEST

/* --------------------------------------------------------------- fork */

START_TEST(test_a_fork_child_gets_zeroes_of_its_own_and_the_parent_keeps_its_secret)
{
    keyheap_domain_t *s = create("secret", KEYHEAP_SECRETMEM);
    keyheap_domain_t *o = create("ordinary", 0);
    char *p = put(s, 4000), *q = put(o, 64);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int rc = 0;
        keyheap_enter(s);
        for (size_t i = 0; i < 4000; i++)
            if (p[i] != 0)
                rc = 1; /* the child reads the parent's secret */
        if (!in_secretmem(p, 4000))
            rc = 2;
        memset(p, 'C', 4000); /* must not reach the parent */
        char *more = keyheap_malloc(s, 300000);
        if (more == NULL || !in_secretmem(more, 300000))
            rc = 3;
        else
            memset(more, 'D', 300000);
        keyheap_leave(s);
        /* The twin: an ordinary domain's block is the parent's copy. */
        keyheap_enter(o);
        if (strcmp(q, TEXT) != 0)
            rc = 4;
        keyheap_leave(o);
        _exit(rc);
    }
    wait_ok(pid, "1: it read the secret; 2: not secret memory; 3: no growth; 4: lost the "
                 "ordinary block");
    keyheap_enter(s);
    ck_assert_str_eq(p, TEXT);
    keyheap_leave(s);
}
END_TEST

/* -------------------------------------------------- no memfd_secret */

#define ENOSYS_HINT                                                                                \
    "keyheap: KEYHEAP_SECRETMEM domain \"needs-secretmem\": the kernel has no memfd_secret(2) "    \
    "(Linux 5.14 or later; before 6.5 it needs secretmem.enable=1 on the kernel command "          \
    "line), so the domain is not created (ENOSYS)\n"

/* On a kernel without memfd_secret: a secret domain must not be made (twice:
 * ENOSYS both times, one hint), no descriptor is left behind, and an
 * ordinary one still is (exit 0). */
static void enosys_child_unfiltered(void *arg)
{
    (void)arg;
    unsigned fds = secret_fds(NULL);
    errno = 0;
    if (keyheap_domain_create("needs-secretmem", KEYHEAP_SECRETMEM) != NULL)
        _exit(11);
    if (errno != ENOSYS)
        _exit(12);
    if (keyheap_domain_create("needs-secretmem", KEYHEAP_SECRETMEM) != NULL || errno != ENOSYS)
        _exit(13);
    if (secret_fds(NULL) != fds)
        _exit(14);
    if (keyheap_domain_create("plain", 0) == NULL)
        _exit(15);
    _exit(0);
}

/* The same under a seccomp filter that makes memfd_secret fail with ENOSYS,
 * as on a kernel without it. */
static void enosys_child(void *arg)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_secret, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(10);
    enosys_child_unfiltered(arg);
}

START_TEST(test_without_memfd_secret_creation_fails_with_enosys_and_a_hint)
{
    child_ok(enosys_child, NULL, ENOSYS_HINT);
}
END_TEST

/* ---------------------------------------------- a descriptor taken away */

/* The domain grows past its first extent: a commit of new pages. */
#define GROWTH (4u << 20)
static void *grow(keyheap_domain_t *d)
{
    return keyheap_malloc(d, GROWTH);
}

static void closed_fd_child(void *arg)
{
    bool take_it = *(bool *)arg;
    keyheap_domain_t *d = keyheap_domain_create("secret", KEYHEAP_SECRETMEM);
    if (d == NULL)
        _exit(10);
    char *p = put(d, 64);
    int fd = -1;
    if (secret_fds(&fd) != 1)
        _exit(11);
    char path[] = "/tmp/keyheap-secretmem-XXXXXX";
    int file = mkstemp(path);
    if (file < 0)
        _exit(12);
    unlink(path);
    if (take_it && dup2(file, fd) != fd) /* closes keyheap's, reuses its number */
        _exit(13);
    errno = 0;
    void *big = grow(d);
    struct stat st;
    if (fstat(file, &st) != 0 || st.st_size != 0)
        _exit(14); /* the file must never get the domain's pages */
    keyheap_enter(d);
    if (strcmp(p, TEXT) != 0)
        _exit(15);
    keyheap_leave(d);
    if (take_it)
        _exit(big == NULL && errno == ENOMEM ? 0 : 16);
    _exit(big != NULL && in_secretmem(big, GROWTH) ? 0 : 17);
}

START_TEST(test_a_descriptor_taken_over_by_another_file_stops_growth)
{
    bool take_it = true;
    child_ok(closed_fd_child, &take_it,
             "keyheap: KEYHEAP_SECRETMEM domain \"secret\": the program closed "
             "keyheap's memfd_secret descriptor (or replaced it), so the domain "
             "cannot grow: the allocation fails with ENOMEM\n");
}
END_TEST

START_TEST(test_a_descriptor_left_alone_lets_the_domain_grow)
{
    bool take_it = false;
    child_ok(closed_fd_child, &take_it, "");
}
END_TEST

/* ------------------------------------------------------------- scrub */

START_TEST(test_a_free_from_outside_scrubs_a_secret_block)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    keyheap_domain_t *keep = create("keep", KEYHEAP_SECRETMEM);
    char *p = put(d, 200);
    sink = put(d, 200); /* a neighbour keeps the slab */
    keyheap_free(p);
    keyheap_enter(d);
    for (size_t i = 0; i < sizeof TEXT; i++)
        ck_assert_msg(kht_read(p + i) == 0, "byte %zu of a freed secret block is %#x", i,
                      kht_read(p + i));
    keyheap_leave(d);
    sink = keep;
}
END_TEST

/* ------------------------------------------------- misuse and STRICT */

static void free_it(void *p)
{
    keyheap_free(p);
}

START_TEST(test_a_double_free_in_a_secret_domain_aborts_with_its_message)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    char *p = put(d, 48), *q = put(d, 48);
    keyheap_free(p);
    char want[256];
    snprintf(want, sizeof want, "keyheap: double free of %p in domain \"secret\"\n", (void *)p);
    kht_expect_abort(free_it, p, want);
    snprintf(want, sizeof want, "keyheap: interior-pointer free of %p in domain \"secret\"\n",
             (void *)(q + 16));
    kht_expect_abort(free_it, q + 16, want);
    /* The twin: the live block frees once, and its memory serves again. */
    keyheap_free(q);
    char *again = keyheap_malloc(d, 48);
    ck_assert_ptr_eq(keyheap_domain_of(again), d);
    ck_assert(in_secretmem(again, 48));
    keyheap_free(again);
}
END_TEST

START_TEST(test_a_strict_secret_domain_aborts_on_a_free_from_outside)
{
    keyheap_domain_t *d = create("strict", KEYHEAP_SECRETMEM | KEYHEAP_STRICT);
    char *p = put(d, 64);
    char want[256];
    snprintf(want, sizeof want,
             "keyheap: outside free of %p in domain \"strict\" (KEYHEAP_STRICT: free only "
             "inside the domain)\n",
             (void *)p);
    kht_expect_abort(free_it, p, want);
    /* The twin: freed inside. */
    keyheap_enter(d);
    keyheap_free(p);
    keyheap_leave(d);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* ------------------------------------------------------ the key's side */

static char *fault_block;

START_TEST(test_a_secret_block_reads_inside_its_domain)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    char *p = put(d, 64);
    keyheap_enter(d);
    for (size_t i = 0; i < sizeof TEXT; i++)
        ck_assert_int_eq(kht_read(p + i), (unsigned char)TEXT[i]);
    keyheap_leave(d);
}
END_TEST

START_TEST(test_a_secret_block_faults_outside_its_domain)
{
    keyheap_domain_t *d = create("secret", KEYHEAP_SECRETMEM);
    fault_block = put(d, 64);
    int key = keyheap_domain_pkey(d);
    ck_assert_int_gt(key, 0);
    kht_expect_pku_fault(key);
    kht_read(fault_block);
    ck_abort_msg("read a secret block outside its domain");
}
END_TEST

/* With one key, a and b take turns: each comes back with its secret. */
START_TEST(test_two_secret_domains_share_one_key_and_keep_their_secrets)
{
    setenv("KEYHEAP_CONF", "keys:1", 1);
    keyheap_domain_t *a = create("a", KEYHEAP_SECRETMEM), *b = create("b", KEYHEAP_SECRETMEM);
    char *pa = put(a, 5000), *pb = put(b, 5000);
    for (unsigned round = 0; round < 10; round++) {
        keyheap_domain_t *d = round % 2 ? b : a;
        char *p = round % 2 ? pb : pa;
        keyheap_enter(d);
        ck_assert_str_eq(p, TEXT);
        char *more = keyheap_malloc(d, 70000); /* commits while the other is parked */
        ck_assert_ptr_nonnull(more);
        memset(more, 1, 70000);
        sink = more;
        keyheap_leave(d);
        ck_assert(in_secretmem(p, 5000));
    }
}
END_TEST

START_TEST(test_a_parked_secret_domain_faults_with_accerr)
{
    setenv("KEYHEAP_CONF", "keys:1", 1);
    keyheap_domain_t *a = create("a", KEYHEAP_SECRETMEM), *b = create("b", KEYHEAP_SECRETMEM);
    fault_block = put(a, 64);
    sink = put(b, 64); /* b took the key: a is parked */
    kht_expect_accerr_fault((void *)((uintptr_t)fault_block & ~(uintptr_t)4095));
    kht_read(fault_block);
    ck_abort_msg("read a parked secret domain");
}
END_TEST

/* ------------------------- other threads, signal handlers, the watchdog */

/* What a reader (another thread, a thread made inside, a signal handler)
 * gets: the block of a secret domain this thread is inside meanwhile;
 * enter says whether the reader enters the domain itself (the twin). */
static struct reader {
    keyheap_domain_t *d;
    char *p;
    bool enter;
    pthread_barrier_t inside;
} rd;

/* Reads rd.p: must fault (SEGV_PKUERR on the domain's key) unless the
 * reader entered; the twin checks the bytes. */
static void read_block(void)
{
    if (rd.enter)
        keyheap_enter(rd.d);
    for (size_t i = 0; i < sizeof TEXT; i++)
        KHT_REQUIRE(kht_read(rd.p + i) == (unsigned char)TEXT[i], "byte %zu", i);
    if (rd.enter)
        keyheap_leave(rd.d);
}

static void *reader_thread(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&rd.inside); /* the creator is inside now */
    read_block();
    return NULL;
}

/* The creator enters the secret domain and stays inside while another
 * thread (made before, or made inside when made_inside) reads. */
static void read_from_another_thread(bool enter, bool made_inside)
{
    rd = (struct reader){create("secret", KEYHEAP_SECRETMEM), NULL, enter};
    rd.p = put(rd.d, 64);
    kht_expect_pku_fault(keyheap_domain_pkey(rd.d));
    pthread_barrier_init(&rd.inside, NULL, 2);
    pthread_t t;
    if (!made_inside)
        ck_assert_int_eq(pthread_create(&t, NULL, reader_thread, NULL), 0);
    keyheap_enter(rd.d);
    if (made_inside)
        ck_assert_int_eq(pthread_create(&t, NULL, reader_thread, NULL), 0);
    pthread_barrier_wait(&rd.inside);
    pthread_join(t, NULL);
    keyheap_leave(rd.d);
}

START_TEST(test_another_thread_cannot_read_a_secret_block_while_this_one_is_inside)
{
    read_from_another_thread(false, false);
    ck_abort_msg("another thread read the secret block");
}
END_TEST

START_TEST(test_another_thread_that_enters_reads_a_secret_block)
{
    read_from_another_thread(true, false);
}
END_TEST

START_TEST(test_a_thread_made_inside_a_secret_domain_starts_closed)
{
    read_from_another_thread(false, true);
    ck_abort_msg("a thread made inside read the secret block");
}
END_TEST

START_TEST(test_a_thread_made_inside_a_secret_domain_reads_once_it_enters)
{
    read_from_another_thread(true, true);
}
END_TEST

static void on_usr1(int sig)
{
    (void)sig;
    read_block();
}

/* A signal handler interrupting code inside the secret domain reads. */
static void read_in_a_handler(bool enter)
{
    rd = (struct reader){create("secret", KEYHEAP_SECRETMEM), NULL, enter};
    rd.p = put(rd.d, 64);
    kht_expect_pku_fault(keyheap_domain_pkey(rd.d));
    struct sigaction sa = {.sa_handler = on_usr1};
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    keyheap_enter(rd.d);
    raise(SIGUSR1);
    ck_assert_str_eq(rd.p, TEXT); /* the interrupted code is still inside */
    keyheap_leave(rd.d);
}

START_TEST(test_a_signal_handler_cannot_read_a_secret_block_the_interrupted_code_entered)
{
    read_in_a_handler(false);
    ck_abort_msg("a signal handler read the secret block");
}
END_TEST

START_TEST(test_a_signal_handler_that_enters_reads_a_secret_block)
{
    read_in_a_handler(true);
}
END_TEST

/* Run as a program of its own (main, --watchdog-child) with KEYHEAP_CONF
 * watchdog:1 and MALLOC_CONF dirty_decay_ms:0: three threads, released
 * together by a barrier, and a short-lived thread per round each, fill
 * blocks of two secret domains inside, free them from outside (every free
 * of a large block decommits at once: the zeroing runs in a thread that
 * has not entered, with keyheap's own key open while the watchdog closes
 * what threads must not have open), and check that calloc gets zeroes and
 * every live block keeps its bytes.  Exit 0 when all held. */
#define WATCHED_ROUNDS 25
#define WATCHED_BLOCK (256u << 10)
static keyheap_domain_t *watched[2];
static pthread_barrier_t watched_start;
static int watched_bad;

static void *watched_round(void *arg)
{
    unsigned n = (unsigned)(uintptr_t)arg;
    keyheap_domain_t *d = watched[n % 2];
    unsigned char *keep = keyheap_malloc(d, 64), *big = keyheap_malloc(d, WATCHED_BLOCK);
    if (keep == NULL || big == NULL)
        return (void *)1;
    keyheap_enter(d);
    memset(keep, (int)(n & 0xff), 64);
    memset(big, 0xaa, WATCHED_BLOCK);
    keyheap_leave(d);
    keyheap_free(big); /* from outside: decommit and zeroing here */
    unsigned char *z = keyheap_calloc(d, 1, WATCHED_BLOCK);
    if (z == NULL)
        return (void *)2;
    keyheap_enter(d);
    bool ok = keep[0] == (unsigned char)n && keep[63] == (unsigned char)n;
    for (size_t i = 0; i < WATCHED_BLOCK && ok; i += 512)
        ok = z[i] == 0;
    keyheap_leave(d);
    keyheap_free(z);
    keyheap_free(keep);
    return ok ? NULL : (void *)3;
}

static void *watched_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    pthread_barrier_wait(&watched_start);
    for (unsigned r = 0; r < WATCHED_ROUNDS; r++) {
        void *rc = watched_round((void *)(uintptr_t)(id * 1000 + r));
        pthread_t t; /* and a thread that starts, does the same, and exits */
        void *trc = (void *)4;
        if (pthread_create(&t, NULL, watched_round, (void *)(uintptr_t)(id * 1000 + r + 500)) == 0)
            pthread_join(t, &trc);
        if (rc != NULL || trc != NULL)
            __atomic_store_n(&watched_bad, (int)(uintptr_t)(rc != NULL ? rc : trc),
                             __ATOMIC_RELAXED);
    }
    return NULL;
}

static int watchdog_child(void)
{
    watched[0] = keyheap_domain_create("watched-a", KEYHEAP_SECRETMEM | KEYHEAP_NOSCRUB);
    watched[1] = keyheap_domain_create("watched-b", KEYHEAP_SECRETMEM | KEYHEAP_NOSCRUB);
    if (watched[0] == NULL || watched[1] == NULL)
        return 10;
    pthread_barrier_init(&watched_start, NULL, 3);
    pthread_t t[3];
    for (unsigned i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, watched_thread, (void *)(uintptr_t)(i + 1)) != 0)
            return 11;
    for (unsigned i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    return watched_bad != 0 ? 20 + watched_bad : 0;
}

START_TEST(test_threads_on_secret_domains_under_a_1ms_watchdog_keep_every_byte)
{
    char *env[] = {"MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0", "KEYHEAP_CONF=watchdog:1",
                   NULL};
    int status = run_self("--watchdog-child", env);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "--watchdog-child: status %#x (21: allocation failed; 22: calloc failed; 23: "
                  "a block lost its bytes or calloc was not zero; 24: no thread)",
                  status);
}
END_TEST

static Suite *suite(bool kernel_only)
{
    Suite *s = suite_create("secretmem");
    TCase *k = tcase_create("kernel");
    tcase_set_timeout(k, 120);
    tcase_add_test(k, test_proc_self_mem_cannot_read_or_write_a_secret_block);
    tcase_add_test(k, test_proc_self_mem_reads_and_writes_an_ordinary_block);
    tcase_add_test(k, test_process_vm_readv_from_a_child_fails_on_a_secret_block);
    tcase_add_test(k, test_process_vm_readv_from_a_child_reads_an_ordinary_block);
    tcase_add_test(k, test_every_block_lies_in_secret_memory_through_growth);
    tcase_add_test(k, test_an_ordinary_domain_has_no_secret_memory);
    tcase_add_test(k, test_rlimit_memlock_exhaustion_fails_with_enomem_and_a_hint);
    tcase_add_test(k, test_rlimit_memlock_binds_with_cap_ipc_lock_too);
    tcase_add_test(k, test_destroy_unmaps_the_pages_and_closes_the_file);
    tcase_add_test(k, test_decommitted_secret_pages_come_back_as_zeroes);
    tcase_add_test(k, test_a_fork_child_gets_zeroes_of_its_own_and_the_parent_keeps_its_secret);
    tcase_add_test(k, test_without_memfd_secret_creation_fails_with_enosys_and_a_hint);
    tcase_add_test(k, test_a_descriptor_taken_over_by_another_file_stops_growth);
    tcase_add_test(k, test_a_descriptor_left_alone_lets_the_domain_grow);
    tcase_add_test(k, test_a_free_from_outside_scrubs_a_secret_block);
    tcase_add_test(k, test_a_double_free_in_a_secret_domain_aborts_with_its_message);
    tcase_add_test(k, test_a_strict_secret_domain_aborts_on_a_free_from_outside);
    suite_add_tcase(s, k);
    if (kernel_only)
        return s;
    TCase *keys = tcase_create("keys");
    tcase_set_timeout(keys, 120);
    tcase_add_test(keys, test_a_secret_block_reads_inside_its_domain);
    tcase_add_exit_test(keys, test_a_secret_block_faults_outside_its_domain, KHT_EXIT_PKU_FAULT);
    tcase_add_test(keys, test_two_secret_domains_share_one_key_and_keep_their_secrets);
    tcase_add_exit_test(keys, test_a_parked_secret_domain_faults_with_accerr,
                        KHT_EXIT_ACCERR_FAULT);
    tcase_add_exit_test(keys,
                        test_another_thread_cannot_read_a_secret_block_while_this_one_is_inside,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(keys, test_another_thread_that_enters_reads_a_secret_block);
    tcase_add_exit_test(keys, test_a_thread_made_inside_a_secret_domain_starts_closed,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(keys, test_a_thread_made_inside_a_secret_domain_reads_once_it_enters);
    tcase_add_exit_test(
        keys, test_a_signal_handler_cannot_read_a_secret_block_the_interrupted_code_entered,
        KHT_EXIT_PKU_FAULT);
    tcase_add_test(keys, test_a_signal_handler_that_enters_reads_a_secret_block);
    tcase_add_test(keys, test_threads_on_secret_domains_under_a_1ms_watchdog_keep_every_byte);
    suite_add_tcase(s, keys);
    return s;
}

/* ----------------------------------------- a kernel without memfd_secret */

START_TEST(test_this_kernel_has_no_memfd_secret_and_creation_says_so)
{
    /* tests/secretmem-native.sh on a kernel without memfd_secret (Debian
     * 12's 6.1 unless booted with secretmem.enable=1): the defined answer,
     * on the real thing rather than under a seccomp filter. */
    child_ok(enosys_child_unfiltered, NULL, ENOSYS_HINT);
}
END_TEST

static bool kernel_has_memfd_secret(void)
{
    int fd = (int)syscall(SYS_memfd_secret, 0);
    if (fd >= 0)
        close(fd);
    return fd >= 0 || errno != ENOSYS;
}

static Suite *suite_without_memfd_secret(void)
{
    Suite *s = suite_create("secretmem");
    TCase *k = tcase_create("absent");
    tcase_add_test(k, test_this_kernel_has_no_memfd_secret_and_creation_says_so);
    suite_add_tcase(s, k);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--zero-child") == 0)
        return zero_child();
    if (argc == 2 && strcmp(argv[1], "--watchdog-child") == 0)
        return watchdog_child();
    bool kernel_only = argc == 2 && strcmp(argv[1], "--kernel") == 0;
    if (!kernel_has_memfd_secret()) {
        if (kernel_only) {
            /* tests/secretmem-native.sh: this kernel's own answer. */
            puts("keyheap: check_secretmem: this kernel has no memfd_secret(2): checking that "
                 "KEYHEAP_SECRETMEM domains fail with ENOSYS here; everything else runs in "
                 "tools/pku-run's QEMU machine (tests/check_secretmem.pku)");
            return kht_main(suite_without_memfd_secret());
        }
        /* Run through pku-run natively on a CPU with PKU, on a kernel
         * without memfd_secret: everything goes to the QEMU machine, whose
         * kernel has it, as a CPU without PKU would. */
        const char *src = getenv("KEYHEAP_SRCDIR");
        if (src == NULL || getenv("KEYHEAP_SECRETMEM_QEMU") != NULL) {
            puts("keyheap: check_secretmem: this kernel has no memfd_secret(2), and "
                 "KEYHEAP_SRCDIR does not say where tools/pku-run is (or QEMU's kernel lacks "
                 "it too)");
            return 1;
        }
        char runner[4096], exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return 1;
        exe[n] = '\0';
        snprintf(runner, sizeof runner, "%s/tools/pku-run", src);
        puts("keyheap: check_secretmem: this kernel has no memfd_secret(2): running in "
             "tools/pku-run's QEMU machine (its kernel boots with secretmem.enable=1)");
        fflush(stdout);
        setenv("KEYHEAP_PKU_RUNNER", "qemu", 1);
        setenv("KEYHEAP_SECRETMEM_QEMU", "1", 1);
        execl("/bin/bash", "bash", runner, exe, (char *)NULL);
        perror("keyheap: check_secretmem: bash tools/pku-run");
        return 1;
    }
    /* --kernel: only the kernel's side (tests/secretmem-native.sh, on a
     * machine that may lack PKU); otherwise everything (through pku-run). */
    return kht_main(suite(kernel_only));
}
