/*
 * tests/check_isolation.c - no thread reads a domain it has not entered,
 * whatever moment of its life it is in.
 *
 * Each test attacks the guarantee from a thread at one moment: created
 * before the first domain; created inside a domain; created while a
 * destroy runs; created by glibc (thrd_create, a SIGEV_THREAD timer) or by
 * raw clone, without keyheap's pthread_create; with its PKRU opened by
 * hand; exiting (thread-specific-data destructors, pthread_exit and
 * cancellation inside a domain); interrupted by a signal whose handler
 * enters a domain, at every instruction of enter and leave; under the
 * watchdog at 1 ms with domains made and destroyed all the time.  The
 * attacker's read goes through kht_read: a must-fault test accepts only
 * SEGV_PKUERR on the expected key (exit KHT_EXIT_PKU_FAULT), and each has a
 * twin in which the same thread enters the domain first and reads fine.
 * Races are forced (barriers, semaphores, CPU pinning, SCHED_IDLE, single
 * stepping), never left to chance.
 *
 * Runs through tools/pku-run: natively on a CPU with PKU, otherwise (and
 * with KEYHEAP_PKU_RUNNER=qemu) in a QEMU machine that emulates it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <threads.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <keyheap.h>

#include "tests/khfault.h"
#include "tests/khtest.h"

/* The domain an attacker reads, and what it holds. */
static struct target {
    keyheap_domain_t *d;
    unsigned char *p;
    int key;
} target;
static volatile unsigned char seen;
static int twin; /* 1: the attacker enters the domain before it reads */

static struct target make_target(const char *name, unsigned char value)
{
    struct target t;
    t.d = keyheap_domain_create(name, 0);
    ck_assert_msg(t.d != NULL, "keyheap_domain_create(\"%s\"): %s", name, strerror(errno));
    t.key = keyheap_domain_pkey(t.d);
    ck_assert_msg(t.key > 0, "no hardware key: run this test through tools/pku-run");
    t.p = keyheap_malloc(t.d, 64);
    ck_assert_ptr_nonnull(t.p);
    keyheap_enter(t.d);
    memset(t.p, value, 64);
    keyheap_leave(t.d);
    return t;
}

/* The attack, from whatever thread calls it: a plain read of the target,
 * or in the twin a read inside it.  The must-fault case never returns
 * (the fault handler exits). */
static void attack(void)
{
    if (twin) {
        keyheap_enter(target.d);
        seen = kht_read(target.p + 7);
        keyheap_leave(target.d);
    } else {
        seen = kht_read(target.p + 7);
    }
}

/* Arms the fault handler for the target's key (the must-fault case). */
static void arm(void)
{
    if (!twin)
        kht_expect_pku_fault(target.key);
}

/* keyheap's pthread_sigmask and sigprocmask never block its PKRU signal:
 * only the system call itself can, which is how these tests hold a round's
 * signal back. */
static void raw_sigmask(int how, const sigset_t *set)
{
    ck_assert_int_eq(syscall(SYS_rt_sigprocmask, how, set, NULL, _NSIG / 8), 0);
}

static pthread_barrier_t step;

/* keyheap's close rounds signal every thread (SIGRTMAX-1): sleeps and
 * sem_wait return early with EINTR, as with any signal handler. */
static void sleep_ms(long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
}

static void sem_take(sem_t *s)
{
    while (sem_wait(s) != 0)
        ck_assert_int_eq(errno, EINTR);
}

static void pin_to_cpu0(void)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
}

/* ------------------------------------- threads that exist before domains */

static void *probe_then_attack(void *arg)
{
    /* The first call of the process: keyheap probes for PKU in this
     * thread. */
    if (arg != NULL)
        ck_assert_int_eq(keyheap_pku_supported(), 1);
    pthread_barrier_wait(&step); /* the domain is made */
    pthread_barrier_wait(&step);
    attack();
    return NULL;
}

static void pool_before_first_domain(int probe_in_worker)
{
    pthread_barrier_init(&step, NULL, 2);
    if (!probe_in_worker)
        ck_assert_int_eq(keyheap_pku_supported(), 1);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, probe_then_attack, probe_in_worker ? (void *)1 : NULL), 0);
    pthread_barrier_wait(&step);
    target = make_target("pool", 0x5a);
    arm();
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0x5a); /* the twin */
}

START_TEST(test_worker_that_probed_pku_before_the_first_domain_cannot_read_it)
{
    twin = 0;
    pool_before_first_domain(1);
}
END_TEST

START_TEST(test_worker_that_probed_pku_before_the_first_domain_reads_it_inside)
{
    twin = 1;
    pool_before_first_domain(1);
}
END_TEST

START_TEST(test_thread_created_after_keyheap_pku_supported_cannot_read_a_later_domain)
{
    twin = 0;
    pool_before_first_domain(0);
}
END_TEST

START_TEST(test_thread_created_after_keyheap_pku_supported_reads_a_later_domain_inside)
{
    twin = 1;
    pool_before_first_domain(0);
}
END_TEST

/* --------------------------------------- created while a destroy runs */

static sem_t started, go;

static void *started_then_attack(void *arg)
{
    (void)arg;
    sem_post(&started);
    sem_take(&go);
    attack();
    return NULL;
}

/* enter(d); pthread_create; leave(d); destroy(d); create(e), e getting
 * d's key.  The child is pinned to the creator's CPU at SCHED_IDLE, so it
 * cannot start before the creator blocks, after the destroy: a child that
 * closed keys itself, from the keys live when it starts, would keep d's
 * key open and read e. */
static void child_of_destroyed_domain(void)
{
    pin_to_cpu0();
    sem_init(&started, 0, 0);
    sem_init(&go, 0, 0);
    struct target d = make_target("destroyed", 0x11);
    /* The child inherits SCHED_IDLE and the pinning; this thread goes
     * back to SCHED_OTHER and keeps the CPU until it blocks. */
    struct sched_param none = {0};
    ck_assert_int_eq(pthread_setschedparam(pthread_self(), SCHED_IDLE, &none), 0);
    keyheap_enter(d.d);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, started_then_attack, NULL), 0);
    ck_assert_int_eq(pthread_setschedparam(pthread_self(), SCHED_OTHER, &none), 0);
    keyheap_leave(d.d);
    ck_assert_int_eq(keyheap_domain_destroy(d.d), 0);
    sem_take(&started);
    target = make_target("next", 0x22);
    ck_assert_int_eq(target.key, d.key);
    arm();
    sem_post(&go);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0x22);
}

START_TEST(test_thread_created_inside_a_domain_destroyed_before_it_ran_cannot_read_the_next)
{
    twin = 0;
    child_of_destroyed_domain();
}
END_TEST

START_TEST(test_thread_created_inside_a_domain_destroyed_before_it_ran_reads_the_next_inside)
{
    twin = 1;
    child_of_destroyed_domain();
}
END_TEST

/* --------------------------------- threads keyheap's wrapper never sees */

static int thrd_attack(void *arg)
{
    (void)arg;
    attack();
    return 0;
}

static void thrd_created_inside(void)
{
    target = make_target("thrd", 0x33);
    arm();
    keyheap_enter(target.d);
    thrd_t t;
    ck_assert_int_eq(thrd_create(&t, thrd_attack, NULL), thrd_success);
    ck_assert_int_eq(thrd_join(t, NULL), thrd_success);
    keyheap_leave(target.d);
    ck_assert_uint_eq(seen, 0x33);
}

START_TEST(test_thrd_create_inside_a_domain_starts_the_thread_closed)
{
    twin = 0;
    thrd_created_inside();
}
END_TEST

START_TEST(test_thrd_create_inside_a_domain_thread_reads_after_entering)
{
    twin = 1;
    thrd_created_inside();
}
END_TEST

static void timer_attack(union sigval v)
{
    (void)v;
    /* glibc's notification threads start with every signal blocked; a
     * blocked SIGSEGV would kill without reaching the fault handler. */
    sigset_t segv;
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    pthread_sigmask(SIG_UNBLOCK, &segv, NULL);
    attack();
    sem_post(&go);
}

/* glibc's first SIGEV_THREAD timer makes its helper thread inside
 * timer_create, with the caller's PKRU; every notification thread is the
 * helper's child. */
