/*
 * tests/check_sigstack.c - the sigaltstack wrapper (domains/sigstack.c).
 *
 * Runs through tools/pku-run (natively on a CPU with PKU, otherwise in a
 * QEMU machine that emulates it).
 *
 * A signal handler starts with every domain closed, so an alternate signal
 * stack in domain memory would kill the process at the first SA_ONSTACK
 * signal.  keyheap's sigaltstack gives the kernel a substitute in ordinary
 * memory instead and reports the program's own stack.  Each test raises a
 * real SA_ONSTACK signal whose handler records the address of one of its
 * locals: it must lie in the substitute (a key-0 anonymous mapping with a
 * PROT_NONE page below it, not in any domain), or, for the twins with a
 * default-heap stack, in the program's own buffer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/keyheap.h"
#include "tests/khtest.h"

#define STACK_SIZE ((size_t)64 * 1024)

/* What the handler saw. */
static volatile sig_atomic_t ran;
static void *volatile handler_local;
static keyheap_domain_t *volatile handler_domain;
static stack_t handler_ss; /* sigaltstack(NULL, ...) inside the handler */

static void on_signal(int sig)
{
    (void)sig;
    volatile char here = 0;
    handler_local = (void *)&here;
    handler_domain = keyheap_domain_of((const void *)&here);
    sigaltstack(NULL, &handler_ss);
    ran = 1;
}

static void handle_on_stack(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
}

/* Raises SIGUSR1 and returns where its handler ran. */
static char *raise_and_locate(void)
{
    ran = 0;
    handler_local = NULL;
    handler_domain = (keyheap_domain_t *)1;
    ck_assert_int_eq(raise(SIGUSR1), 0);
    ck_assert_msg(ran, "the SA_ONSTACK handler did not run");
    return handler_local;
}

static keyheap_domain_t *domain(const char *name)
{
    keyheap_domain_t *d = keyheap_domain_create(name, 0);
    ck_assert_msg(d != NULL, "keyheap_domain_create(\"%s\"): %s", name, strerror(errno));
    ck_assert_msg(keyheap_domain_pkey(d) > 0,
                  "domain \"%s\" has no hardware key: run this test through tools/pku-run", name);
    return d;
}

/* The mapping of /proc/self/maps that holds addr, and its lower neighbour. */
struct mapping {
    uintptr_t lo, hi;
    char perms[8];
    bool named; /* has a path or [name] */
};

static bool find_mapping(const void *addr, struct mapping *m, struct mapping *below)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    struct mapping prev = {0, 0, "", false};
    bool found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        struct mapping cur = {0, 0, "", false};
        int end = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &cur.lo, &cur.hi, cur.perms, &end) < 3)
            continue;
        cur.named = strchr(line + end, '/') != NULL || strchr(line + end, '[') != NULL;
        if ((uintptr_t)addr >= cur.lo && (uintptr_t)addr < cur.hi) {
            *m = cur;
            *below = prev;
            found = true;
            break;
        }
        prev = cur;
    }
    fclose(f);
    return found;
}

/* addr is in a substitute of a stack of size bytes: anonymous read-write
 * memory of no domain, right above a PROT_NONE guard page, within size
 * (rounded up to pages) of the guard, not in the program's buffer user. */
static void assert_in_substitute(const char *addr, const void *user, size_t size)
{
    ck_assert_ptr_nonnull(addr);
    ck_assert_msg(addr < (const char *)user || addr >= (const char *)user + size,
                  "the handler ran on the program's domain buffer");
    ck_assert_ptr_null(keyheap_domain_of(addr));
    struct mapping m, below;
    ck_assert_msg(find_mapping(addr, &m, &below), "the handler's stack is not mapped");
    ck_assert_str_eq(m.perms, "rw-p");
    ck_assert(!m.named);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ck_assert_msg(below.hi == m.lo && strcmp(below.perms, "---p") == 0 && !below.named,
                  "no PROT_NONE guard right below the substitute");
    ck_assert_uint_lt((uintptr_t)addr - m.lo, (size + page - 1) / page * page);
}

static bool is_mapped(const void *addr)
{
    struct mapping m, below;
    return find_mapping(addr, &m, &below);
}

/* stderr of fn(arg), as text. */
static const char *captured_stderr(void (*fn)(void *), void *arg)
{
    static char text[4096];
    char path[] = "/tmp/keyheap-sigstack-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn(arg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    memset(text, 0, sizeof text);
    ck_assert_int_ge(pread(fd, text, sizeof text - 1, 0), 0);
    close(fd);
    return text;
}

