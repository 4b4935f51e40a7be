/*
 * tests/check_fault.c - the fault report (domains/fault.c).
 *
 * Runs through tools/pku-run (natively on a CPU with PKU, otherwise in a
 * QEMU machine that emulates it).
 *
 * Each fault test forks a child with its stderr on a pipe.  The child makes
 * a domain, tells the parent its thread id, the address it will touch and
 * the key it expects (through a second pipe), and makes the access.  The
 * parent reads the child's stderr and its wait status: a fault must kill
 * the child with SIGSEGV (or reach the handler that was there before) and
 * print exactly the expected lines.
 *
 * Every must-fault child installs a witness on SIGSEGV after its domain
 * exists (so on top of keyheap's handler, which it then calls, as a
 * program's own handler would).  The witness prints what the kernel
 * reported, and the parent accepts only SEGV_PKUERR on the expected key at
 * the expected address (SEGV_MAPERR at NULL for the NULL dereference).
 * keyheap's handler, called by the witness, sees exactly the kernel's
 * siginfo and context and finds SIG_DFL as its previous action, so it takes
 * the path it takes in a program without handlers.  Every must-fault test
 * has a twin that makes the same access where it is allowed and must not
 * fault.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/keyheap.h"
#include "tests/khfault.h"
#include "tests/khtest.h"

/* Exit codes of fault children. */
enum {
    EXIT_CHILD_FAILED = 70,      /* setting up the child failed (its stderr says how) */
    EXIT_PRIOR_HANDLER = 57,     /* the prior handler saw the expected fault */
    EXIT_PRIOR_WRONG_FAULT = 58, /* the prior handler saw another fault */
    EXIT_PRIOR_WRONG_MASK = 59,  /* the prior handler ran with the wrong signal mask */
};

/* What a child tells its parent right before the access under test. */
struct facts {
    long tid;
    uintptr_t addr;
    int key;
};

/* What the parent learnt about a child. */
struct outcome {
    int status;
    bool told;
    struct facts facts;
    char err[8192];
};

/* Every line keyheap prints starts with this. */
#define KEYHEAP_PREFIX "keyheap: "

static void *(*volatile v_malloc)(size_t) = malloc;

/* ------------------------------------------------- in the child: helpers */

static int facts_fd = -1;

static void child_fail(const char *what)
{
    ssize_t unused = write(STDERR_FILENO, what, strlen(what));
    unused = write(STDERR_FILENO, "\n", 1);
    (void)unused;
    _exit(EXIT_CHILD_FAILED);
}

static long this_tid(void)
{
    return (long)syscall(SYS_gettid);
}

/* Tells the parent this thread, the address the access goes to and the
 * key the fault must carry. */
static void tell(const void *addr, int key)
{
    struct facts f = {.tid = this_tid(), .addr = (uintptr_t)addr, .key = key};
    if (write(facts_fd, &f, sizeof f) != (ssize_t)sizeof f)
        child_fail("child: cannot write to the facts pipe");
}

/* A domain with a hardware key, or a failed child. */
static keyheap_domain_t *domain(const char *name)
{
    keyheap_domain_t *d = keyheap_domain_create(name, 0);
    if (d == NULL)
        child_fail("child: keyheap_domain_create failed");
    if (keyheap_domain_pkey(d) <= 0)
        child_fail("child: the domain has no hardware key: run this test through tools/pku-run");
    return d;
}

/* A 64-byte block of d, made from inside d. */
static unsigned char *secret(keyheap_domain_t *d)
{
    keyheap_enter(d);
    unsigned char *p = v_malloc(64);
    if (p == NULL)
        child_fail("child: malloc inside the domain failed");
    memset(p, 0x5a, 64);
    keyheap_leave(d);
    return p;
}

/* Async-signal-safe formatting for the handlers below. */
static char *put_str(char *p, const char *s)
{
    while (*s != '\0')
        *p++ = *s++;
    return p;
}