static void timer_created_inside(void)
{
    sem_init(&go, 0, 0);
    target = make_target("timer", 0x44);
    arm();
    keyheap_enter(target.d);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = timer_attack;
    timer_t timer;
    ck_assert_int_eq(timer_create(CLOCK_MONOTONIC, &ev, &timer), 0);
    struct itimerspec when = {{0, 0}, {0, 10 * 1000 * 1000}};
    ck_assert_int_eq(timer_settime(timer, 0, &when, NULL), 0);
    /* Inside the domain until the notification has run. */
    sem_take(&go);
    keyheap_leave(target.d);
    ck_assert_uint_eq(seen, 0x44);
}

START_TEST(test_sigev_thread_timer_made_inside_a_domain_notifies_closed)
{
    twin = 0;
    timer_created_inside();
}
END_TEST

START_TEST(test_sigev_thread_timer_made_inside_a_domain_notification_reads_after_entering)
{
    twin = 1;
    timer_created_inside();
}
END_TEST

/* A raw clone shares this thread's TLS: the child touches no TLS, calls
 * nothing but kht_read, and exits with the raw system call. */
static volatile int clone_phase;
static unsigned char *volatile clone_reads;
static volatile unsigned char clone_seen;

static int clone_main(void *arg)
{
    (void)arg;
    while (clone_phase == 0)
        __asm__ volatile("pause");
    clone_seen = kht_read(clone_reads);
    clone_phase = 2;
    syscall(SYS_exit, 0);
    return 0;
}

/* The clone child is made inside d and inherits d's key open; d is
 * destroyed and e gets the key.  destroy's close round must reach the
 * child, which keyheap never saw. */
static void raw_clone_after_destroy(void)
{
    struct target d = make_target("cloned", 0x55);
    keyheap_enter(d.d);
    kht_raw_clone(clone_main, NULL);
    keyheap_leave(d.d);
    ck_assert_int_eq(keyheap_domain_destroy(d.d), 0);
    target = make_target("after-clone", 0x66);
    ck_assert_int_eq(target.key, d.key);
    static unsigned char plain = 0x67;
    clone_reads = twin ? &plain : target.p + 7;
    arm();
    clone_phase = 1;
    while (clone_phase != 2)
        sleep_ms(1);
    /* The twins: the child ran and read ordinary memory; this thread reads
     * e inside. */
    ck_assert_uint_eq(clone_seen, 0x67);
    attack();
    ck_assert_uint_eq(seen, 0x66);
}

START_TEST(test_raw_clone_thread_made_inside_a_destroyed_domain_cannot_read_the_next)
{
    twin = 0;
    raw_clone_after_destroy();
}
END_TEST

START_TEST(test_raw_clone_thread_runs_and_the_next_domain_reads_inside)
{
    twin = 1;
    raw_clone_after_destroy();
}
END_TEST

static void *open_everything_then_attack(void *arg)
{
    (void)arg;
    kht_wrpkru(0); /* every key read-write, behind keyheap's back */
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    attack();
    return NULL;
}

/* A thread that never used keyheap opened every key by hand, while d
 * lived; d is destroyed and e gets d's key. */
static void hand_opened_then_destroy(void)
{
    pthread_barrier_init(&step, NULL, 2);
    struct target d = make_target("opened", 0x77);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, open_everything_then_attack, NULL), 0);
    pthread_barrier_wait(&step);
    ck_assert_int_eq(keyheap_domain_destroy(d.d), 0);
    target = make_target("after-open", 0x78);
    ck_assert_int_eq(target.key, d.key);
    arm();
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0x78);
}

START_TEST(test_thread_that_opened_pkru_by_hand_cannot_read_the_next_owner_of_a_key)
{
    twin = 0;
    hand_opened_then_destroy();
}
END_TEST

START_TEST(test_thread_that_opened_pkru_by_hand_reads_the_next_owner_after_entering)
{
    twin = 1;
    hand_opened_then_destroy();
}
END_TEST

/* ------------------------------------------------------------ exiting */

static pthread_key_t late_key;

static void enter_in_destructor(void *arg)
{
    (void)arg;
    keyheap_enter(target.d);
    pthread_barrier_wait(&step); /* the destroy is tried */
    pthread_barrier_wait(&step);
    seen = kht_read(target.p + 7);
    keyheap_leave(target.d);
}

static void *set_late_key(void *arg)
{
    if (arg != NULL) { /* registered with keyheap: it used a domain */
        keyheap_enter(target.d);
        keyheap_leave(target.d);
    }
    ck_assert_int_eq(pthread_setspecific(late_key, &late_key), 0);
    return NULL;
}

START_TEST(test_destroy_is_busy_while_a_thread_specific_data_destructor_is_inside)
{
    pthread_barrier_init(&step, NULL, 2);
    target = make_target("destructor", 0x81);
    /* Made after keyheap's own key (the first domain made it): its
     * destructor runs after keyheap's in every round. */
    ck_assert_int_eq(pthread_key_create(&late_key, enter_in_destructor), 0);
    pthread_t t;
    /* The thread used the domain before, so keyheap's exit hook runs. */
    ck_assert_int_eq(pthread_create(&t, NULL, set_late_key, (void *)1), 0);
    pthread_barrier_wait(&step);
    errno = 0;
    ck_assert_int_eq(keyheap_domain_destroy(target.d), -1);
    ck_assert_int_eq(errno, EBUSY);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0x81);
    ck_assert_int_eq(keyheap_domain_destroy(target.d), 0);
}
END_TEST

static struct {
    keyheap_domain_t *current; /* keyheap_current() in the cleanup handler */
    unsigned rights;           /* the domain's key there: PKRU bits */
} at_cleanup;

/* No malloc here (Check's asserts allocate): after a cancellation the
 * domain may be closed while it stays malloc's target. */
static void cleanup_waits(void *arg)
{
    (void)arg;
    at_cleanup.current = keyheap_current();
    at_cleanup.rights = kht_key_rights(target.key);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    /* Entering again is what a cleanup handler that needs the domain does
     * (it nests: this leave restores what the handler had). */
    keyheap_enter(target.d);
    seen = kht_read(target.p + 7);
    keyheap_leave(target.d);
}

static volatile pid_t exiting_tid;

static void *exit_inside(void *arg)
{
    exiting_tid = (pid_t)syscall(SYS_gettid);
    keyheap_enter(target.d);
    pthread_cleanup_push(cleanup_waits, NULL);
    if (arg != NULL) {
        pthread_exit(NULL);
    } else {
        for (;;)
            pause(); /* a cancellation point */
    }
    pthread_cleanup_pop(0);
    return NULL;
}

/* A thread ends inside the domain, by pthread_exit or cancellation: the
 * domain stays entered through its cleanup handlers (destroy is EBUSY)
 * and keyheap's exit hook leaves it; afterwards destroy succeeds.
 * pthread_exit runs the cleanup with the domain open; a cancellation
 * acted on in a blocking system call runs it from glibc's cancellation
 * signal handler, with every key closed (the kernel's PKRU for handlers),
 * and the domain still entered as far as keyheap knows. */
static void ends_inside(int by_exit)
{
    pthread_barrier_init(&step, NULL, 2);
    target = make_target("ends", 0x82);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, exit_inside, by_exit ? (void *)1 : NULL), 0);
    if (!by_exit) {
        /* Blocked in pause(), so that the cancellation is acted on in
         * glibc's signal handler. */
        while (exiting_tid == 0 || !kht_task_sleeping(exiting_tid))
            sleep_ms(1);
        ck_assert_int_eq(pthread_cancel(t), 0);
    }
    pthread_barrier_wait(&step);
    errno = 0;
    ck_assert_int_eq(keyheap_domain_destroy(target.d), -1);
    ck_assert_int_eq(errno, EBUSY);
    pthread_barrier_wait(&step);
    void *result;
    pthread_join(t, &result);
    ck_assert_ptr_eq(result, by_exit ? NULL : PTHREAD_CANCELED);
    ck_assert_ptr_eq(at_cleanup.current, target.d);
    if (by_exit)
        ck_assert_uint_eq(at_cleanup.rights, 0u);
    else
        ck_assert_uint_eq(at_cleanup.rights & 1u, 1u);
    ck_assert_uint_eq(seen, 0x82);
    ck_assert_int_eq(keyheap_domain_destroy(target.d), 0);
}