/* The one warning, for a stack of size bytes at sp in domain name. */
static const char *warning(const void *sp, size_t size, const char *name)
{
    static char line[1024];
    snprintf(line, sizeof line,
             "keyheap: sigaltstack: the stack at %p (%zu bytes) is memory of domain \"%s\", "
             "where every signal handler would fault on its first push (handlers run with every "
             "domain closed); this thread's signals run on a substitute stack of the same size "
             "in ordinary memory instead, and sigaltstack reports the stack given\n",
             sp, size, name);
    return line;
}

static void set_stack(void *sp, size_t size)
{
    stack_t ss = {.ss_sp = sp, .ss_flags = 0, .ss_size = size};
    ck_assert_int_eq(sigaltstack(&ss, NULL), 0);
}

static void assert_reports(const void *sp, size_t size, int flags)
{
    stack_t old;
    ck_assert_int_eq(sigaltstack(NULL, &old), 0);
    ck_assert_ptr_eq(old.ss_sp, sp);
    ck_assert_uint_eq(old.ss_size, size);
    ck_assert_int_eq(old.ss_flags, flags);
}

static void disable_stack(void)
{
    stack_t off = {.ss_flags = SS_DISABLE};
    ck_assert_int_eq(sigaltstack(&off, NULL), 0);
}

/* ------------------------------------------------- a stack in a domain */

static keyheap_domain_t *dom;
static unsigned char *dom_buf;
static char *ran_inside, *ran_outside;

static void domain_stack_session(void *unused)
{
    (void)unused;
    set_stack(dom_buf, STACK_SIZE);
    handle_on_stack(SIGUSR1);
    keyheap_enter(dom);
    ran_inside = raise_and_locate();
    keyheap_leave(dom);
    ck_assert_ptr_null(handler_domain);
    ck_assert_ptr_eq(handler_ss.ss_sp, dom_buf); /* also inside the handler */
    ck_assert_int_eq(handler_ss.ss_flags, SS_ONSTACK);
    ran_outside = raise_and_locate();
    ck_assert_ptr_null(handler_domain);
    set_stack(dom_buf, STACK_SIZE); /* again: no second warning */
}

START_TEST(test_signal_on_stack_in_domain_runs_on_substitute_inside_and_outside)
{
    dom = domain("sigstack");
    dom_buf = keyheap_malloc(dom, STACK_SIZE);
    ck_assert_ptr_eq(keyheap_domain_of(dom_buf), dom);
    const char *err = captured_stderr(domain_stack_session, NULL);
    ck_assert_str_eq(err, warning(dom_buf, STACK_SIZE, "sigstack"));
    assert_in_substitute(ran_inside, dom_buf, STACK_SIZE);
    assert_in_substitute(ran_outside, dom_buf, STACK_SIZE);
    assert_reports(dom_buf, STACK_SIZE, 0);
    /* The buffer was never written by a handler: still the domain's. */
    ck_assert_ptr_eq(keyheap_domain_of(dom_buf), dom);
    disable_stack();
    assert_reports(NULL, 0, SS_DISABLE);
    ck_assert_msg(!is_mapped(ran_outside), "SS_DISABLE left the substitute mapped");
}
END_TEST

static void second_domain_stack(void *buf)
{
    set_stack(buf, STACK_SIZE / 2);
}

START_TEST(test_replacing_a_domain_stack_releases_or_reuses_its_substitute)
{
    keyheap_domain_t *d = domain("replace");
    unsigned char *big = keyheap_malloc(d, 2 * STACK_SIZE), *small = keyheap_malloc(d, STACK_SIZE),
                  *huge = keyheap_malloc(d, 4 * STACK_SIZE);
    handle_on_stack(SIGUSR1);
    set_stack(big, 2 * STACK_SIZE);
    char *first = raise_and_locate();
    assert_in_substitute(first, big, 2 * STACK_SIZE);
    /* A smaller stack fits in the substitute: reused, and no second warning. */
    ck_assert_str_eq(captured_stderr(second_domain_stack, small), "");
    assert_reports(small, STACK_SIZE / 2, 0);
    char *second = raise_and_locate();
    assert_in_substitute(second, small, STACK_SIZE / 2);
    struct mapping m1, m2, below;
    ck_assert(find_mapping(first, &m1, &below) && find_mapping(second, &m2, &below));
    ck_assert_msg(m1.lo == m2.lo, "the substitute was not reused");
    /* A larger one does not fit: a new substitute, the old one unmapped. */
    set_stack(huge, 4 * STACK_SIZE);
    ck_assert_msg(!is_mapped(first), "the outgrown substitute is still mapped");
    char *third = raise_and_locate();
    assert_in_substitute(third, huge, 4 * STACK_SIZE);
    /* An ordinary stack replaces the substitute, which goes. */
    void *plain = malloc(STACK_SIZE);
    set_stack(plain, STACK_SIZE);
    ck_assert_msg(!is_mapped(third), "replacing the stack left the substitute mapped");
    char *fourth = raise_and_locate();
    ck_assert(fourth >= (char *)plain && fourth < (char *)plain + STACK_SIZE);
    disable_stack();
    free(plain);
}
END_TEST

