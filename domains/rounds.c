/*
 * domains/rounds.c - closing keys in other threads: rounds of keyheap's
 * PKRU signal, for a destroy and for the watchdog (domains/watchdog.c).
 *
 * PKRU is per thread, and no thread can write another's.  But a signal
 * handler can: the kernel saves the interrupted PKRU in the signal frame's
 * XSAVE area and restores it from there at sigreturn, edited or not
 * (../shared/PKU-FACTS.md, row 1c).  A round sends KHI_PKRU_SIGNAL to every
 * task of the process (/proc/self/task: threads keyheap never saw too,
 * such as glibc's helper threads, thrd_create's and raw clone's), and each
 * handler closes keys in its own thread, then acknowledges with the
 * round's number.  Three users:
 *
 *  - keyheap_domain_destroy closes the destroyed domain's key in every
 *    task before it frees the key, so a thread whose PKRU went stale can
 *    never read the next domain that gets the key.
 *  - the key cache's sweep (domains/keys.c) closes the keys of resident
 *    domains in every task whose domain stack does not name the domain,
 *    and marks the domain used where it does; the threads keyheap has
 *    registered are read instead (khi_threads_sweep) and not signalled.
 *  - the watchdog (KEYHEAP_CONF=watchdog:<ms>), a thread that every <ms>
 *    milliseconds has every task close the keys it has open and must not:
 *    keyheap's keys of domains it is not inside (read-only where it is
 *    inside read-only), keyheap's kept keys, and keys no code allocated.
 *
 * Handlers only ever close keys, never open one: a key of a domain the
 * thread is inside (a frame of its domain stack) or that keyheap opened
 * for its own use (khi_internal_open) stays as it is, and keys other code
 * allocated (foreign) are never touched.  Closing reaches what PKRU will
 * be again: the live value in the signal frame, every PKRU saved in the
 * thread's domain stack (each leave restores one), and RAX when the thread
 * stopped at a WRPKRU (the value it is about to write).  A thread stopped
 * between an RDPKRU and its WRPKRU holds PKRU in a register keyheap cannot
 * find; a destroy therefore runs its round again while any handler still
 * found the key open, up to CLOSE_PASSES times.
 *
 * The handler runs with PKRU at the kernel's default (every key but 0
 * closed) and reads only key-0 memory: keyheap's tables and the thread's
 * own state.  It is async-signal-safe: no lock, no allocation; system
 * calls and write(2) for reports.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/malloc.h"
#include "alloc/pkey.h"
#include "alloc/procfs.h"
#include "domains/audit.h"
#include "domains/domain.h"
#include "domains/thread.h"
#include "domains/rounds.h"
#include "domains/xsave.h"

/* One round: what every signalled thread does.  The runner writes the
 * parameters, then the round number (release); a handler reads the number,
 * the parameters, and the number again, and answers only when it did not
 * change, so an answer always means "done with this round's parameters".
 * A late signal of an earlier round applies the current parameters. */
static struct {
    unsigned close; /* AD bits of keys to close, whatever the thread's stack */
    bool audit;     /* the watchdog's round: close what the thread must not have */
    bool sweep;     /* the key cache's sweep: close's keys are of resident domains;
                       a thread inside one keeps its key and marks it used */
} rq;
static unsigned round_no;
static unsigned reopened; /* handlers of this round that found a key to close */
/* Tasks a sweep's round does not signal: the registered threads, which
 * khi_threads_sweep read instead.  Under round_lock. */
static const pid_t *round_skip;
static unsigned round_nskip;

/* The tasks of one batch of a round, and the round each has answered. */
#define BATCH 512u
static struct task {
    pid_t tid;
    unsigned answered;
} batch[BATCH];
static unsigned batch_len;
static pthread_mutex_t round_lock = PTHREAD_MUTEX_INITIALIZER;