START_TEST(test_pthread_exit_inside_a_domain_keeps_it_busy_until_the_thread_is_gone)
{
    ends_inside(1);
}
END_TEST

START_TEST(test_cancellation_inside_a_domain_keeps_it_busy_until_the_thread_is_gone)
{
    ends_inside(0);
}
END_TEST

static void enter_in_last_round(void *arg)
{
    static __thread int calls;
    if (++calls < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, arg);
        return;
    }
    keyheap_enter(target.d);
}

static void late_enter(void *arg)
{
    (void)arg;
    target = make_target("late", 0x83);
    ck_assert_int_eq(pthread_key_create(&late_key, enter_in_last_round), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, set_late_key, (void *)1), 0);
    pthread_join(t, NULL);
}

START_TEST(test_enter_after_keyheaps_last_exit_hook_aborts_with_message)
{
    kht_expect_abort(late_enter, NULL,
                     "keyheap: keyheap_enter(\"late\") in a thread that is exiting, after "
                     "keyheap's last thread-exit hook (the last round of thread-specific-data "
                     "destructors): enter domains in earlier destructors or before the thread "
                     "ends\n");
}
END_TEST

/* The thread first uses a domain in the second round of destructors (its
 * first enter registers it), and enters in the last, after keyheap's
 * hook: keyheap's hook must still know that round is the last. */
static void register_in_round_two(void *arg)
{
    static __thread int calls;
    ++calls;
    if (calls == 2) {
        keyheap_enter(target.d);
        keyheap_leave(target.d);
    }
    if (calls < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, arg);
        return;
    }
    keyheap_enter(target.d);
}

static void late_registration(void *arg)
{
    (void)arg;
    target = make_target("late-registered", 0x84);
    ck_assert_int_eq(pthread_key_create(&late_key, register_in_round_two), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, set_late_key, NULL), 0);
    pthread_join(t, NULL);
}

START_TEST(test_thread_first_using_a_domain_in_a_late_destructor_round_still_ends_registered_last)
{
    kht_expect_abort(late_registration, NULL,
                     "keyheap: keyheap_enter(\"late-registered\") in a thread that is exiting, "
                     "after keyheap's last thread-exit hook (the last round of "
                     "thread-specific-data destructors): enter domains in earlier destructors "
                     "or before the thread ends\n");
}
END_TEST

/* A domain allocation in a thread-specific-data destructor: jemalloc has
 * cleaned up its own thread data by then (its key is the process's first,
 * so its destructor runs first in every round) and serves any request from
 * its default arena.  keyheap must fail the allocation (ENOMEM, one
 * warning), never hand out that ordinary memory, and still free and scrub
 * a domain block there.  late_results[0] is what the thread's body got,
 * [1] and [2] what the first two rounds of destructors got. */
enum { LATE_CALLS = 6 };
static struct late_result {
    void *p[LATE_CALLS];
    int err[LATE_CALLS];
} late_results[3];
static unsigned char *late_block; /* the body's, grown and freed late */
static void *late_grown;
static int late_grown_err, late_block_kept;

static void late_allocate(struct late_result *r)
{
    keyheap_domain_t *d = target.d;
    for (int i = 0; i < LATE_CALLS; i++) {
        errno = 0;
        switch (i) {
        case 0:
            r->p[i] = keyheap_malloc(d, 32);
            break;
        case 1:
            r->p[i] = keyheap_malloc(d, 3000);
            break;
        case 2:
            r->p[i] = keyheap_malloc(d, 1 << 20);
            break;
        case 3:
            r->p[i] = keyheap_calloc(d, 4, 8);
            break;
        case 4:
            r->p[i] = keyheap_aligned_alloc(d, 256, 256);
            break;
        default:
            r->p[i] = keyheap_aligned_alloc(d, 1 << 16, 1 << 16);
            break;
        }
        r->err[i] = errno;
    }
}

static void allocate_late(void *arg)
{
    static __thread int calls;
    ++calls;
    late_allocate(&late_results[calls]);
    if (calls == 1) {
        errno = 0;
        late_grown = keyheap_realloc(late_block, 4096);
        late_grown_err = errno;
        keyheap_enter(target.d);
        for (int i = 0; i < 32; i++)
            late_block_kept += late_block[i] == 0x6b;
        keyheap_leave(target.d);
        pthread_setspecific(late_key, arg);
    } else {
        keyheap_free(late_block);
    }
}

static void *allocate_then_set_late_key(void *arg)
{
    late_allocate(&late_results[0]); /* freed by the test, so no magazine holds them */
    late_block = keyheap_malloc(target.d, 32);
    keyheap_enter(target.d);
    memset(late_block, 0x6b, 32);
    keyheap_leave(target.d);
    pthread_setspecific(late_key, arg);
    return NULL;
}

START_TEST(test_domain_allocation_in_a_destructor_after_jemallocs_cleanup_fails_never_untagged)
{
    target = make_target("late-alloc", 0x85);
    ck_assert_int_eq(pthread_key_create(&late_key, allocate_late), 0);
    /* The warning, caught in a file. */
    char path[] = "/tmp/keyheap-late-XXXXXX";
    int log = mkstemp(path);
    ck_assert_int_ge(log, 0);
    unlink(path);
    int saved = dup(2);
    dup2(log, 2);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, allocate_then_set_late_key, (void *)1), 0);
    pthread_join(t, NULL);
    dup2(saved, 2);
    close(saved);
    /* The twin: the same calls from the thread's body gave domain memory. */
    for (int i = 0; i < LATE_CALLS; i++) {
        ck_assert_msg(late_results[0].p[i] != NULL, "call %d in the body: %s", i,
                      strerror(late_results[0].err[i]));
        ck_assert_ptr_eq(keyheap_domain_of(late_results[0].p[i]), target.d);
        keyheap_free(late_results[0].p[i]);
    }
    ck_assert_ptr_eq(keyheap_domain_of(late_block), target.d);
    /* In both rounds, every call failed with ENOMEM. */
    for (int r = 1; r <= 2; r++)
        for (int i = 0; i < LATE_CALLS; i++) {
            ck_assert_msg(late_results[r].p[i] == NULL, "round %d call %d gave %p (domain %p)", r,
                          i, late_results[r].p[i], (void *)keyheap_domain_of(late_results[r].p[i]));
            ck_assert_int_eq(late_results[r].err[i], ENOMEM);
        }
    ck_assert_ptr_null(late_grown);
    ck_assert_int_eq(late_grown_err, ENOMEM);
    ck_assert_int_eq(late_block_kept, 32); /* the failed realloc kept every byte */
    /* The failed realloc left the block alone; the free of round 2
     * scrubbed it. */
    keyheap_enter(target.d);
    for (int i = 0; i < 32; i++)
        ck_assert_uint_eq(kht_read(late_block + i), 0);
    keyheap_leave(target.d);
    size_t len;
    char *text;
    lseek(log, 0, SEEK_SET);
    char fdpath[32];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", log);
    text = kht_slurp(fdpath, &len);
    ck_assert_str_eq(text, "keyheap: domain \"late-alloc\": an allocation after jemalloc's own "
                           "thread-exit cleanup (in a thread-specific-data destructor) fails "
                           "with ENOMEM: jemalloc then serves only its default arena, which is "
                           "not the domain's memory\n");
    free(text);
    close(log);
    ck_assert_int_eq(keyheap_domain_destroy(target.d), 0);
}
END_TEST

/* -------------------------------- a signal at every instruction of enter */

static struct target inner;
static volatile unsigned steps, inner_reads;

/* SIGTRAP after every instruction (the trap flag): the handler enters
 * another domain, reads it, and leaves, wherever the interrupted enter or
 * leave stood. */
static void on_trap(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)si, (void)ctx;
    steps++;
    keyheap_enter(inner.d);
    inner_reads += kht_read(inner.p + 3) == 0x92;
    keyheap_leave(inner.d);
}

static void trap_flag(int on)
{
    if (on)
        __asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq" ::: "memory", "cc");
    else
        __asm__ volatile("pushfq; andq $~0x100, (%%rsp); popfq" ::: "memory", "cc");
}