/* The save-and-restore pattern of CPython's faulthandler: what comes back
 * as old is what was set, and setting it again works. */
START_TEST(test_old_stack_reported_is_the_programs_own_and_can_be_restored)
{
    keyheap_domain_t *d = domain("restore");
    unsigned char *mine = keyheap_malloc(d, STACK_SIZE), *theirs = keyheap_malloc(d, STACK_SIZE);
    handle_on_stack(SIGUSR1);
    set_stack(theirs, STACK_SIZE);
    stack_t ss = {.ss_sp = mine, .ss_size = STACK_SIZE}, old;
    ck_assert_int_eq(sigaltstack(&ss, &old), 0);
    ck_assert_ptr_eq(old.ss_sp, theirs);
    ck_assert_uint_eq(old.ss_size, STACK_SIZE);
    assert_in_substitute(raise_and_locate(), mine, STACK_SIZE);
    stack_t cur;
    ck_assert_int_eq(sigaltstack(NULL, &cur), 0);
    ck_assert_ptr_eq(cur.ss_sp, mine);
    ck_assert_int_eq(sigaltstack(&old, NULL), 0);
    assert_reports(theirs, STACK_SIZE, 0);
    assert_in_substitute(raise_and_locate(), theirs, STACK_SIZE);
    disable_stack();
}
END_TEST

static char *thread_ran;
static void *thread_stack;

static void *thread_with_domain_stack(void *buf)
{
    set_stack(buf, STACK_SIZE);
    thread_ran = raise_and_locate();
    thread_stack = handler_ss.ss_sp;
    return NULL;
}

START_TEST(test_each_thread_gets_its_own_substitute_released_at_exit)
{
    keyheap_domain_t *d = domain("threads");
    unsigned char *main_buf = keyheap_malloc(d, STACK_SIZE), *t_buf = keyheap_malloc(d, STACK_SIZE);
    handle_on_stack(SIGUSR1);
    set_stack(main_buf, STACK_SIZE);
    char *main_ran = raise_and_locate();
    assert_in_substitute(main_ran, main_buf, STACK_SIZE);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_with_domain_stack, t_buf), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_eq(thread_stack, t_buf);
    ck_assert_ptr_null(keyheap_domain_of(thread_ran));
    ck_assert(thread_ran < (char *)t_buf || thread_ran >= (char *)t_buf + STACK_SIZE);
    ck_assert_msg(!is_mapped(thread_ran), "the exited thread's substitute is still mapped");
    ck_assert_msg(is_mapped(main_ran), "another thread's exit unmapped this thread's substitute");
    assert_reports(main_buf, STACK_SIZE, 0);
    disable_stack();
}
END_TEST