/* Tasks that block every signal for good and never run user code (glibc's
 * timer helper thread, recorded by the timer_create wrapper): the only
 * ones a round does not wait for. */
#define EXEMPT_MAX 8u
static pid_t exempt[EXEMPT_MAX];

static bool installed; /* the handler; guarded by the domain lock */

/* Whether the interrupted thread stopped at a WRPKRU (0F 01 EF).  The
 * bytes are read with process_vm_readv, which fails cleanly where code is
 * not readable (execute-only pages) instead of faulting in the handler. */
static bool at_wrpkru(const ucontext_t *uc)
{
    unsigned char code[3];
    struct iovec local = {code, sizeof code};
    struct iovec remote = {(void *)uc->uc_mcontext.gregs[REG_RIP], sizeof code};
    if (syscall(SYS_process_vm_readv, getpid(), &local, 1ul, &remote, 1ul, 0ul) !=
        (long)sizeof code)
        return false;
    return code[0] == 0x0f && code[1] == 0x01 && code[2] == 0xef;
}

/* One "keyheap: watchdog: ..." line per key the round closed here. */
static void report(unsigned hw, unsigned want)
{
    char tid[24], k[24];
    khi_dec(tid, (unsigned long)syscall(SYS_gettid));
    for (unsigned key = 1; key < 16; key++) {
        unsigned bits = 3u << (2 * key);
        if (((hw ^ want) & bits) == 0)
            continue;
        const struct khi_heap *d = khi_domain_of_key(key);
        khi_dec(k, key);
        if (d != NULL)
            khi_warn("watchdog: thread ", tid, ": key ", k, " of domain \"", d->name, "\" was ",
                     khi_key_rights(hw, key), ", the domain stack says ", khi_key_rights(want, key),
                     "; reset", (char *)NULL);
        else
            khi_warn("watchdog: thread ", tid, ": key ", k,
                     khi_keys_held() & (1u << (2 * key)) ? ", kept by keyheap after a destroy, was "
                                                         : ", which no code has allocated, was ",
                     khi_key_rights(hw, key), "; closed", (char *)NULL);
    }
}

/* Applies this round to one PKRU value: the destroy's keys closed, and in
 * an audit round the watchdog's rule (domains/audit.h) with frames [0, n)
 * allowing. */
static unsigned apply(unsigned pkru, unsigned close, bool audit, unsigned n,
                      struct khi_audit_keys *q)
{
    pkru = khi_pkru_close(pkru, close & ~(khi_internal_open & 0x55555555u));
    if (audit)
        pkru = khi_audit_close(pkru, &keyheap_abi_self, n, q);
    return pkru;
}

static void answer(unsigned r)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    unsigned n = __atomic_load_n(&batch_len, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n && i < BATCH; i++)
        if (__atomic_load_n(&batch[i].tid, __ATOMIC_RELAXED) == tid) {
            __atomic_store_n(&batch[i].answered, r, __ATOMIC_RELEASE);
            return;
        }
}