/* SIGTRAP (the trap flag's signal) goes to handler, with its siginfo. */
static void on_sigtrap(void (*handler)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGTRAP, &sa, NULL), 0);
}

static void step_through_enter_and_leave(void)
{
    on_sigtrap(on_trap);
    for (int ro = 0; ro < 2; ro++) {
        trap_flag(1);
        if (ro)
            keyheap_enter_ro(target.d);
        else
            keyheap_enter(target.d);
        unsigned char v = kht_read(target.p + 7);
        keyheap_domain_t *now = keyheap_current();
        keyheap_leave(target.d);
        trap_flag(0);
        ck_assert_uint_eq(v, 0x91);
        ck_assert_ptr_eq(now, ro ? NULL : target.d);
        ck_assert_ptr_null(keyheap_current());
        ck_assert_int_eq(keyheap_audit(0), 0);
    }
    ck_assert_uint_gt(steps, 20);
    ck_assert_uint_eq(inner_reads, steps);
}

START_TEST(test_signal_handler_entering_at_every_instruction_of_enter_and_leave)
{
    target = make_target("stepped", 0x91);
    inner = make_target("handler", 0x92);
    step_through_enter_and_leave();
    /* Closed again: the must-fault half. */
    kht_expect_pku_fault(target.key);
    kht_read(target.p + 7);
}
END_TEST

/* The same in verify mode, where the handler's enters and leaves check
 * PKRU against the domain stack, which is the interrupted code's: the
 * handler's PKRU (every key closed but its own) gives less than the stack,
 * never more, so it passes (it aborted before).  That verify mode is on is
 * shown by the next test; that a frame being entered never names the
 * domain left before, by the fork tests below. */
START_TEST(test_signal_handler_entering_at_every_instruction_in_verify_mode)
{
    setenv("KEYHEAP_CONF", "verify:true", 1);
    target = make_target("stepped", 0x91);
    inner = make_target("handler", 0x92);
    step_through_enter_and_leave();
    kht_expect_pku_fault(target.key);
    kht_read(target.p + 7);
}
END_TEST

/* The twin: verify mode is on, and aborts when a key is opened by hand
 * inside a handler that enters. */
static void open_by_hand_then_enter(int sig)
{
    (void)sig;
    kht_wrpkru(kht_pkru() & ~(3u << (2 * target.key)));
    keyheap_enter(inner.d);
}

static void handler_opening_by_hand(void *arg)
{
    (void)arg;
    signal(SIGUSR1, open_by_hand_then_enter);
    keyheap_enter(inner.d);
    raise(SIGUSR1);
}

START_TEST(test_verify_mode_still_aborts_on_a_key_a_handler_opened_by_hand)
{
    setenv("KEYHEAP_CONF", "verify:true", 1);
    target = make_target("bystander", 0x91);
    inner = make_target("handler", 0x92);
    /* A handler starts at the kernel's default PKRU, 0x55555554
     * (PKU-FACTS.md row 1); the stack has "handler" open. */
    unsigned k = (unsigned)target.key;
    unsigned hw = 0x55555554u & ~(3u << (2 * k));
    unsigned want = 0x55555554u & ~(3u << (2 * (unsigned)inner.key));
    char message[400];
    snprintf(message, sizeof message,
             "keyheap: KEYHEAP_CONF verify: at keyheap_enter(\"handler\") PKRU is %#x but the "
             "domain stack says %#x: key %u of domain \"bystander\" is read-write instead of "
             "none\n",
             hw, want, k);
    kht_expect_abort(handler_opening_by_hand, NULL, message);
}
END_TEST

/* A frame an enter has counted but not written yet, seen from outside the
 * thread (keyheap_domain_destroy reads every thread's domain stack): at
 * every instruction of an enter and a leave, a SIGTRAP handler forks, and
 * the child destroys the domain this thread left before.  It must never be
 * busy.  The twin stays inside that domain: busy at every instruction. */
static struct target left;
static volatile unsigned busy_steps, other_steps;

static void on_trap_destroy(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)si, (void)ctx;
    steps++;
    pid_t pid = fork();
    if (pid == 0) {
        errno = 0;
        int rc = keyheap_domain_destroy(left.d);
        _exit(rc == 0 ? 0 : errno == EBUSY ? 1 : 2);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) > 1)
        other_steps++;
    else if (WEXITSTATUS(status) == 1)
        busy_steps++;
}

static void step_with_destroys(int inside)
{
    target = make_target("stepped", 0x91);
    left = make_target("left", 0x94);
    keyheap_enter(left.d);
    if (!inside)
        keyheap_leave(left.d); /* its frame was stack[0] */
    on_sigtrap(on_trap_destroy);
    trap_flag(1);
    keyheap_enter(target.d);
    unsigned char v = kht_read(target.p + 7);
    keyheap_leave(target.d);
    trap_flag(0);
    signal(SIGTRAP, SIG_DFL);
    ck_assert_uint_eq(v, 0x91);
    ck_assert_uint_gt(steps, 10);
    ck_assert_uint_eq(other_steps, 0);
    ck_assert_uint_eq(busy_steps, inside ? steps : 0);
    if (inside)
        keyheap_leave(left.d);
    ck_assert_int_eq(keyheap_domain_destroy(left.d), 0);
}

START_TEST(test_a_frame_being_entered_never_names_the_domain_left_before_it)
{
    step_with_destroys(0);
}
END_TEST

START_TEST(test_a_frame_being_entered_above_a_domain_still_inside_keeps_it_busy)
{
    step_with_destroys(1);
}
END_TEST

/* ------------------------------------------------------------ watchdog */

static volatile int churn_stop;
static volatile unsigned churn_rounds[2];

static void *churn(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    while (!churn_stop) {
        keyheap_domain_t *d = keyheap_domain_create(id ? "churn-b" : "churn-a", 0);
        if (d == NULL)
            continue; /* every key in use by the other thread and the rest */
        unsigned char *p = keyheap_malloc(d, 256);
        ck_assert_ptr_nonnull(p);
        keyheap_enter(d);
        for (int i = 0; i < 256; i++)
            p[i] = (unsigned char)i;
        for (int spin = 0; spin < 2000; spin++) {
            KHT_REQUIRE(kht_read(p + (spin & 255)) == (unsigned char)(spin & 255),
                        "the watchdog changed what a domain holds");
        }
        keyheap_leave(d);
        keyheap_free(p);
        ck_assert_int_eq(keyheap_domain_destroy(d), 0);
        churn_rounds[id]++;
    }
    return NULL;
}

START_TEST(test_watchdog_at_1ms_never_closes_a_domain_a_thread_is_inside)
{
    setenv("KEYHEAP_CONF", "watchdog:1", 1);
    pthread_t a, b;
    ck_assert_int_eq(pthread_create(&a, NULL, churn, (void *)0), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, churn, (void *)1), 0);
    /* 400 ms at least, and 30 domains each (the emulator is slow). */
    sleep_ms(400);
    for (int i = 0; i < 1200 && (churn_rounds[0] < 30 || churn_rounds[1] < 30); i++)
        sleep_ms(50);
    churn_stop = 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    ck_assert_uint_ge(churn_rounds[0], 30);
    ck_assert_uint_ge(churn_rounds[1], 30);
}
END_TEST

/* A handler runs with every domain closed; the watchdog must not "repair"
 * its PKRU to the interrupted code's open domains. */
static void on_usr1(int sig)
{
    (void)sig;
    sleep_ms(50); /* some fifty watchdog rounds */
    attack();
}

static void handler_under_watchdog(void)
{
    setenv("KEYHEAP_CONF", "watchdog:1", 1);
    /* Two domains deep, so that no PKRU saved in the stack equals the
     * handler's (every key closed). */
    struct target outer = make_target("outer", 0xa0);
    target = make_target("interrupted", 0xa1);
    signal(SIGUSR1, on_usr1);
    arm();
    keyheap_enter(outer.d);
    keyheap_enter(target.d);
    raise(SIGUSR1);
    keyheap_leave(target.d);
    keyheap_leave(outer.d);
    ck_assert_uint_eq(seen, 0xa1);
}