static char *put_num(char *p, unsigned long v, unsigned base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    if (base == 16)
        p = put_str(p, "0x");
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* ----------------------------------------------------------- the witness */

static struct sigaction witness_next;

/* Prints "witness: code <si_code> [pkey <si_pkey>] addr <si_addr>" and
 * passes the signal on to the action it replaced, as a program's own
 * chaining handler does. */
static void witness(int sig, siginfo_t *si, void *uc)
{
    char line[128], *p = line;
    p = put_str(p, "witness: code ");
    p = put_num(p, (unsigned long)si->si_code, 10);
    if (si->si_code == SEGV_PKUERR) {
        p = put_str(p, " pkey ");
        p = put_num(p, (unsigned long)si->si_pkey, 10);
    }
    p = put_str(p, " addr ");
    p = put_num(p, (unsigned long)si->si_addr, 16);
    *p++ = '\n';
    ssize_t unused = write(STDERR_FILENO, line, (size_t)(p - line));
    (void)unused;
    if (witness_next.sa_handler == SIG_DFL || witness_next.sa_handler == SIG_IGN)
        signal(sig, SIG_DFL); /* returning re-runs the access, which kills */
    else if (witness_next.sa_flags & SA_SIGINFO)
        witness_next.sa_sigaction(sig, si, uc);
    else
        witness_next.sa_handler(sig);
}

static void witness_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = witness;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &witness_next) != 0)
        child_fail("child: cannot install the witness");
}

/* ---------------------------------------------------- in the parent */

/* KEYHEAP_CONF as the environment has it, with option appended (the last
 * occurrence of a key wins), so options given to make check still apply. */
static void conf_append(const char *option)
{
    const char *old = getenv("KEYHEAP_CONF");
    char conf[512];
    snprintf(conf, sizeof conf, "%s%s%s", old != NULL ? old : "",
             old != NULL && old[0] != '\0' ? "," : "", option);
    setenv("KEYHEAP_CONF", conf, 1);
}