static void on_signal(int sig, siginfo_t *info, void *ctx)
{
    (void)sig, (void)info;
    int saved_errno = errno;
    ucontext_t *uc = ctx;
    unsigned r, close;
    bool audit, sweep;
    do {
        r = __atomic_load_n(&round_no, __ATOMIC_ACQUIRE);
        close = __atomic_load_n(&rq.close, __ATOMIC_RELAXED);
        audit = __atomic_load_n(&rq.audit, __ATOMIC_RELAXED);
        sweep = __atomic_load_n(&rq.sweep, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    } while (r != __atomic_load_n(&round_no, __ATOMIC_RELAXED));

    struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned depth = t->depth < KEYHEAP_MAX_DEPTH ? t->depth : KEYHEAP_MAX_DEPTH;
    if (sweep)
        close = khi_stack_keep(t, depth, close);
    else /* A destroy closes only keys it keeps: a late signal (queued
          * while the thread blocked it) never closes a key that went to a
          * new domain meanwhile (rq.close is cleared at each round's end
          * as well). */
        close &= __atomic_load_n(&khi_keys_kept, __ATOMIC_RELAXED);
    struct khi_audit_keys q = {0, 0};
    bool changed = false;
    uint64_t *bv;
    uint32_t *slot = khi_xsave_pkru_slot(uc, &bv);
    if (slot == NULL) {
        /* The live PKRU is out of reach: no answer, so that a destroy
         * keeps its key rather than trust a thread it could not close. */
        errno = saved_errno;
        return;
    }
    /* A PKRU in its initial state is 0 and not stored. */
    unsigned live = (*bv & (1u << KHI_XFEATURE_PKRU)) ? *slot : 0;
    unsigned live_want = apply(live, close, audit, depth, &q);
    if (live_want != live) {
        if (audit)
            report(live, live_want);
        *slot = live_want;
        *bv |= 1u << KHI_XFEATURE_PKRU;
        changed = true;
    }
    /* Each leave restores a saved PKRU: frame i's, with frames [0, i)
     * still entered. */
    for (unsigned i = 0; i < depth; i++) {
        unsigned saved = t->stack[i].pkru;
        unsigned want = apply(saved, close, audit, i, &q);
        if (want != saved) {
            t->stack[i].pkru = want;
            changed = true;
        }
    }
    if (at_wrpkru(uc)) {
        unsigned rax = (unsigned)uc->uc_mcontext.gregs[REG_RAX];
        unsigned want = apply(rax, close, audit, depth, &q);
        if (want != rax) {
            uc->uc_mcontext.gregs[REG_RAX] = (greg_t)want;
            changed = true;
        }
    }
    if (changed)
        __atomic_add_fetch(&reopened, 1, __ATOMIC_RELAXED);
    answer(r);
    errno = saved_errno;
}

/* ------------------------------------------------------------- rounds */

static bool sigblk_line(const char *line, void *ctx)
{
    if (strncmp(line, "SigBlk:", 7) != 0)
        return false;
    *(unsigned long long *)ctx = strtoull(line + 7, NULL, 16);
    return true;
}

/* Whether task tid blocks sig, from /proc/self/task/<tid>/status. */
static bool task_blocks(pid_t tid, int sig)
{
    char path[64], num[24];
    strcpy(path, "/proc/self/task/");
    strcat(path, khi_dec(num, (unsigned long)tid));
    strcat(path, "/status");
    unsigned long long mask = 0;
    khi_proc_lines(path, sigblk_line, &mask);
    return (mask >> (sig - 1)) & 1u;
}

/* Whether task tid of process pid has exited (it can answer no round). */
static bool task_gone(pid_t pid, pid_t tid)
{
    return syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH;
}

static bool is_exempt(pid_t tid)
{
    for (unsigned i = 0; i < EXEMPT_MAX; i++)
        if (__atomic_load_n(&exempt[i], __ATOMIC_RELAXED) == tid)
            return true;
    return false;
}

void khi_rounds_exempt(pid_t tid)
{
    for (unsigned i = 0; i < EXEMPT_MAX; i++) {
        pid_t old = __atomic_load_n(&exempt[i], __ATOMIC_RELAXED);
        if (old == tid)
            return;
        if (old == 0 || task_gone(getpid(), old)) {
            __atomic_store_n(&exempt[i], tid, __ATOMIC_RELAXED);
            return;
        }
    }
}

/* Signals the tasks of the batch and waits for their answers to round r:
 * a task that is gone (ESRCH) needs none; after a moment, glibc's timer
 * helper (which blocks every signal and runs no user code) is not waited
 * for, and nor is a task that blocks the signal and never used a domain
 * when it was recorded as such a helper; every other task gets up to a
 * second.  A task that blocks the signal otherwise (a raw rt_sigprocmask:
 * keyheap's sigprocmask and pthread_sigmask never block it) counts as
 * not answering, so the key is kept.  Returns how many did not answer. */
static unsigned run_batch(unsigned r, pid_t pid)
{
    bool done[BATCH];
    unsigned left = 0;
    for (unsigned i = 0; i < batch_len; i++) {
        /* Gone (ESRCH): nothing to close.  Any other failure (EAGAIN: the
         * queue of realtime signals is full) leaves it unanswered. */
        done[i] = syscall(SYS_tgkill, pid, batch[i].tid, KHI_PKRU_SIGNAL) != 0 && errno == ESRCH;
        left += !done[i];
    }
    struct timespec step = {0, 50000};
    for (unsigned waited = 0; left != 0 && waited < 20000; waited++) {
        for (unsigned i = 0; i < batch_len; i++)
            if (!done[i] && __atomic_load_n(&batch[i].answered, __ATOMIC_ACQUIRE) == r) {
                done[i] = true;
                left--;
            }
        if (left == 0)
            break;
        if (waited % 20 == 19) /* each ms: a task that exited since never answers */
            for (unsigned i = 0; i < batch_len; i++)
                if (!done[i] && task_gone(pid, batch[i].tid)) {
                    done[i] = true;
                    left--;
                }
        if (waited == 40) /* 2 ms */
            for (unsigned i = 0; i < batch_len; i++)
                if (!done[i] && is_exempt(batch[i].tid) &&
                    task_blocks(batch[i].tid, KHI_PKRU_SIGNAL) &&
                    !khi_thread_registered(batch[i].tid)) {
                    done[i] = true;
                    left--;
                }
        nanosleep(&step, NULL);
    }
    return left;
}

/* Where /proc is not mounted: the round goes to the threads that used a
 * domain (the first BATCH of them), and nothing reaches threads keyheap
 * never saw. */
static unsigned signal_registered(unsigned r, pid_t pid, pid_t me)
{
    pid_t tids[BATCH];
    unsigned n = khi_thread_tids(tids, BATCH), len = 0;
    for (unsigned i = 0; i < n; i++) {
        if (tids[i] == me)
            continue;
        batch[len].answered = 0;
        __atomic_store_n(&batch[len].tid, tids[i], __ATOMIC_RELAXED);
        __atomic_store_n(&batch_len, ++len, __ATOMIC_RELEASE);
    }
    unsigned missing = run_batch(r, pid);
    __atomic_store_n(&batch_len, 0, __ATOMIC_RELEASE);
    return missing;
}

/* Every task of /proc/self/task but me, into *list (grown as needed).
 * Returns how many, or -1 without /proc (or memory).  *stable is false
 * when a listed task is gone by the end of the listing: the kernel resumes
 * a listing at the last task it returned, and when that task has exited
 * it counts its way in by position instead, which skips a task for every
 * one that exited before it.  A listing whose tasks all outlived it
 * missed none that lived through it. */
static long list_tasks(pid_t **list, size_t *cap, pid_t pid, pid_t me, bool *stable)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    char buf[4096];
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got <= 0)
            break;
        for (long off = 0; off < got;) {
            const struct dirent64 *e = (const struct dirent64 *)(void *)(buf + off);
            off += e->d_reclen;
            if (e->d_name[0] < '0' || e->d_name[0] > '9')
                continue;
            pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
            if (tid == me)
                continue;
            if (n == *cap) {
                size_t want = *cap != 0 ? *cap * 2 : 256;
                pid_t *grown = khi_own_realloc(*list, want * sizeof **list);
                if (grown == NULL) {
                    close(fd);
                    return -1;
                }
                *list = grown;
                *cap = want;
            }
            (*list)[n++] = tid;
        }
    }
    close(fd);
    *stable = true;
    for (size_t i = 0; i < n && *stable; i++)
        if (task_gone(pid, (*list)[i]))
            *stable = false;
    return (long)n;
}