START_TEST(test_watchdog_never_opens_a_signal_handlers_pkru)
{
    twin = 0;
    handler_under_watchdog();
}
END_TEST

START_TEST(test_signal_handler_that_enters_reads_under_the_watchdog)
{
    twin = 1;
    handler_under_watchdog();
}
END_TEST

/* A watchdog round's signal sent before a domain exists and delivered
 * after the thread made and entered it (the signal was blocked meanwhile):
 * the round must judge the thread as it is at delivery, not close the new
 * domain's key under it. */
static void *enter_under_pending_round(void *arg)
{
    (void)arg;
    struct target first = make_target("first", 0xb8); /* registered */
    keyheap_enter(first.d);
    keyheap_leave(first.d);
    sigset_t pkru_signal, pending;
    sigemptyset(&pkru_signal);
    sigaddset(&pkru_signal, SIGRTMAX - 1);
    raw_sigmask(SIG_BLOCK, &pkru_signal);
    do {
        sleep_ms(1);
        sigpending(&pending);
    } while (!sigismember(&pending, SIGRTMAX - 1));
    target = make_target("made-late", 0xb9);
    keyheap_enter(target.d);
    raw_sigmask(SIG_UNBLOCK, &pkru_signal); /* the round runs here */
    sleep_ms(20);                                     /* and a few more */
    seen = kht_read(target.p + 7);
    keyheap_leave(target.d);
    return NULL;
}

START_TEST(test_watchdog_round_sent_before_a_domain_was_made_never_closes_it)
{
    setenv("KEYHEAP_CONF", "watchdog:1", 1);
    ck_assert_int_eq(keyheap_pku_supported(), 1);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, enter_under_pending_round, NULL), 0);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0xb9);
}
END_TEST

/* enter, leave, then the key opened again by hand to exactly the value the
 * enter had written: the watchdog closes it. */
START_TEST(test_watchdog_closes_a_key_reopened_by_hand_after_a_leave)
{
    setenv("KEYHEAP_CONF", "watchdog:1", 1);
    target = make_target("reopened", 0xb1);
    keyheap_enter(target.d);
    unsigned inside = kht_pkru();
    keyheap_leave(target.d);
    kht_wrpkru(inside);
    ck_assert_uint_eq(kht_key_rights(target.key), 0);
    for (int i = 0; i < 10000 && kht_key_rights(target.key) == 0; i++)
        sleep_ms(1);
    ck_assert_msg(kht_key_rights(target.key) & 1u, "the watchdog left key %d open", target.key);
    kht_expect_pku_fault(target.key);
    kht_read(target.p + 7);
}
END_TEST

/* ----------------------------------------------- keys keyheap keeps */

static void *blocked_thread(void *arg)
{
    (void)arg;
    /* Registered: it used a domain. */
    keyheap_enter(target.d);
    keyheap_leave(target.d);
    sigset_t pkru_signal;
    sigemptyset(&pkru_signal);
    sigaddset(&pkru_signal, SIGRTMAX - 1);
    raw_sigmask(SIG_BLOCK, &pkru_signal);
    /* The key opened by hand: stale, as code behind keyheap's back could. */
    kht_wrpkru(kht_pkru() & ~(3u << (2 * target.key)));
    pthread_barrier_wait(&step); /* blocked and open */
    pthread_barrier_wait(&step); /* d destroyed, e made */
    at_cleanup.rights = (unsigned)keyheap_audit(KEYHEAP_AUDIT_REPORT | KEYHEAP_AUDIT_REPAIR);
    raw_sigmask(SIG_UNBLOCK, &pkru_signal);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step); /* the kept key may be freed now */
    return NULL;
}

static char kept_text[2048];

static void destroy_under_blocked_thread(void)
{
    pthread_barrier_init(&step, NULL, 2);
    target = make_target("kept", 0xd1);
    struct target d = target;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, blocked_thread, NULL), 0);
    pthread_barrier_wait(&step);
    ck_assert_int_eq(keyheap_domain_destroy(d.d), 0);
    /* The key was kept: the next domain gets another one. */
    struct target e = make_target("after-kept", 0xd2);
    ck_assert_int_ne(e.key, d.key);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    /* Every thread answers now: the next destroy frees the kept key too. */
    ck_assert_int_eq(keyheap_domain_destroy(e.d), 0);
    struct target f = make_target("reused", 0xd3);
    ck_assert_int_eq(f.key, d.key < e.key ? d.key : e.key);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
}

/* A registered thread that blocks keyheap's signal cannot be reached by
 * destroy's close round: the key is kept (never handed to a new domain,
 * so the thread's stale rights reach nothing), the audit in that thread
 * counts it as keyheap's (not foreign) and closes it, and a later destroy
 * that every thread answers frees it. */
START_TEST(test_key_of_an_unanswered_close_round_is_kept_audited_and_freed_later)
{
    int saved = dup(STDERR_FILENO);
    char path[] = "/tmp/keyheap-kept-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    dup2(fd, STDERR_FILENO);
    destroy_under_blocked_thread();
    dup2(saved, STDERR_FILENO);
    ck_assert_int_ge(pread(fd, kept_text, sizeof kept_text - 1, 0), 0);
    close(fd);
    ck_assert_msg(strstr(kept_text, "keyheap: keyheap_domain_destroy(\"kept\"): 1 thread(s) did "
                                    "not answer keyheap's PKRU signal (blocked?), so key ") !=
                      NULL,
                  "%s", kept_text);
    char line[200];
    snprintf(line, sizeof line,
             "keyheap: audit: key %d, kept by keyheap after a destroy, is open (now closed): "
             "read-write\n",
             target.key);
    ck_assert_msg(strstr(kept_text, line) != NULL, "no \"%s\" in: %s", line, kept_text);
    ck_assert_uint_eq(at_cleanup.rights, 1u);
}
END_TEST

/* Late answers: X answers round R (which it missed) and round R+1 at once,
 * while Y answers neither; counting answers, two would pass for X and Y. */
static struct target late_a, late_d;
static volatile int late_phase;

static volatile pid_t late_main;
static void *late_thread(void *arg)
{
    int is_y = arg != NULL;
    keyheap_enter(late_a.d); /* registered */
    keyheap_leave(late_a.d);
    sigset_t pkru_signal;
    sigemptyset(&pkru_signal);
    sigaddset(&pkru_signal, SIGRTMAX - 1);
    raw_sigmask(SIG_BLOCK, &pkru_signal);
    if (is_y)
        kht_wrpkru(kht_pkru() & ~(3u << (2 * late_d.key))); /* stale */
    pthread_barrier_wait(&step); /* both blocked */
    if (!is_y) {
        /* Round R's signal is still queued here.  Once the main thread
         * sleeps inside the second destroy, round R+1 has been sent (a
         * round signals every task, then waits): X answers both at once. */
        while (late_phase == 0)
            sleep_ms(1);
        while (!kht_task_sleeping(late_main))
            sleep_ms(1);
        raw_sigmask(SIG_UNBLOCK, &pkru_signal);
    }
    pthread_barrier_wait(&step); /* e is made */
    if (is_y)
        attack();
    pthread_barrier_wait(&step);
    return NULL;
}

static void late_answers(void)
{
    pthread_barrier_init(&step, NULL, 3);
    late_main = (pid_t)syscall(SYS_gettid);
    late_phase = 0;
    late_a = make_target("late-a", 0xf1);
    late_d = make_target("late-d", 0xf2);
    pthread_t x, y;
    ck_assert_int_eq(pthread_create(&x, NULL, late_thread, NULL), 0);
    ck_assert_int_eq(pthread_create(&y, NULL, late_thread, (void *)1), 0);
    pthread_barrier_wait(&step);
    ck_assert_int_eq(keyheap_domain_destroy(late_a.d), 0); /* round R: neither answers */
    late_phase = 1;
    ck_assert_int_eq(keyheap_domain_destroy(late_d.d), 0); /* R+1: X twice, Y never */
    target = make_target("late-e", 0xf3);
    ck_assert_int_ne(target.key, late_d.key); /* Y may have late_d's key open */
    ck_assert_int_ne(target.key, late_a.key);
    arm();
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    pthread_join(x, NULL);
    pthread_join(y, NULL);
    ck_assert_uint_eq(seen, 0xf3);
}