/* Reads fd to its end into buf (at most cap bytes); returns the length. */
static size_t read_all(int fd, void *buf, size_t cap)
{
    size_t n = 0;
    ssize_t got;
    while (n < cap && (got = read(fd, (char *)buf + n, cap - n)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        ck_assert_msg(got > 0, "read from a child's pipe: %s", strerror(errno));
        n += (size_t)got;
    }
    return n;
}

/* Runs body in a child with KEYHEAP_CONF extended by option
 * ("fault_report:true" or "fault_report:false": the tests do not depend on
 * what make check was given) and SIGSEGV at its default; fills *o. */
static void run_child(void (*body)(void), const char *option, struct outcome *o)
{
    int err[2], info[2];
    ck_assert_int_eq(pipe(err), 0);
    ck_assert_int_eq(pipe(info), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        close(err[0]), close(err[1]), close(info[0]);
        facts_fd = info[1];
        signal(SIGSEGV, SIG_DFL);
        conf_append(option);
        body();
        _exit(0);
    }
    close(err[1]), close(info[1]);
    size_t n = read_all(err[0], o->err, sizeof o->err - 1);
    o->err[n] = '\0';
    o->told = read_all(info[0], &o->facts, sizeof o->facts) == sizeof o->facts;
    close(err[0]), close(info[0]);
    ck_assert_int_eq(waitpid(pid, &o->status, 0), pid);
}

static void expect_sigsegv_death(const struct outcome *o)
{
    ck_assert_msg(WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGSEGV,
                  "the child did not die by SIGSEGV: status %#x, stderr: %s", o->status, o->err);
    ck_assert_msg(o->told, "the child never reached the access; stderr: %s", o->err);
}

static void expect_clean_exit(const struct outcome *o)
{
    ck_assert_msg(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0,
                  "the child did not exit 0: status %#x, stderr: %s", o->status, o->err);
    ck_assert_msg(o->err[0] == '\0', "the child printed: %s", o->err);
}

/* The witness's line for a SEGV_PKUERR on the key and address o was told. */
static void witness_pkuerr_line(char *buf, size_t cap, const struct outcome *o)
{
    snprintf(buf, cap, "witness: code %d pkey %d addr 0x%lx\n", SEGV_PKUERR, o->facts.key,
             (unsigned long)o->facts.addr);
}

/*
 * Checks that report is exactly the report of a fault that o's child told
 * about: its thread, access ("read" or "write"), address, domain name and
 * key, an instruction address inside fn (the out-of-line access helper),
 * and the open domains.  Returns the length of the line.
 */
static size_t expect_report(const char *report, const struct outcome *o, const char *access,
                            const char *name, const void *fn, const char *open)
{
    const char *nl = strchr(report, '\n');
    ck_assert_msg(nl != NULL, "no report line in: \"%s\"", report);
    const char *at = strstr(report, " at ip 0x");
    ck_assert_msg(at != NULL && at < nl, "no \" at ip \" in the report: %s", report);
    uintptr_t ip = (uintptr_t)strtoul(at + 7, NULL, 16);
    ck_assert_msg(ip >= (uintptr_t)fn && ip < (uintptr_t)fn + 64,
                  "ip %#lx is not in the access helper at %p; report: %s", (unsigned long)ip, fn,
                  report);
    char expected[1024];
    snprintf(expected, sizeof expected,
             KEYHEAP_PREFIX "protection-key fault: thread %ld %s of 0x%lx in domain \"%s\" "
                            "(pkey %d) at ip 0x%lx; open: %s\n",
             o->facts.tid, access, (unsigned long)o->facts.addr, name, o->facts.key,
             (unsigned long)ip, open);
    size_t len = (size_t)(nl - report) + 1;
    ck_assert_msg(strlen(expected) == len && memcmp(report, expected, len) == 0,
                  "report:   %.*sexpected: %s", (int)len, report, expected);
    return len;
}

/* stderr must be the witness's SEGV_PKUERR line, then one report. */
static void expect_witness_then_report(const struct outcome *o, const char *access,
                                       const char *name, const void *fn, const char *open)
{
    char w[128];
    witness_pkuerr_line(w, sizeof w, o);
    size_t wlen = strlen(w);
    ck_assert_msg(strncmp(o->err, w, wlen) == 0, "stderr does not start with \"%s\": %s", w,
                  o->err);
    size_t rlen = expect_report(o->err + wlen, o, access, name, fn, open);
    ck_assert_msg(o->err[wlen + rlen] == '\0', "more than one report: %s", o->err);
}

/* ------------------------------------------- reads and writes of a domain */

static void child_reads_from_outside(void)
{
    keyheap_domain_t *d = domain("fault-read");
    unsigned char *p = secret(d);
    witness_install();
    tell(p + 8, keyheap_domain_pkey(d));
    kht_read(p + 8);
    child_fail("child: the read did not fault");
}

START_TEST(test_read_from_outside_dies_by_sigsegv_after_one_report_naming_the_domain)
{
    struct outcome o;
    run_child(child_reads_from_outside, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "read", "fault-read", (const void *)kht_read, "none");
}
END_TEST

static void child_reads_from_inside(void)
{
    keyheap_domain_t *d = domain("fault-read");
    unsigned char *p = secret(d);
    witness_install();
    tell(p + 8, keyheap_domain_pkey(d));
    keyheap_enter(d);
    if (kht_read(p + 8) != 0x5a)
        child_fail("child: the block lost its contents");
    keyheap_leave(d);
}

START_TEST(test_read_from_inside_works_and_reports_nothing)
{
    struct outcome o;
    run_child(child_reads_from_inside, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

static void child_writes_in_read_only_enter(void)
{
    keyheap_domain_t *d = domain("fault-ro");
    unsigned char *p = secret(d);
    witness_install();
    keyheap_enter_ro(d);
    if (kht_read(p) != 0x5a)
        child_fail("child: the read-only enter cannot read");
    tell(p, keyheap_domain_pkey(d));
    kht_write(p, 1);
    child_fail("child: the write did not fault");
}

START_TEST(test_write_in_read_only_enter_reports_write_and_the_open_read_only_domain)
{
    struct outcome o;
    run_child(child_writes_in_read_only_enter, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "write", "fault-ro", (const void *)kht_write, "\"fault-ro\" ro");
}
END_TEST

static void child_writes_in_read_write_enter(void)
{
    keyheap_domain_t *d = domain("fault-ro");
    unsigned char *p = secret(d);
    witness_install();
    keyheap_enter(d);
    tell(p, keyheap_domain_pkey(d));
    kht_write(p, 1);
    if (kht_read(p) != 1)
        child_fail("child: the write did not land");
    keyheap_leave(d);
}

START_TEST(test_write_in_read_write_enter_works_and_reports_nothing)
{
    struct outcome o;
    run_child(child_writes_in_read_write_enter, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

/* The open list names every domain on the thread's stack, outermost first,
 * with its rights: here a read-write one around the read-only one. */
static void child_writes_in_nested_read_only_enter(void)
{
    keyheap_domain_t *outer = domain("fault-outer");
    keyheap_domain_t *d = domain("fault-ro");
    unsigned char *p = secret(d);
    witness_install();
    keyheap_enter(outer);
    keyheap_enter_ro(d);
    tell(p, keyheap_domain_pkey(d));
    kht_write(p, 1);
    child_fail("child: the write did not fault");
}

START_TEST(test_report_lists_every_open_domain_outermost_first_with_its_rights)
{
    struct outcome o;
    run_child(child_writes_in_nested_read_only_enter, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "write", "fault-ro", (const void *)kht_write,
                               "\"fault-outer\" rw, \"fault-ro\" ro");
}
END_TEST

/* --------------------------------- the open list is what the hardware had */

/* The tail of a report whose PKRU differs from the domain stack. */
#define DIFFERS                                                                                    \
    " (PKRU differs from the domain stack: a signal handler, which runs with every domain "        \
    "closed, or PKRU changed outside keyheap)"

/* What the SIGUSR1 handler below reads, and whether it enters the block's
 * domain first. */
static keyheap_domain_t *handler_domain;
static unsigned char *handler_block;
static bool handler_enters;

static void on_usr1_read(int sig)
{
    (void)sig;
    if (handler_enters)
        keyheap_enter(handler_domain);
    tell(handler_block, keyheap_domain_pkey(handler_domain));
    if (kht_read(handler_block) != 0x5a)
        child_fail("child: the handler read the wrong byte");
    if (handler_enters)
        keyheap_leave(handler_domain);
}

/* Enters "app", and raises SIGUSR1 there; the handler reads block, of
 * "app" itself (own) or of "other", and enters its domain first (enters). */
static void signal_in_app(bool own, bool enters)
{
    keyheap_domain_t *app = domain("app");
    keyheap_domain_t *other = domain("other");
    unsigned char *a = secret(app), *o = secret(other);
    handler_domain = own ? app : other;
    handler_block = (own ? a : o) + 4;
    handler_enters = enters;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_read;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        child_fail("child: cannot install the SIGUSR1 handler");
    witness_install();
    keyheap_enter(app);
    raise(SIGUSR1);
    if (kht_read(a) != 0x5a)
        child_fail("child: \"app\" is not open again after the handler");
    keyheap_leave(app);
    if (!enters)
        child_fail("child: the read in the handler did not fault");
}

static void child_signal_handler_reads_other_domain(void)
{
    signal_in_app(false, false);
}

START_TEST(test_fault_in_signal_handler_reports_none_open_and_the_entered_domains)
{
    struct outcome o;
    run_child(child_signal_handler_reads_other_domain, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "read", "other", (const void *)kht_read,
                               "none; entered: \"app\" rw" DIFFERS);
}
END_TEST

static void child_signal_handler_enters_other_domain_and_reads(void)
{
    signal_in_app(false, true);
}

START_TEST(test_signal_handler_that_enters_the_other_domain_reads_it_and_reports_nothing)
{
    struct outcome o;
    run_child(child_signal_handler_enters_other_domain_and_reads, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

static void child_signal_handler_reads_entered_domain(void)
{
    signal_in_app(true, false);
}

START_TEST(test_fault_in_signal_handler_on_the_interrupted_codes_domain_reports_none_open)
{
    struct outcome o;
    run_child(child_signal_handler_reads_entered_domain, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "read", "app", (const void *)kht_read,
                               "none; entered: \"app\" rw" DIFFERS);
}
END_TEST

static void child_signal_handler_enters_entered_domain_and_reads(void)
{
    signal_in_app(true, true);
}

START_TEST(test_signal_handler_that_enters_the_interrupted_codes_domain_reads_it)
{
    struct outcome o;
    run_child(child_signal_handler_enters_entered_domain_and_reads, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

static void wrpkru(unsigned pkru)
{
    __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(pkru), "c"(0), "d"(0) : "memory");
}

/*
 * Opens "by-hand" with a WRPKRU of its own (read-only when ro), behind
 * keyheap's back, optionally from inside "app" (inside), and reads a block
 * of "target" (or, when twin, of "by-hand"). The domains are made in the
 * order app, by-hand, target, so the hardware's list (slot order) is
 * "app", "by-hand".
 */
static void read_after_opening_by_hand(bool ro, bool inside, bool twin)
{
    keyheap_domain_t *app = domain("app");
    keyheap_domain_t *by_hand = domain("by-hand");
    keyheap_domain_t *target = domain("target");
    unsigned char *h = secret(by_hand), *t = secret(target);
    (void)secret(app);
    witness_install();
    if (inside)
        keyheap_enter(app);
    int key = keyheap_domain_pkey(by_hand);
    unsigned bits = 3u << (2 * key);
    wrpkru((kht_pkru() & ~bits) | (ro ? 2u << (2 * key) : 0u));
    unsigned char *p = twin ? h + 2 : t + 2;
    tell(p, keyheap_domain_pkey(twin ? by_hand : target));
    if (kht_read(p) != 0x5a)
        child_fail("child: the read gave the wrong byte");
    if (!twin)
        child_fail("child: the read of \"target\" did not fault");
}

static void child_opens_by_hand_and_reads_target(void)
{
    read_after_opening_by_hand(false, false, false);
}

START_TEST(test_fault_after_pkru_opened_by_hand_lists_the_domain_the_hardware_had_open)
{
    struct outcome o;
    run_child(child_opens_by_hand_and_reads_target, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "read", "target", (const void *)kht_read,
                               "\"by-hand\" rw; entered: none" DIFFERS);
}
END_TEST

static void child_opens_by_hand_and_reads_it(void)
{
    read_after_opening_by_hand(false, false, true);
}

START_TEST(test_read_of_domain_opened_by_hand_works_and_reports_nothing)
{
    struct outcome o;
    run_child(child_opens_by_hand_and_reads_it, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

static void child_inside_app_opens_by_hand_read_only_and_reads_target(void)
{
    read_after_opening_by_hand(true, true, false);
}

START_TEST(test_fault_after_pkru_opened_by_hand_inside_a_domain_lists_both_in_slot_order)
{
    struct outcome o;
    run_child(child_inside_app_opens_by_hand_read_only_and_reads_target, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    expect_witness_then_report(&o, "read", "target", (const void *)kht_read,
                               "\"app\" rw, \"by-hand\" ro; entered: \"app\" rw" DIFFERS);
}
END_TEST

static void child_inside_app_opens_by_hand_read_only_and_reads_it(void)
{
    read_after_opening_by_hand(true, true, true);
}

START_TEST(test_read_of_domain_opened_read_only_by_hand_inside_a_domain_works)
{
    struct outcome o;
    run_child(child_inside_app_opens_by_hand_read_only_and_reads_it, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

/* -------------------------------------------------- fault_report:false */

START_TEST(test_fault_report_false_still_dies_by_sigsegv_and_prints_no_report)
{
    struct outcome o;
    run_child(child_reads_from_outside, "fault_report:false", &o);
    expect_sigsegv_death(&o);
    char w[128];
    witness_pkuerr_line(w, sizeof w, &o);
    ck_assert_str_eq(o.err, w);
}
END_TEST

START_TEST(test_fault_report_false_read_from_inside_works)
{
    struct outcome o;
    run_child(child_reads_from_inside, "fault_report:false", &o);
    expect_clean_exit(&o);
}
END_TEST

/* ----------------------------------------------- faults that are not ours */

static void child_dereferences_null(void)
{
    keyheap_domain_t *d = domain("fault-null");
    (void)d;
    witness_install();
    tell(NULL, 0);
    kht_read(NULL);
    child_fail("child: reading NULL did not fault");
}

START_TEST(test_null_dereference_after_a_domain_exists_dies_by_sigsegv_unreported)
{
    struct outcome o;
    run_child(child_dereferences_null, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    char w[128];
    snprintf(w, sizeof w, "witness: code %d addr 0x0\n", SEGV_MAPERR);
    ck_assert_str_eq(o.err, w);
}
END_TEST

static void child_reads_default_heap(void)
{
    keyheap_domain_t *d = domain("fault-null");
    (void)d;
    witness_install();
    unsigned char *p = v_malloc(16);
    if (p == NULL)
        child_fail("child: malloc failed");
    p[3] = 9;
    tell(p + 3, 0);
    if (kht_read(p + 3) != 9)
        child_fail("child: the default heap lost a byte");
    free(p);
}

START_TEST(test_read_of_default_heap_after_a_domain_exists_works)
{
    struct outcome o;
    run_child(child_reads_default_heap, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

/* A page tagged with a key the test allocates itself, as another library
 * would; keyheap does not know the key.  With open false the key is then
 * closed in this thread (pkey_set: glibc's WRPKRU). */
static unsigned char *foreign_page(int *key, bool open)
{
    domain("fault-other"); /* keyheap's handler is installed */
    *key = pkey_alloc(0, 0);
    if (*key <= 0)
        child_fail("child: pkey_alloc for the foreign key failed");
    unsigned char *page =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED || pkey_mprotect(page, 4096, PROT_READ | PROT_WRITE, *key) != 0)
        child_fail("child: cannot tag a page with the foreign key");
    page[5] = 3;
    if (!open && pkey_set(*key, PKEY_DISABLE_ACCESS) != 0)
        child_fail("child: pkey_set failed");
    return page;
}

static void child_reads_foreign_key_closed(void)
{
    int key;
    unsigned char *page = foreign_page(&key, false);
    witness_install();
    tell(page + 5, key);
    kht_read(page + 5);
    child_fail("child: the read of a closed foreign key did not fault");
}

START_TEST(test_fault_on_another_librarys_key_dies_by_sigsegv_unreported)
{
    struct outcome o;
    run_child(child_reads_foreign_key_closed, "fault_report:true", &o);
    expect_sigsegv_death(&o);
    char w[128];
    witness_pkuerr_line(w, sizeof w, &o);
    ck_assert_str_eq(o.err, w);
}
END_TEST

static void child_reads_foreign_key_open(void)
{
    int key;
    unsigned char *page = foreign_page(&key, true);
    witness_install();
    tell(page + 5, key);
    if (kht_read(page + 5) != 3)
        child_fail("child: the foreign page lost a byte");
}

START_TEST(test_read_of_another_librarys_open_key_works)
{
    struct outcome o;
    run_child(child_reads_foreign_key_open, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

/* ----------------------------------------------- the handler before keyheap */

static int prior_key;
static const void *prior_addr;

/* Installed before the first domain: keyheap's handler must call it after
 * the report with the kernel's siginfo and the mask it asked for (its
 * sa_mask, SIGUSR1, and SIGSEGV; not SIGUSR2). */
static void prior_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    if (si->si_code != SEGV_PKUERR || (int)si->si_pkey != prior_key || si->si_addr != prior_addr) {
        ssize_t unused = write(STDERR_FILENO, "prior handler: wrong fault\n", 27);
        (void)unused;
        _exit(EXIT_PRIOR_WRONG_FAULT);
    }
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    if (!sigismember(&now, SIGUSR1) || !sigismember(&now, SIGSEGV) || sigismember(&now, SIGUSR2)) {
        ssize_t unused = write(STDERR_FILENO, "prior handler: wrong mask\n", 26);
        (void)unused;
        _exit(EXIT_PRIOR_WRONG_MASK);
    }
    ssize_t unused = write(STDERR_FILENO, "prior handler: called\n", 22);
    (void)unused;
    _exit(EXIT_PRIOR_HANDLER);
}

static keyheap_domain_t *prior_setup(unsigned char **p)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = prior_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        child_fail("child: cannot install the prior handler");
    keyheap_domain_t *d = domain("fault-chain");
    *p = secret(d);
    prior_key = keyheap_domain_pkey(d);
    prior_addr = *p + 1;
    return d;
}

static void child_with_prior_handler_reads_from_outside(void)
{
    unsigned char *p;
    keyheap_domain_t *d = prior_setup(&p);
    tell(p + 1, keyheap_domain_pkey(d));
    kht_read(p + 1);
    child_fail("child: the read did not fault");
}

START_TEST(test_handler_installed_before_first_domain_is_called_after_the_report)
{
    struct outcome o;
    run_child(child_with_prior_handler_reads_from_outside, "fault_report:true", &o);
    ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == EXIT_PRIOR_HANDLER,
                  "the prior handler did not exit %d: status %#x, stderr: %s", EXIT_PRIOR_HANDLER,
                  o.status, o.err);
    ck_assert(o.told);
    size_t rlen = expect_report(o.err, &o, "read", "fault-chain", (const void *)kht_read, "none");
    ck_assert_str_eq(o.err + rlen, "prior handler: called\n");
}
END_TEST

static void child_with_prior_handler_reads_from_inside(void)
{
    unsigned char *p;
    keyheap_domain_t *d = prior_setup(&p);
    tell(p + 1, keyheap_domain_pkey(d));
    keyheap_enter_ro(d);
    if (kht_read(p + 1) != 0x5a)
        child_fail("child: the block lost its contents");
    keyheap_leave(d);
}

START_TEST(test_handler_installed_before_first_domain_is_not_called_without_a_fault)
{
    struct outcome o;
    run_child(child_with_prior_handler_reads_from_inside, "fault_report:true", &o);
    expect_clean_exit(&o);
}
END_TEST

/* --------------------------------------------------- installing, in process */

static struct sigaction segv_action(void)
{
    struct sigaction now;
    ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
    return now;
}

START_TEST(test_first_domain_with_a_key_installs_a_siginfo_handler_on_an_alternate_stack)
{
    conf_append("fault_report:true");
    ck_assert_ptr_eq(segv_action().sa_handler, SIG_DFL);
    keyheap_domain_t *d = keyheap_domain_create("fault-install", 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_gt(keyheap_domain_pkey(d), 0);
    struct sigaction now = segv_action();
    ck_assert_ptr_ne(now.sa_handler, SIG_DFL);
    ck_assert_ptr_ne(now.sa_handler, SIG_IGN);
    ck_assert_int_eq(now.sa_flags & (SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESETHAND),
                     SA_SIGINFO | SA_ONSTACK);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

static void user_handler(int sig)
{
    (void)sig;
}

START_TEST(test_later_domains_leave_a_handler_the_program_installed_alone)
{
    conf_append("fault_report:true");
    keyheap_domain_t *first = keyheap_domain_create("fault-first", 0);
    ck_assert_ptr_nonnull(first);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = user_handler;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    keyheap_domain_t *second = keyheap_domain_create("fault-second", 0);
    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_eq(segv_action().sa_handler, user_handler);
    ck_assert_int_eq(keyheap_domain_destroy(second), 0);
    ck_assert_int_eq(keyheap_domain_destroy(first), 0);
}
END_TEST

START_TEST(test_fault_report_false_installs_no_handler)
{
    conf_append("fault_report:false");
    keyheap_domain_t *d = keyheap_domain_create("fault-off", 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_gt(keyheap_domain_pkey(d), 0);
    ck_assert_ptr_eq(segv_action().sa_handler, SIG_DFL);
    ck_assert_int_eq(keyheap_domain_destroy(d), 0);
}
END_TEST

/* AddressSanitizer owns SIGSEGV (it intercepts sigaction and signal), so
 * what this program checks, keyheap's own handler and its chaining, cannot
 * be seen under it: the sanitizer build in .ci/run skips it (exit 77;
 * KHT_ASAN: tests/khtest.h). */

int main(void)
{
#ifdef KHT_ASAN
    fputs("check_fault: skipped under AddressSanitizer, which owns SIGSEGV\n", stderr);
    return 77;
#endif
    Suite *s = suite_create("fault");

    TCase *domain_faults = tcase_create("report");
    tcase_set_timeout(domain_faults, 120);
    tcase_add_test(domain_faults,
                   test_read_from_outside_dies_by_sigsegv_after_one_report_naming_the_domain);
    tcase_add_test(domain_faults, test_read_from_inside_works_and_reports_nothing);
    tcase_add_test(domain_faults,
                   test_write_in_read_only_enter_reports_write_and_the_open_read_only_domain);
    tcase_add_test(domain_faults, test_write_in_read_write_enter_works_and_reports_nothing);
    tcase_add_test(domain_faults,
                   test_report_lists_every_open_domain_outermost_first_with_its_rights);
    tcase_add_test(domain_faults,
                   test_fault_report_false_still_dies_by_sigsegv_and_prints_no_report);
    tcase_add_test(domain_faults, test_fault_report_false_read_from_inside_works);
    suite_add_tcase(s, domain_faults);

    TCase *hardware = tcase_create("hardware");
    tcase_set_timeout(hardware, 120);
    tcase_add_test(hardware,
                   test_fault_in_signal_handler_reports_none_open_and_the_entered_domains);
    tcase_add_test(hardware,
                   test_signal_handler_that_enters_the_other_domain_reads_it_and_reports_nothing);
    tcase_add_test(hardware,
                   test_fault_in_signal_handler_on_the_interrupted_codes_domain_reports_none_open);
    tcase_add_test(hardware, test_signal_handler_that_enters_the_interrupted_codes_domain_reads_it);
    tcase_add_test(hardware,
                   test_fault_after_pkru_opened_by_hand_lists_the_domain_the_hardware_had_open);
    tcase_add_test(hardware, test_read_of_domain_opened_by_hand_works_and_reports_nothing);
    tcase_add_test(hardware,
                   test_fault_after_pkru_opened_by_hand_inside_a_domain_lists_both_in_slot_order);
    tcase_add_test(hardware, test_read_of_domain_opened_read_only_by_hand_inside_a_domain_works);
    suite_add_tcase(s, hardware);

    TCase *others = tcase_create("not-ours");
    tcase_set_timeout(others, 120);
    tcase_add_test(others, test_null_dereference_after_a_domain_exists_dies_by_sigsegv_unreported);
    tcase_add_test(others, test_read_of_default_heap_after_a_domain_exists_works);
    tcase_add_test(others, test_fault_on_another_librarys_key_dies_by_sigsegv_unreported);
    tcase_add_test(others, test_read_of_another_librarys_open_key_works);
    suite_add_tcase(s, others);

    TCase *chain = tcase_create("chain");
    tcase_set_timeout(chain, 120);
    tcase_add_test(chain, test_handler_installed_before_first_domain_is_called_after_the_report);
    tcase_add_test(chain, test_handler_installed_before_first_domain_is_not_called_without_a_fault);
    tcase_add_test(chain,
                   test_first_domain_with_a_key_installs_a_siginfo_handler_on_an_alternate_stack);
    tcase_add_test(chain, test_later_domains_leave_a_handler_the_program_installed_alone);
    tcase_add_test(chain, test_fault_report_false_installs_no_handler);
    suite_add_tcase(s, chain);

    return kht_main(s);
}