unsigned khi_task_snapshot(pid_t *out, unsigned max)
{
    pid_t *list = NULL;
    size_t cap = 0;
    bool stable;
    long n = list_tasks(&list, &cap, getpid(), (pid_t)syscall(SYS_gettid), &stable);
    unsigned k = 0;
    for (long i = 0; i < n && k < max; i++)
        out[k++] = list[i];
    khi_own_free(list);
    return k;
}

/* Listings of a round before it gives up on finding every task. */
#define LISTINGS 64

/* Sends the round to every task but the caller, in batches, and lists the
 * tasks again until a listing that is stable finds no task the round has
 * not reached (threads made meanwhile by raw clone have their creator's
 * PKRU).  Returns how many tasks did not answer; a round that never got a
 * stable listing counts one more, so its key is kept. */
static unsigned signal_tasks(unsigned r)
{
    pid_t pid = getpid(), me = (pid_t)syscall(SYS_gettid);
    pid_t *list = NULL, *sent = NULL;
    size_t cap = 0, nsent = 0, sent_cap = 0;
    unsigned missing = 0;
    bool settled = false;
    __atomic_store_n(&batch_len, 0, __ATOMIC_RELEASE);
    /* Tasks not to signal count as reached already. */
    if (round_nskip != 0) {
        sent = khi_own_realloc(NULL, round_nskip * sizeof *sent);
        if (sent == NULL)
            return 1;
        memcpy(sent, round_skip, round_nskip * sizeof *sent);
        nsent = sent_cap = round_nskip;
    }
    for (unsigned pass = 0; pass < LISTINGS && !settled; pass++) {
        bool stable;
        long n = list_tasks(&list, &cap, pid, me, &stable);
        if (n < 0) {
            khi_own_free(list);
            khi_own_free(sent);
            if (pass == 0)
                return signal_registered(r, pid, me);
            return missing + 1;
        }
        bool fresh = false;
        for (long i = 0; i < n; i++) {
            pid_t tid = list[i];
            bool known = false;
            for (size_t j = 0; j < nsent && !known; j++)
                known = sent[j] == tid;
            if (known)
                continue;
            if (nsent == sent_cap) {
                size_t want = sent_cap != 0 ? sent_cap * 2 : 256;
                pid_t *grown = khi_own_realloc(sent, want * sizeof *sent);
                if (grown == NULL) {
                    khi_own_free(list);
                    khi_own_free(sent);
                    return missing + 1;
                }
                sent = grown;
                sent_cap = want;
            }
            sent[nsent++] = tid;
            fresh = true;
            if (batch_len == BATCH) {
                missing += run_batch(r, pid);
                __atomic_store_n(&batch_len, 0, __ATOMIC_RELEASE);
            }
            batch[batch_len].answered = 0;
            __atomic_store_n(&batch[batch_len].tid, tid, __ATOMIC_RELAXED);
            __atomic_store_n(&batch_len, batch_len + 1, __ATOMIC_RELEASE);
        }
        if (batch_len != 0)
            missing += run_batch(r, pid);
        __atomic_store_n(&batch_len, 0, __ATOMIC_RELEASE);
        settled = stable && !fresh;
    }
    khi_own_free(list);
    khi_own_free(sent);
    return missing + !settled;
}