static void late_answers_quiet(void)
{
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    late_answers();
    dup2(saved, STDERR_FILENO);
    close(null);
    close(saved);
}

START_TEST(test_late_answers_of_a_missed_round_never_count_for_the_next)
{
    twin = 0;
    late_answers_quiet();
}
END_TEST

START_TEST(test_late_answers_twin_thread_reads_the_next_domain_after_entering)
{
    twin = 1;
    late_answers_quiet();
}
END_TEST

/* A page the program tagged itself with keyheap_domain_pkey's answer
 * keeps that key out of use after destroy, with a warning; the twin:
 * without such a page the key is reused at once. */
static void own_tagged_page(int tag)
{
    struct target d = make_target("told", 0xe1);
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(page, MAP_FAILED);
    page[0] = 0x5e;
    if (tag)
        ck_assert_int_eq(pkey_mprotect(page, 4096, PROT_READ | PROT_WRITE, d.key), 0);
    ck_assert_int_eq(keyheap_domain_destroy(d.d), 0);
    target = make_target("next-told", 0xe2);
    if (!tag) {
        ck_assert_int_eq(target.key, d.key);
        return;
    }
    ck_assert_int_ne(target.key, d.key);
    kht_expect_pku_fault(d.key);
    kht_read(page); /* still the old key's, closed here: never another domain's */
}

static void tag_and_destroy(void)
{
    own_tagged_page(1);
}

START_TEST(test_destroy_keeps_a_key_that_pages_outside_keyheap_still_carry)
{
    const char *text;
    {
        static char buf[1024];
        char path[] = "/tmp/keyheap-told-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fd, STDERR_FILENO);
            tag_and_destroy();
            _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_int_ge(pread(fd, buf, sizeof buf - 1, 0), 0);
        close(fd);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == KHT_EXIT_PKU_FAULT,
                      "status %#x: %s", status, buf);
        text = buf;
    }
    ck_assert_msg(strstr(text, "keyheap: keyheap_domain_destroy(\"told\"): 1 mapping(s) outside "
                               "the domain still carry its key ") != NULL,
                  "%s", text);
}
END_TEST

START_TEST(test_destroy_reuses_a_key_no_page_carries)
{
    own_tagged_page(0);
}
END_TEST

/* pkey_alloc's own errors reach the caller: a seccomp filter that makes
 * it fail with EPERM gives EPERM, not ENOSPC. */
START_TEST(test_domain_create_passes_on_pkey_allocs_errno)
{
    ck_assert_int_eq(keyheap_pku_supported(), 1);
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_alloc, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
    errno = 0;
    ck_assert_ptr_null(keyheap_domain_create("refused", 0));
    ck_assert_int_eq(errno, EPERM);
}
END_TEST

/* A destroy whose decommit fails (a seccomp filter makes every
 * mprotect(PROT_NONE) fail with ENOMEM, as a full vm.max_map_count would):
 * jemalloc then still believes the emptied extents committed, while the
 * destroy's discard makes them PROT_NONE.  The slot's next domain must not
 * get that arena back: its blocks are writable. */
START_TEST(test_slot_reused_after_a_failed_decommit_hands_out_writable_memory)
{
    struct target t = make_target("undecommitted", 0xd1);
    unsigned char *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = keyheap_malloc(t.d, 1024);
        ck_assert_ptr_nonnull(blocks[i]);
    }
    keyheap_enter(t.d);
    for (int i = 0; i < 64; i++)
        memset(blocks[i], 0xd1, 1024);
    keyheap_leave(t.d);
    /* Only mprotects of the 64 MiB (the smallest region size) around the
     * blocks fail: LeakSanitizer's own PROT_NONE guard at exit must not. */
    uintptr_t lo = (uintptr_t)blocks[0];
    for (int i = 0; i < 64; i++) {
        if ((uintptr_t)blocks[i] < lo)
            lo = (uintptr_t)blocks[i];
        keyheap_free(blocks[i]);
    }
    lo &= ~(uintptr_t)((64u << 20) - 1); /* regions are aligned to their size */
    uintptr_t hi = lo + (64u << 20);
    ck_assert_uint_eq(lo >> 32, hi >> 32); /* one 32-bit comparison for each end */
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 0, 8),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_NONE, 0, 6),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]) + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(lo >> 32), 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)lo, 0, 2),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)hi, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOMEM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
    void *slot = t.d;
    ck_assert_int_eq(keyheap_domain_destroy(t.d), 0);
    /* Destroyed slots wait their turn: make and destroy domains until one
     * lands in that slot again. */
    keyheap_domain_t *next = NULL;
    for (int i = 0; i < 2 * 64 && next != slot; i++) {
        if (next != NULL)
            ck_assert_int_eq(keyheap_domain_destroy(next), 0);
        next = keyheap_domain_create("next-in-slot", 0);
        ck_assert_ptr_nonnull(next);
    }
    ck_assert_ptr_eq(next, slot);
    for (int i = 0; i < 64; i++) {
        blocks[i] = keyheap_malloc(next, 1024);
        ck_assert_ptr_nonnull(blocks[i]);
    }
    unsigned same = 0;
    keyheap_enter(next);
    for (int i = 0; i < 64; i++)
        memset(blocks[i], 0xd2, 1024); /* SIGSEGV (SEGV_ACCERR) on PROT_NONE pages */
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 1024; j++)
            same += kht_read(blocks[i] + j) == 0xd2;
    keyheap_leave(next);
    ck_assert_uint_eq(same, 64 * 1024);
}
END_TEST

/* ------------------------------------------- a free racing a destroy */

#define RACE_BLOCKS 64
static unsigned char *race_blocks[RACE_BLOCKS];
static sem_t race_started;

static void *free_them_all(void *arg)
{
    (void)arg;
    sem_post(&race_started);
    for (int i = 0; i < RACE_BLOCKS; i++)
        keyheap_free(race_blocks[i]);
    return NULL;
}

/* In a child: another thread frees 64 scrubbed blocks of 1 MiB from
 * outside the domain (each free zeroes its block with the key opened)
 * while this one destroys the domain, or (racing == 0) after it. */
static void free_while_destroying(int racing)
{
    sem_init(&race_started, 0, 0);
    struct target d = make_target("racy", 0xc1);
    for (int i = 0; i < RACE_BLOCKS; i++) {
        race_blocks[i] = keyheap_malloc(d.d, 1 << 20);
        ck_assert_ptr_nonnull(race_blocks[i]);
    }
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_them_all, NULL), 0);
    if (!racing)
        pthread_join(t, NULL);
    sem_take(&race_started);
    ck_assert_int_eq(keyheap_domain_destroy(d.d), 0);
    if (racing)
        pthread_join(t, NULL);
}

/* The outcomes a racing free may have: none (it was done first), or an
 * abort with one of keyheap's two messages; never a crash elsewhere. */
START_TEST(test_free_racing_destroy_waits_or_aborts_with_a_keyheap_message)
{
    unsigned aborted = 0;
    for (int round = 0; round < 10; round++) {
        char path[] = "/tmp/keyheap-race-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            dup2(fd, STDERR_FILENO);
            free_while_destroying(1);
            _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        char text[1024] = {0};
        ck_assert_int_ge(pread(fd, text, sizeof text - 1, 0), 0);
        close(fd);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                      "round %d: status %#x, stderr: %s", round, status, text);
        ck_assert_msg(strncmp(text, "keyheap: free of 0x", 19) == 0 ||
                          strncmp(text, "keyheap: use-after-destroy free of 0x", 37) == 0,
                      "round %d: %s", round, text);
        ck_assert_msg(strstr(text, "in domain \"racy\"") != NULL, "round %d: %s", round, text);
        ck_assert_msg(strstr(text, "jemalloc") == NULL, "round %d: %s", round, text);
        aborted++;
    }
    /* The race happened, or the test proves nothing. */
    ck_assert_uint_gt(aborted, 0);
}
END_TEST

START_TEST(test_free_before_destroy_twin_finishes_cleanly)
{
    free_while_destroying(0);
}
END_TEST

