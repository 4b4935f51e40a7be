/*
 * domains/fault.c - the fault report (docs/guide.md, "Fault report").
 *
 * keyheap_domain_create installs this SIGSEGV handler once, at the first
 * domain that gets a hardware key.  On SEGV_PKUERR on the key of a live
 * domain (or SEGV_ACCERR on the memory of a parked one, which has no key:
 * "(parked: it has no key until a thread enters it)" instead of the key)
 * it writes one line to stderr, for example
 *
 *   keyheap: protection-key fault: thread 812 read of 0x7f3a00001000 in
 *   domain "tls-keys" (pkey 1) at ip 0x55d1c0a01139; open: "log" rw
 *
 * (one line; "open:" lists the domains this thread has entered, outermost
 * first, or "none").  The domain stack says what keyheap_enter opened, but
 * the hardware may have had something else open: a signal handler runs
 * with every domain closed whatever the interrupted code entered, and code
 * may run WRPKRU behind keyheap's back.  So the faulting context's PKRU is
 * taken from the signal frame (domains/xsave.h), and where it gives some
 * domain other rights than the stack, "open:" lists the domains that PKRU
 * left readable, in slot order, and the stack follows:
 *
 *   ...; open: none; entered: "app" rw (PKRU differs from the domain stack:
 *   a signal handler, which runs with every domain closed, or PKRU changed
 *   outside keyheap)
 *
 * Every SIGSEGV, reported or not, then goes on to the
 * action keyheap's handler replaced (pass_on below), so core dumps,
 * debuggers, sanitizers and fuzzers see the crash as before.
 *
 * on_segv and everything it calls run in a signal handler: they call only
 * async-signal-safe functions (write, syscall, sigaction, pthread_sigmask,
 * raise, sigemptyset, sigismember, sigaddset; CPUID and plain loads in
 * domains/xsave.c), take no lock and allocate nothing (objdump -d shows no
 * other call).  The
 * kernel starts every handler with the default PKRU (all keys but 0
 * access-disabled), so it reads only key-0 memory: the domain table, this
 * thread's keyheap_abi_self and its own stack.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/pkey.h"
#include "domains/domain.h"
#include "domains/fault.h"
#include "domains/xsave.h"

/* Bit 1 of the x86 page-fault error code: the access was a write. */
#define PF_WRITE 0x2

static struct sigaction previous; /* the action keyheap's handler replaced */
static bool installed;            /* guarded by khi_domains_lock */

/* ------------------------------------------------------------ the line */

/* The report, built on the stack and written with one write(2) so that it
 * does not interleave with other output.  What does not fit is cut and the
 * line ends in "..." (64 open domains with long names would not fit). */
struct line {
    size_t len;
    bool cut;
    char buf[512];
};

#define LINE_ROOM (sizeof((struct line *)0)->buf - 4) /* keeps room for "...\n" */

static void put(struct line *l, const char *s)
{
    for (; *s != '\0' && !l->cut; s++) {
        if (l->len == LINE_ROOM)
            l->cut = true;
        else
            l->buf[l->len++] = *s;
    }
}

static void put_char(struct line *l, char c)
{
    char s[2] = {c, '\0'};
    put(l, s);
}

/* d's name in double quotes.  Bytes that would make the line ambiguous
 * (quotes, backslashes, control characters, non-ASCII) become '?'.  At most
 * KEYHEAP_NAME_MAX bytes are read, so a name being rewritten by a racing
 * create cannot run the loop off the slot. */
static void put_name(struct line *l, const struct khi_heap *d)
{
    put_char(l, '"');
    for (size_t i = 0; i < KEYHEAP_NAME_MAX && d->name[i] != '\0'; i++) {
        char c = d->name[i];
        put_char(l, khi_name_char(c));
    }
    put_char(l, '"');
}

static void put_dec(struct line *l, unsigned long n)
{
    char num[24];
    put(l, khi_dec(num, n));
}

static void put_hex(struct line *l, unsigned long n)
{
    char num[24];
    put(l, khi_hex(num, n));
}