/* The caller's own part of a round: a destroy's caller is not inside the
 * domain (destroy checked), so its PKRU and saved frames close the keys; a
 * sweep's keeps the keys of domains its stack names. */
static void close_here(unsigned close, bool sweep)
{
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    if (sweep)
        close = khi_stack_keep(t, t->depth, close);
    for (unsigned i = 0; i < t->depth && i < KEYHEAP_MAX_DEPTH; i++)
        t->stack[i].pkru = khi_pkru_close(t->stack[i].pkru, close);
    unsigned pkru = keyheap_abi_rdpkru();
    if (khi_pkru_close(pkru, close) != pkru)
        keyheap_abi_wrpkru(khi_pkru_close(pkru, close));
}

/* One round; returns how many tasks did not answer, and in *found how
 * many handlers had something to close. */
static unsigned run_round_of(unsigned close, bool audit, bool sweep, const pid_t *skip,
                             unsigned nskip, unsigned *found)
{
    pthread_mutex_lock(&round_lock);
    round_skip = skip;
    round_nskip = nskip;
    __atomic_store_n(&rq.close, close, __ATOMIC_RELAXED);
    __atomic_store_n(&rq.audit, audit, __ATOMIC_RELAXED);
    __atomic_store_n(&rq.sweep, sweep, __ATOMIC_RELAXED);
    __atomic_store_n(&reopened, 0, __ATOMIC_RELAXED);
    unsigned r = __atomic_add_fetch(&round_no, 1, __ATOMIC_RELEASE);
    if (r == 0) /* 0 is "never answered" */
        r = __atomic_add_fetch(&round_no, 1, __ATOMIC_RELEASE);
    unsigned missing = signal_tasks(r);
    *found = __atomic_load_n(&reopened, __ATOMIC_RELAXED);
    /* A signal delivered after the round (it was queued) closes nothing. */
    __atomic_store_n(&rq.close, 0u, __ATOMIC_RELAXED);
    __atomic_store_n(&rq.audit, false, __ATOMIC_RELAXED);
    __atomic_store_n(&rq.sweep, false, __ATOMIC_RELAXED);
    round_skip = NULL;
    round_nskip = 0;
    pthread_mutex_unlock(&round_lock);
    return missing;
}