/* A round lists /proc/self/task while other threads exit: the kernel
 * resumes a listing at the last task it returned, and when that one has
 * exited it counts its way in by position, skipping a task for each that
 * exited before.  Here 700 threads exit while the round waits for a slow
 * registered thread (one that blocks the signal for 300 ms, by the system
 * call), and the thread with the stale key comes last in the list. */
#define EXITERS 700
static struct target first;
static struct timespec exit_at;
static volatile int exiters_ready, slow_go;

static void *exiter(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&exiters_ready, 1, __ATOMIC_SEQ_CST);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &exit_at, NULL) != 0) {
    }
    return NULL;
}

static void *slow_answerer(void *arg)
{
    keyheap_enter((keyheap_domain_t *)arg); /* registered: waited for */
    keyheap_leave((keyheap_domain_t *)arg);
    sigset_t pkru_signal;
    sigemptyset(&pkru_signal);
    sigaddset(&pkru_signal, SIGRTMAX - 1);
    raw_sigmask(SIG_BLOCK, &pkru_signal);
    __atomic_add_fetch(&exiters_ready, 1, __ATOMIC_SEQ_CST);
    while (!slow_go)
        sleep_ms(1);
    sleep_ms(300);
    raw_sigmask(SIG_UNBLOCK, &pkru_signal);
    return NULL;
}

static void *last_listed(void *arg)
{
    (void)arg;
    kht_wrpkru(kht_pkru() & ~(3u << (2 * first.key)));
    __atomic_add_fetch(&exiters_ready, 1, __ATOMIC_SEQ_CST);
    pthread_barrier_wait(&step); /* first destroyed, target made */
    attack();
    pthread_barrier_wait(&step);
    return NULL;
}

static void round_while_threads_exit(void)
{
    pthread_barrier_init(&step, NULL, 2);
    first = make_target("exits-first", 0xe1);
    keyheap_domain_t *reg = keyheap_domain_create("exits-registered", 0);
    ck_assert_ptr_nonnull(reg);
    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 65536);
    clock_gettime(CLOCK_MONOTONIC, &exit_at);
    exit_at.tv_sec += 10; /* time enough to make them, even emulated */
    pthread_t t, w, slow;
    ck_assert_int_eq(pthread_create(&slow, &small, slow_answerer, reg), 0);
    for (int i = 0; i < EXITERS; i++) {
        ck_assert_int_eq(pthread_create(&t, &small, exiter, NULL), 0);
        pthread_detach(t);
    }
    ck_assert_int_eq(pthread_create(&w, &small, last_listed, NULL), 0);
    while (exiters_ready != EXITERS + 2)
        sleep_ms(1);
    /* The destroy starts 100 ms before the exiters end. */
    struct timespec start = exit_at;
    start.tv_nsec -= 100000000L;
    if (start.tv_nsec < 0) {
        start.tv_sec--;
        start.tv_nsec += 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &start, NULL) != 0) {
    }
    slow_go = 1;
    ck_assert_int_eq(keyheap_domain_destroy(first.d), 0);
    target = make_target("exits-next", 0xe2);
    arm();
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    pthread_join(w, NULL);
    pthread_join(slow, NULL);
    ck_assert_uint_eq(seen, 0xe2);
}

START_TEST(test_close_round_reaches_a_thread_listed_after_700_that_exit_mid_round)
{
    twin = 0;
    round_while_threads_exit();
}
END_TEST

START_TEST(test_close_round_with_700_exiting_twin_reads_inside)
{
    twin = 1;
    round_while_threads_exit();
}
END_TEST

/* ------------------------------------- threads that block the signal */

/* A thread that never used a domain blocks keyheap's signal and has a
 * domain's key open (by hand, as code behind keyheap's back could).  With
 * pthread_sigmask the block does not take (keyheap's wrapper leaves its
 * signal out): destroy's round closes the key in the thread, the key is
 * reused, and the thread cannot read the next domain.  With the system
 * call, or while it waits in ppoll with a mask that blocks every signal,
 * the thread cannot be reached: destroy must keep the key (the next
 * domain gets another one), never free it and hand it on. */
enum block_how { BY_PTHREAD_SIGMASK, BY_SYSTEM_CALL, BY_PPOLL_MASK };
static int ppoll_pipe[2];
static volatile pid_t blocker_tid;

static void *blocker(void *arg)
{
    enum block_how how = (enum block_how)(intptr_t)arg;
    sigset_t pkru_signal;
    sigemptyset(&pkru_signal);
    sigaddset(&pkru_signal, SIGRTMAX - 1);
    if (how == BY_SYSTEM_CALL)
        raw_sigmask(SIG_BLOCK, &pkru_signal);
    else if (how == BY_PTHREAD_SIGMASK)
        ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &pkru_signal, NULL), 0);
    kht_wrpkru(kht_pkru() & ~(3u << (2 * first.key)));
    blocker_tid = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(&step); /* blocked, and first's key open */
    if (how == BY_PPOLL_MASK) {
        /* Asleep with every signal blocked until destroy has returned:
         * its signal is delivered only afterwards, late. */
        sigset_t all;
        sigfillset(&all);
        struct pollfd p = {.fd = ppoll_pipe[0], .events = POLLIN};
        ck_assert_int_eq(ppoll(&p, 1, NULL, &all), 1);
        char c;
        ck_assert_int_eq(read(ppoll_pipe[0], &c, 1), 1);
    }
    pthread_barrier_wait(&step); /* first destroyed, target made */
    attack();
    pthread_barrier_wait(&step);
    return NULL;
}

static void destroy_under_blocker(enum block_how how)
{
    int raw = how != BY_PTHREAD_SIGMASK; /* the thread cannot be reached */
    pthread_barrier_init(&step, NULL, 2);
    ck_assert_int_eq(pipe(ppoll_pipe), 0);
    first = make_target("blocked-first", 0xc1);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, blocker, (void *)(intptr_t)how), 0);
    pthread_barrier_wait(&step);
    if (how == BY_PPOLL_MASK)
        while (!kht_task_sleeping(blocker_tid))
            sleep_ms(1);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    if (raw)
        dup2(null, STDERR_FILENO); /* "did not answer" */
    ck_assert_int_eq(keyheap_domain_destroy(first.d), 0);
    dup2(saved, STDERR_FILENO);
    close(null);
    close(saved);
    ck_assert_int_eq(write(ppoll_pipe[1], "x", 1), 1);
    target = make_target("blocked-next", 0xc2);
    if (raw)
        ck_assert_int_ne(target.key, first.key); /* kept */
    else
        ck_assert_int_eq(target.key, first.key); /* closed everywhere, reused */
    arm();
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0xc2);
}

START_TEST(test_thread_blocking_the_signal_with_pthread_sigmask_is_still_closed_by_destroy)
{
    twin = 0;
    destroy_under_blocker(BY_PTHREAD_SIGMASK);
}
END_TEST

START_TEST(test_thread_blocking_the_signal_with_pthread_sigmask_twin_reads_inside)
{
    twin = 1;
    destroy_under_blocker(BY_PTHREAD_SIGMASK);
}
END_TEST

START_TEST(test_thread_blocking_the_signal_with_the_system_call_never_gets_a_freed_key)
{
    twin = 0;
    destroy_under_blocker(BY_SYSTEM_CALL);
}
END_TEST

START_TEST(test_thread_blocking_the_signal_with_the_system_call_twin_reads_inside)
{
    twin = 1;
    destroy_under_blocker(BY_SYSTEM_CALL);
}
END_TEST

START_TEST(test_thread_waiting_in_ppoll_with_every_signal_blocked_never_gets_a_freed_key)
{
    twin = 0;
    destroy_under_blocker(BY_PPOLL_MASK);
}
END_TEST

START_TEST(test_thread_waiting_in_ppoll_with_every_signal_blocked_twin_reads_inside)
{
    twin = 1;
    destroy_under_blocker(BY_PPOLL_MASK);
}
END_TEST

/* The same under the watchdog at 1 ms: its rounds, which the blocked
 * thread does not answer either, neither free the key nor open it. */
START_TEST(test_thread_blocking_the_signal_under_the_watchdog_never_gets_a_freed_key)
{
    setenv("KEYHEAP_CONF", "watchdog:1", 1);
    twin = 0;
    destroy_under_blocker(BY_SYSTEM_CALL);
}
END_TEST