static void line_write(struct line *l)
{
    if (l->cut) {
        l->buf[l->len++] = '.';
        l->buf[l->len++] = '.';
        l->buf[l->len++] = '.';
    }
    l->buf[l->len++] = '\n';
    for (size_t done = 0; done < l->len;) {
        ssize_t w = write(STDERR_FILENO, l->buf + done, l->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

/* ---------------------------------------------------------- the report */

/* What a domain stack frame or a PKRU gives a domain. */
enum rights { CLOSED, READ_ONLY, READ_WRITE };

static const char *rights_name(enum rights r)
{
    return r == READ_WRITE ? " rw" : " ro";
}

/* The rights pkru gives d's key: access-disable closes it whatever
 * write-disable says. */
static enum rights pkru_rights(unsigned pkru, const struct khi_heap *d)
{
    unsigned bits = (pkru >> (2 * d->pkey)) & 3u;
    return bits & 1u ? CLOSED : bits & 2u ? READ_ONLY : READ_WRITE;
}

/* This thread's domain stack, its depth cut to what the stack can hold. */
static unsigned stack_depth(const struct keyheap_abi_thread *t)
{
    return t->depth > KEYHEAP_MAX_DEPTH ? KEYHEAP_MAX_DEPTH : t->depth;
}

/* The rights the domain stack gives d: the most any of its frames of d
 * gives (a read-only enter inside a read-write one stays writable). */
static enum rights stack_rights(const struct khi_heap *d)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    enum rights r = CLOSED;
    for (unsigned i = 0, n = stack_depth(t); i < n; i++) {
        const struct keyheap_abi_frame *f = &t->stack[i];
        if (khi_frame_heap(f) != d)
            continue;
        if (f->readonly && r == CLOSED)
            r = READ_ONLY;
        else if (!f->readonly)
            r = READ_WRITE;
    }
    return r;
}

/* Whether pkru gives some live domain other rights than the domain stack.
 * Keys keyheap opened for a moment for itself (khi_internal_open: a scrub)
 * are not counted, open or closed. */
static bool pkru_differs(unsigned pkru)
{
    for (unsigned i = 0; i < KHI_SLOTS; i++) {
        const struct khi_heap *d = &khi_heaps[i];
        if (!khi_heap_live(d) || d->pkey <= 0 || (khi_internal_open & d->abi.ad_bit))
            continue;
        if (pkru_rights(pkru, d) != stack_rights(d))
            return true;
    }
    return false;
}

/* This thread's domain stack, outermost first, or "none".  A frame without
 * a domain is an enter that has not written it yet: left out; one whose
 * pointer is not a domain (an overwritten stack) shows as "?". */
static void put_entered(struct line *l)
{
    const struct keyheap_abi_thread *t = &keyheap_abi_self;
    bool any = false;
    for (unsigned i = 0, depth = stack_depth(t); i < depth; i++) {
        const struct keyheap_abi_frame *f = &t->stack[i];
        const struct khi_heap *d = khi_frame_heap(f);
        if (d == NULL && f->domain == NULL)
            continue;
        if (any)
            put(l, ", ");
        any = true;
        if (d != NULL)
            put_name(l, d);
        else
            put(l, "?");
        put(l, rights_name(f->readonly ? READ_ONLY : READ_WRITE));
    }
    if (!any)
        put(l, "none");
}

/* The live domains pkru leaves readable, in slot order, or "none". */
static void put_readable(struct line *l, unsigned pkru)
{
    bool any = false;
    for (unsigned i = 0; i < KHI_SLOTS; i++) {
        const struct khi_heap *d = &khi_heaps[i];
        if (!khi_heap_live(d) || d->pkey <= 0 || pkru_rights(pkru, d) == CLOSED)
            continue;
        if (any)
            put(l, ", ");
        put_name(l, d);
        put(l, rights_name(pkru_rights(pkru, d)));
        any = true;
    }
    if (!any)
        put(l, "none");
}

/* "; open: " and what was open: the domain stack when the faulting
 * context's PKRU agrees with it (or the frame has no PKRU); otherwise what
 * PKRU had open, then the stack. */
static void put_open(struct line *l, const ucontext_t *uc)
{
    unsigned pkru;
    put(l, "; open: ");
    if (khi_xsave_pkru(uc, &pkru) || !pkru_differs(pkru)) {
        put_entered(l);
        return;
    }
    put_readable(l, pkru);
    put(l, "; entered: ");
    put_entered(l);
    put(l, " (PKRU differs from the domain stack: a signal handler, which runs with every "
           "domain closed, or PKRU changed outside keyheap)");
}

/* d is the domain of the fault; parked: the fault is SEGV_ACCERR on d's
 * memory while d had no key (the key cache, domains/keys.c). */
static void report(const struct khi_heap *d, const siginfo_t *si, const ucontext_t *uc,
                   bool parked)
{
    struct line l;
    l.len = 0;
    l.cut = false;
    put(&l, "keyheap: protection-key fault: thread ");
    put_dec(&l, (unsigned long)syscall(SYS_gettid));
    if (uc == NULL)
        put(&l, " access of ");
    else if (uc->uc_mcontext.gregs[REG_ERR] & PF_WRITE)
        put(&l, " write of ");
    else
        put(&l, " read of ");
    put_hex(&l, (unsigned long)si->si_addr);
    put(&l, " in domain ");
    put_name(&l, d);
    if (parked) {
        put(&l, " (parked: it has no key until a thread enters it)");
    } else {
        put(&l, " (pkey ");
        put_dec(&l, (unsigned long)d->pkey);
        put(&l, ")");
    }
    put(&l, " at ip ");
    put_hex(&l, uc == NULL ? 0ul : (unsigned long)uc->uc_mcontext.gregs[REG_RIP]);
    put_open(&l, uc);
    line_write(&l);
}

/* ------------------------------------------------------------- passing on */

/* Whether the kernel raised the signal for a fault of this thread: faults
 * have si_code > 0 (SEGV_*, SI_KERNEL); kill, tgkill and sigqueue give
 * SI_USER, SI_TKILL, SI_QUEUE, all <= 0.  Without siginfo (a handler that
 * chains to this one without it) it is taken for a fault. */
static bool from_fault(const siginfo_t *si)
{
    return si == NULL || si->si_code > 0;
}

/*
 * The default action, for a SIGSEGV whose previous action was SIG_DFL.
 *
 * For a fault, the handler restores SIG_DFL and returns rather than
 * re-raising: the faulting instruction runs again, faults again and the
 * kernel kills the process with the real siginfo (si_code, si_addr,
 * si_pkey) and the registers of the faulting instruction, which is what a
 * core dump, a debugger and the parent's waitpid should see.  raise() would
 * record a SIGSEGV sent by tgkill instead.  A signal that was sent, not
 * caused, would not come back by returning, so it is sent again; it is
 * blocked while this handler runs and is delivered, fatally, at its return.
 */
static void act_default(int sig, const siginfo_t *si)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (!from_fault(si))
        raise(sig);
}

/* Calls the previous handler as the kernel would have: with the mask of
 * the interrupted code, plus its sa_mask, plus sig unless it asked for
 * SA_NODEFER, and reset to SIG_DFL first if it asked for SA_RESETHAND.
 * (SA_ONSTACK is keyheap's choice: it runs on whatever stack this handler
 * got.)  The mask is restored by sigreturn when this handler returns. */
static void call_previous(int sig, siginfo_t *si, void *ctx)
{
    const struct sigaction *prev = &previous;
    const ucontext_t *uc = ctx;
    sigset_t mask;
    sigemptyset(&mask);
    /* One signal at a time with POSIX's async-signal-safe set functions;
     * the kernel fills only the first 64 bits of uc_sigmask. */
    for (int s = 1; s < NSIG; s++)
        if ((uc != NULL && sigismember(&uc->uc_sigmask, s) == 1) ||
            sigismember(&prev->sa_mask, s) == 1)
            sigaddset(&mask, s);
    if ((prev->sa_flags & SA_NODEFER) == 0)
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    if (prev->sa_flags & SA_RESETHAND) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
    }
    if (prev->sa_flags & SA_SIGINFO)
        prev->sa_sigaction(sig, si, ctx);
    else
        prev->sa_handler(sig);
}