/* Rounds of a destroy or a sweep, while a handler still found a key open:
 * a thread stopped between an RDPKRU and its WRPKRU may write it again. */
#define CLOSE_PASSES 4

/* Runs the round of close (a destroy's or a sweep's) until a pass finds
 * nothing to close; returns how many tasks did not answer, plus how many
 * still had a key reopened after the last pass.  The tasks of skip are
 * not signalled. */
static unsigned close_in_passes(unsigned close, bool sweep, const pid_t *skip, unsigned nskip)
{
    if (!installed)
        return 0;
    close_here(close, sweep);
    unsigned missing = 0, found = 0;
    for (unsigned pass = 0; pass < CLOSE_PASSES; pass++) {
        missing = run_round_of(close, false, sweep, skip, nskip, &found);
        if (found == 0 || missing != 0)
            return missing;
    }
    return missing + found;
}

unsigned khi_close_key_everywhere(unsigned ad_bits)
{
    return close_in_passes(ad_bits, false, NULL, 0);
}

unsigned khi_sweep_keys(unsigned ad_bits)
{
    if (!installed)
        return 0;
    /* The registered threads are read, not signalled (khi_threads_sweep);
     * without memory for their list, every task is signalled. */
    pid_t *skip = NULL;
    unsigned n = 0;
    for (unsigned cap = 64;; cap = n + 64) {
        pid_t *grown = khi_own_realloc(skip, cap * sizeof *skip);
        if (grown == NULL) {
            n = 0;
            break;
        }
        skip = grown;
        n = khi_threads_sweep(ad_bits, skip, cap);
        if (n <= cap)
            break;
    }
    unsigned missing = close_in_passes(ad_bits, true, skip, n);
    khi_own_free(skip);
    return missing;
}

unsigned khi_round_audit(void)
{
    unsigned found;
    return run_round_of(0, true, false, NULL, 0, &found);
}

void khi_rounds_install(void)
{
    if (installed || khi_pkey_test_init())
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    if (sigaction(KHI_PKRU_SIGNAL, &sa, NULL) != 0)
        return;
    installed = true;
}

bool khi_rounds_installed(void)
{
    return installed;
}

void khi_rounds_after_fork(void)
{
    /* The child's round state may be mid-round in a thread that is gone. */
    pthread_mutex_init(&round_lock, NULL);
    batch_len = 0;
}