START_TEST(test_thread_blocking_the_signal_under_the_watchdog_twin_reads_inside)
{
    setenv("KEYHEAP_CONF", "watchdog:1", 1);
    twin = 1;
    destroy_under_blocker(BY_SYSTEM_CALL);
}
END_TEST

/* The same thread unblocks late, inside the next domain: the queued
 * signal of the destroy's round is delivered there, and must not close
 * the key of the domain the thread is inside (the old round's key may be
 * that domain's by now). */
static void *late_unblocker(void *arg)
{
    (void)arg;
    sigset_t pkru_signal;
    sigemptyset(&pkru_signal);
    sigaddset(&pkru_signal, SIGRTMAX - 1);
    raw_sigmask(SIG_BLOCK, &pkru_signal);
    pthread_barrier_wait(&step); /* blocked */
    pthread_barrier_wait(&step); /* first destroyed, target made */
    keyheap_enter(target.d);
    kht_write(target.p + 3, 0xc4);
    raw_sigmask(SIG_UNBLOCK, &pkru_signal); /* the old round's signal runs here */
    kht_write(target.p + 4, 0xc5);
    seen = kht_read(target.p + 3);
    keyheap_leave(target.d);
    return NULL;
}

START_TEST(test_late_pkru_signal_never_closes_the_domain_its_thread_is_inside)
{
    pthread_barrier_init(&step, NULL, 2);
    first = make_target("late-first", 0xc3);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, late_unblocker, NULL), 0);
    pthread_barrier_wait(&step);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    ck_assert_int_eq(keyheap_domain_destroy(first.d), 0);
    dup2(saved, STDERR_FILENO);
    close(null);
    close(saved);
    target = make_target("late-next", 0xc6);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 0xc4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("isolation");
    TCase *born = tcase_create("born");
    tcase_set_timeout(born, 120);
    tcase_add_exit_test(born, test_worker_that_probed_pku_before_the_first_domain_cannot_read_it,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born, test_worker_that_probed_pku_before_the_first_domain_reads_it_inside);
    tcase_add_exit_test(born,
                        test_thread_created_after_keyheap_pku_supported_cannot_read_a_later_domain,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born,
                   test_thread_created_after_keyheap_pku_supported_reads_a_later_domain_inside);
    tcase_add_exit_test(
        born, test_thread_created_inside_a_domain_destroyed_before_it_ran_cannot_read_the_next,
        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born,
                   test_thread_created_inside_a_domain_destroyed_before_it_ran_reads_the_next_inside);
    tcase_add_exit_test(born, test_thrd_create_inside_a_domain_starts_the_thread_closed,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born, test_thrd_create_inside_a_domain_thread_reads_after_entering);
    tcase_add_exit_test(born, test_sigev_thread_timer_made_inside_a_domain_notifies_closed,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born,
                   test_sigev_thread_timer_made_inside_a_domain_notification_reads_after_entering);
    tcase_add_exit_test(born,
                        test_raw_clone_thread_made_inside_a_destroyed_domain_cannot_read_the_next,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born, test_raw_clone_thread_runs_and_the_next_domain_reads_inside);
    tcase_add_exit_test(born,
                        test_thread_that_opened_pkru_by_hand_cannot_read_the_next_owner_of_a_key,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(born,
                   test_thread_that_opened_pkru_by_hand_reads_the_next_owner_after_entering);
    suite_add_tcase(s, born);

    TCase *ending = tcase_create("ending");
    tcase_set_timeout(ending, 120);
    tcase_add_test(ending, test_destroy_is_busy_while_a_thread_specific_data_destructor_is_inside);
    tcase_add_test(ending, test_pthread_exit_inside_a_domain_keeps_it_busy_until_the_thread_is_gone);
    tcase_add_test(ending,
                   test_cancellation_inside_a_domain_keeps_it_busy_until_the_thread_is_gone);
    tcase_add_test(ending, test_enter_after_keyheaps_last_exit_hook_aborts_with_message);
    tcase_add_test(ending,
                   test_thread_first_using_a_domain_in_a_late_destructor_round_still_ends_registered_last);
    tcase_add_test(ending,
                   test_domain_allocation_in_a_destructor_after_jemallocs_cleanup_fails_never_untagged);
    suite_add_tcase(s, ending);

    TCase *signals = tcase_create("signals");
    tcase_set_timeout(signals, 300);
    tcase_add_exit_test(signals, test_signal_handler_entering_at_every_instruction_of_enter_and_leave,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_exit_test(signals, test_signal_handler_entering_at_every_instruction_in_verify_mode,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(signals, test_verify_mode_still_aborts_on_a_key_a_handler_opened_by_hand);
    tcase_add_test(signals, test_a_frame_being_entered_never_names_the_domain_left_before_it);
    tcase_add_test(signals, test_a_frame_being_entered_above_a_domain_still_inside_keeps_it_busy);
    suite_add_tcase(s, signals);

    TCase *watchdog = tcase_create("watchdog");
    tcase_set_timeout(watchdog, 300);
    tcase_add_test(watchdog, test_watchdog_at_1ms_never_closes_a_domain_a_thread_is_inside);
    tcase_add_test(watchdog, test_watchdog_round_sent_before_a_domain_was_made_never_closes_it);
    tcase_add_exit_test(watchdog, test_watchdog_never_opens_a_signal_handlers_pkru,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(watchdog, test_signal_handler_that_enters_reads_under_the_watchdog);
    tcase_add_exit_test(watchdog, test_watchdog_closes_a_key_reopened_by_hand_after_a_leave,
                        KHT_EXIT_PKU_FAULT);
    suite_add_tcase(s, watchdog);
    TCase *keys = tcase_create("keys");
    tcase_set_timeout(keys, 120);
    tcase_add_test(keys, test_key_of_an_unanswered_close_round_is_kept_audited_and_freed_later);
    tcase_add_test(keys, test_destroy_keeps_a_key_that_pages_outside_keyheap_still_carry);
    tcase_add_test(keys, test_destroy_reuses_a_key_no_page_carries);
    tcase_add_test(keys, test_domain_create_passes_on_pkey_allocs_errno);
    tcase_add_test(keys, test_slot_reused_after_a_failed_decommit_hands_out_writable_memory);
    tcase_add_exit_test(keys, test_late_answers_of_a_missed_round_never_count_for_the_next,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(keys, test_late_answers_twin_thread_reads_the_next_domain_after_entering);
    suite_add_tcase(s, keys);

    TCase *blocking = tcase_create("blocking");
    tcase_set_timeout(blocking, 120);
    tcase_add_exit_test(blocking,
                        test_thread_blocking_the_signal_with_pthread_sigmask_is_still_closed_by_destroy,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(blocking, test_thread_blocking_the_signal_with_pthread_sigmask_twin_reads_inside);
    tcase_add_exit_test(blocking,
                        test_thread_blocking_the_signal_with_the_system_call_never_gets_a_freed_key,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(blocking, test_thread_blocking_the_signal_with_the_system_call_twin_reads_inside);
    tcase_add_exit_test(blocking,
                        test_thread_waiting_in_ppoll_with_every_signal_blocked_never_gets_a_freed_key,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(blocking,
                   test_thread_waiting_in_ppoll_with_every_signal_blocked_twin_reads_inside);
    tcase_add_exit_test(blocking,
                        test_thread_blocking_the_signal_under_the_watchdog_never_gets_a_freed_key,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(blocking, test_thread_blocking_the_signal_under_the_watchdog_twin_reads_inside);
    tcase_add_test(blocking, test_late_pkru_signal_never_closes_the_domain_its_thread_is_inside);
    tcase_add_exit_test(blocking, test_close_round_reaches_a_thread_listed_after_700_that_exit_mid_round,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(blocking, test_close_round_with_700_exiting_twin_reads_inside);
    suite_add_tcase(s, blocking);

    TCase *racing = tcase_create("racing");
    tcase_set_timeout(racing, 300);
    tcase_add_test(racing, test_free_racing_destroy_waits_or_aborts_with_a_keyheap_message);
    tcase_add_test(racing, test_free_before_destroy_twin_finishes_cleanly);
    suite_add_tcase(s, racing);
    return kht_main(s);
}