START_TEST(test_bad_domain_stack_fails_as_the_kernel_says_and_keeps_the_old_one)
{
    keyheap_domain_t *d = domain("bad");
    unsigned char *good = keyheap_malloc(d, STACK_SIZE), *tiny = keyheap_malloc(d, 64);
    set_stack(good, STACK_SIZE);
    stack_t ss = {.ss_sp = tiny, .ss_size = 64};
    errno = 0;
    ck_assert_int_eq(sigaltstack(&ss, NULL), -1);
    ck_assert_int_eq(errno, ENOMEM);
    ss.ss_size = STACK_SIZE;
    ss.ss_flags = 0x1234;
    errno = 0;
    ck_assert_int_eq(sigaltstack(&ss, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    assert_reports(good, STACK_SIZE, 0);
    handle_on_stack(SIGUSR1);
    assert_in_substitute(raise_and_locate(), good, STACK_SIZE);
    disable_stack();
}
END_TEST

/* ------------------------------------------- the twins: ordinary stacks */

static unsigned char *plain_buf;

static void plain_stack_session(void *unused)
{
    (void)unused;
    set_stack(plain_buf, STACK_SIZE);
    handle_on_stack(SIGUSR1);
    keyheap_enter(dom);
    ran_inside = raise_and_locate();
    keyheap_leave(dom);
    ran_outside = raise_and_locate();
}

START_TEST(test_signal_on_ordinary_stack_runs_on_it_and_nothing_is_said)
{
    dom = domain("plain");
    plain_buf = malloc(STACK_SIZE);
    ck_assert_ptr_null(keyheap_domain_of(plain_buf));
    ck_assert_str_eq(captured_stderr(plain_stack_session, NULL), "");
    ck_assert(ran_inside >= (char *)plain_buf && ran_inside < (char *)plain_buf + STACK_SIZE);
    ck_assert(ran_outside >= (char *)plain_buf && ran_outside < (char *)plain_buf + STACK_SIZE);
    ck_assert_ptr_eq(handler_ss.ss_sp, plain_buf);
    ck_assert_int_eq(handler_ss.ss_flags, SS_ONSTACK);
    assert_reports(plain_buf, STACK_SIZE, 0);
    /* Errors pass straight through. */
    stack_t ss = {.ss_sp = plain_buf, .ss_size = 64};
    errno = 0;
    ck_assert_int_eq(sigaltstack(&ss, NULL), -1);
    ck_assert_int_eq(errno, ENOMEM);
    disable_stack();
    assert_reports(NULL, 0, SS_DISABLE);
    free(plain_buf);
}
END_TEST

/* ----------------------------------------- a stack overflow, on SIGSEGV */

enum { EXIT_OVERFLOW_HANDLED = 44, EXIT_OVERFLOW_WRONG = 45 };

static void *overflow_stack_user;
static volatile int overflow_limit = -1; /* never reached */

static int overflow_depth(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    if (n == overflow_limit)
        return 0;
    return overflow_depth(n + 1) + pad[0];
}

static void on_overflow(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    volatile char here = 0;
    const char *p = (const char *)&here;
    const char *user = overflow_stack_user;
    bool on_user = p >= user && p < user + STACK_SIZE;
    bool want_user = keyheap_domain_of(user) == NULL;
    bool ok = (si->si_code == SEGV_ACCERR || si->si_code == SEGV_MAPERR) &&
              keyheap_domain_of(p) == NULL && on_user == want_user;
    _exit(ok ? EXIT_OVERFLOW_HANDLED : EXIT_OVERFLOW_WRONG);
}

static void *overflow_thread(void *buf)
{
    overflow_stack_user = buf;
    stack_t ss = {.ss_sp = buf, .ss_size = STACK_SIZE};
    if (sigaltstack(&ss, NULL) != 0)
        _exit(EXIT_OVERFLOW_WRONG);
    return (void *)(intptr_t)overflow_depth(0);
}

static void overflow_with_stack(void *buf)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_overflow;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, &attr, overflow_thread, buf), 0);
    pthread_join(t, NULL);
}

START_TEST(test_stack_overflow_reaches_sigsegv_handler_on_substitute_of_domain_stack)
{
    keyheap_domain_t *d = domain("overflow");
    overflow_with_stack(keyheap_malloc(d, STACK_SIZE));
}
END_TEST

START_TEST(test_stack_overflow_reaches_sigsegv_handler_on_ordinary_stack)
{
    (void)domain("overflow-twin");
    overflow_with_stack(malloc(STACK_SIZE));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sigstack");
    TCase *tc = tcase_create("sigaltstack");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_signal_on_stack_in_domain_runs_on_substitute_inside_and_outside);
    tcase_add_test(tc, test_replacing_a_domain_stack_releases_or_reuses_its_substitute);
    tcase_add_test(tc, test_old_stack_reported_is_the_programs_own_and_can_be_restored);
    tcase_add_test(tc, test_each_thread_gets_its_own_substitute_released_at_exit);
    tcase_add_test(tc, test_bad_domain_stack_fails_as_the_kernel_says_and_keeps_the_old_one);
    tcase_add_test(tc, test_signal_on_ordinary_stack_runs_on_it_and_nothing_is_said);
    tcase_add_exit_test(tc,
                        test_stack_overflow_reaches_sigsegv_handler_on_substitute_of_domain_stack,
                        EXIT_OVERFLOW_HANDLED);
    tcase_add_exit_test(tc, test_stack_overflow_reaches_sigsegv_handler_on_ordinary_stack,
                        EXIT_OVERFLOW_HANDLED);
    suite_add_tcase(s, tc);
    return kht_main(s);
}