static void pass_on(int sig, siginfo_t *si, void *ctx)
{
    void (*h)(int) = previous.sa_handler; /* SIG_DFL/SIG_IGN whatever the flags */
    if (h == SIG_IGN && !from_fault(si))
        return; /* a sent SIGSEGV that was ignored stays ignored */
    if (h == SIG_DFL || h == SIG_IGN) {
        /* The kernel never lets a fault's SIGSEGV be ignored: it kills. */
        act_default(sig, si);
        return;
    }
    call_previous(sig, si, ctx);
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    int saved_errno = errno;
    if (si != NULL && si->si_code == SEGV_PKUERR) {
        const struct khi_heap *d = khi_domain_of_key(si->si_pkey);
        if (d != NULL)
            report(d, si, ctx, false);
    } else if (si != NULL && si->si_code == SEGV_ACCERR && khi_in_span(si->si_addr)) {
        /* PROT_NONE memory of a domain: reported when the domain is parked
         * (its guard pages and given-back memory fault the same way, and
         * are not reported). */
        const struct khi_heap *d = khi_heap_of(si->si_addr);
        if (__atomic_load_n(&d->abi.live, __ATOMIC_ACQUIRE) == KEYHEAP_ABI_PARKED)
            report(d, si, ctx, true);
    }
    errno = saved_errno;
    pass_on(sig, si, ctx);
    errno = saved_errno;
}

/* ---------------------------------------------------------- installing */

void khi_fault_install(void)
{
    if (installed || !khi_pku_usable() || !khi_conf_get()->fault_report)
        return;
    installed = true;
    /* previous is read before the handler exists, so a SIGSEGV in another
     * thread right after the second sigaction finds it filled in. */
    if (sigaction(SIGSEGV, NULL, &previous) != 0)
        return;
    struct sigaction sa = {.sa_sigaction = on_segv}, replaced = {.sa_handler = SIG_DFL};
    /* SA_ONSTACK: a thread with an alternate signal stack gets its report
     * (and its previous handler) even on a stack overflow.  No SA_NODEFER:
     * a fault inside this handler must kill, not recurse.  Every signal is
     * blocked while the report is written; call_previous sets the mask the
     * previous handler expects.  SA_RESTART as the previous action had it,
     * for a SIGSEGV sent while a system call blocks. */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | (previous.sa_flags & SA_RESTART);
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &replaced) != 0) {
        khi_warn("cannot install the fault report's SIGSEGV handler; protection-key faults "
                 "will not name their domain",
                 (char *)NULL);
        return;
    }
    /* Someone changed the action between the two calls: pass on to theirs. */
    if (replaced.sa_handler != previous.sa_handler || replaced.sa_flags != previous.sa_flags)
        previous = replaced;
}
