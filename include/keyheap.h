/*
 * keyheap.h - the whole public interface of keyheap.
 *
 * keyheap is a malloc-compatible allocator for Linux on x86-64.  Linking with
 * -lkeyheap, or preloading libkeyheap.so, replaces the whole malloc family of
 * a program (malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size and every C++
 * operator new/delete) with keyheap's allocator, built on a private,
 * renamed copy of jemalloc 5.3.  Security domains (heaps tagged with their own
 * memory protection key) are built on top of it.
 *
 * The malloc family follows glibc's documented behaviour:
 *  - malloc(0) returns a unique pointer that must be freed.
 *  - realloc(NULL, n) is malloc(n).  realloc(p, 0) with p != NULL frees p and
 *    returns NULL without setting errno, as glibc does.
 *  - calloc(n, m) and reallocarray(p, n, m) return NULL with errno ENOMEM
 *    when n * m overflows; reallocarray then leaves p untouched.
 *  - posix_memalign returns EINVAL when the alignment is not a power of two
 *    multiple of sizeof(void *), ENOMEM when memory is short, and never
 *    changes errno.
 *  - aligned_alloc returns NULL with errno EINVAL when the alignment is not a
 *    power of two (0 included).
 *  - memalign rounds an alignment that is not a power of two up to the next
 *    one, as glibc does; valloc and pvalloc align to the page size, pvalloc
 *    also rounds the size up to whole pages.
 *  - Every failure to find memory returns NULL with errno ENOMEM.
 *  - C23's free_sized(p, size) and free_aligned_sized(p, alignment, size),
 *    which glibc 2.36 lacks, are exported too (declare them yourself where
 *    <stdlib.h> does not).  On the default heap they are free(p): the size is
 *    not used.  On a block of a domain they check it first, and abort with
 *      keyheap: wrong-size free_sized of <address> in domain "<name>"
 *               (size <n>, but the block's usable size is <m>)
 *    (one line; free_aligned_sized likewise) when size is more than the
 *    block's usable size, and free_aligned_sized with
 *      keyheap: wrong-alignment free_aligned_sized of <address> in domain
 *               "<name>" (alignment <a> is not a power of two)
 *    or "(alignment <a>, but the block is not aligned to it)".  Any size up
 *    to the usable size is accepted: keyheap cannot tell a smaller one from
 *    the requested size, since realloc keeps a shrinking block in place.
 *    A pointer that is not a live block gets free's own message.
 *
 * The private jemalloc reads its options from the MALLOC_CONF environment
 * variable like any jemalloc; keyheap's own defaults are documented in the
 * docs/configuration.md ("Tuning") and are overridden by MALLOC_CONF option by option.
 *
 * Configuration: the environment variable KEYHEAP_CONF, "key:value,..."
 * (booleans take true/false, on/off, yes/no, 1/0), read once, at the first
 * domain call of the process.  An unknown key or a bad value prints one
 * "keyheap: KEYHEAP_CONF: ..." line quoting it, and the default stays.
 *   pku:on|off              off: behave as on a CPU without protection keys
 *                           (default on)
 *   unprotected:true|false  without protection keys, make domains anyway, as
 *                           separate heaps without hardware protection
 *                           (default false)
 *   fault_report:true|false the SIGSEGV report of protection-key faults
 *                           (default true; see "The fault report" below)
 *   verify:true|false       check PKRU against the domain stack at every
 *                           enter and leave, abort when PKRU gives a key
 *                           more than the stack (less is what a signal
 *                           handler has; default false; see keyheap_audit)
 *   watchdog:<ms>           every <ms> milliseconds (1 to 3600000) have every
 *                           thread of the process close the keys it has open
 *                           and must not (keyheap's keys of domains it is not
 *                           inside, keys no code allocated), reporting each;
 *                           it never opens a key (default 0: off)
 *   stats_print:true|false  print every live domain's statistics at exit
 *                           (default false; see keyheap_domain_stats)
 *   magazines:true|false    per-thread magazines in front of domain heaps
 *                           (default true; false sends every domain malloc
 *                           and free to jemalloc, for debugging)
 *   keys:<n>                take at most n protection keys, 1 to 15
 *                           (default 15); domains beyond the keys share them
 *                           through the key cache ("More domains than keys")
 *   scan:true|false         run keyheap_scan_self() once, at the first
 *                           successful keyheap_domain_create, after it has
 *                           released keyheap's locks (default false)
 *
 * Signals: with protection keys in use, keyheap installs a handler for
 * SIGRTMAX-1 (at the first domain creation, SA_RESTART) and sends it to
 * every thread of the process (every task in /proc/self/task, also threads
 * keyheap never saw: raw clone, glibc's helpers) to close keys in them:
 * keyheap_domain_destroy closes the destroyed domain's key everywhere
 * before it frees the key, and the watchdog closes stray keys.  The
 * handler edits the thread's saved PKRU, the PKRUs its domain stack will
 * restore, and the value a WRPKRU it stopped at is about to write; it never
 * opens a key.  A program that uses domains must leave that signal alone.
 * Like any signal with a handler, it makes sleeps (nanosleep, usleep,
 * clock_nanosleep, sleep) and sem_wait return early (EINTR or the time
 * left); other system calls restart.  keyheap's pthread_sigmask and
 * sigprocmask never block it (as glibc's never block its own SIGCANCEL),
 * and threads made by the wrapped calls below unblock it before user code.
 * A round lists /proc/self/task again until a listing finds no task it
 * has not reached and none that exited while it was listed.  Only glibc's
 * timer helper (it blocks every signal, runs no user code and is born
 * closed; recorded when the process's first SIGEV_THREAD timer is made
 * through keyheap, so a helper made before keyheap was loaded is not known
 * and makes every destroy wait its second and keep the key) is not waited
 * for; every other task gets up to a second, and one that does not answer
 * (it blocked the signal with the raw system call, runs a handler that
 * blocks it, or waits in sigsuspend, ppoll, pselect or epoll_pwait
 * with a mask that blocks it) makes the destroy keep the key: never
 * freed, never given to another domain, with a "keyheap: ..." warning,
 * until a later destroy that every thread answers frees it.  A signal
 * delivered late (after its round) closes only keys keyheap still keeps,
 * never a key that went to a new domain meanwhile.
 *
 * Threads are born closed: pthread_create, thrd_create and timer_create
 * (SIGEV_THREAD: its helper thread and every notification thread) are
 * wrapped so that a new thread starts with every domain closed, even when
 * its creator is inside one; afterwards the creator reopens only the keys
 * of domains it is inside (a key a destroy closed meanwhile stays closed).
 * A raw clone(2) child starts with its creator's PKRU (open domains
 * included); a destroy's round reaches it like every task.
 *
 * More domains than keys: the key cache.  x86 has 15 usable protection keys
 * (fewer when other code holds some); keyheap takes at most keys:<n> of them
 * as domains need them and keeps them, and gives up to 1024 live domains
 * the keys in turn.  A domain that holds a key is resident: keyheap_enter
 * opens it inline, as always.  One that holds none is parked: its memory is
 * PROT_NONE, contents kept, so every access faults (SIGSEGV, SEGV_ACCERR),
 * inside or outside.  Entering a parked domain (or freeing one of its blocks
 * with scrubbing, calloc or realloc in it, keyheap_domain_pkey) takes a key,
 * a spare one or one evicted from a resident domain not entered since the
 * cache's last sweep (a clock) that no thread is inside or working in: that
 * domain is parked (one pkey_mprotect of its used address range) and the
 * newcomer's memory is tagged with the key (one pkey_mprotect per run of
 * its committed pages: a domain's region is contiguous, usually one run).
 * When every resident domain was entered since the last sweep, the miss
 * sweeps first: every thread closes the keys of domains it is not inside
 * (threads that used keyheap are known to have them closed, after a
 * membarrier; any other task gets keyheap's signal, below), which costs a
 * listing of /proc/self/task.  A miss therefore costs
 * about two pkey_mprotect calls and a membarrier, plus a round now and
 * then; entering a resident domain costs what it always did.  A thread
 * never keeps rights to a key that moved to another domain: an enter
 * writes its frame before it reads the domain's state, a domain marked
 * parked loses its key only when, after a membarrier, no thread's domain
 * stack names it, and a thread that opened its key since the last sweep
 * (or whose stack named it then) marked it used (domains/keys.c has the
 * argument).  A domain whose key keyheap_domain_pkey gave out keeps it
 * until it is destroyed.  When every key is held by a domain some other
 * thread is inside, entering a parked domain waits (polling, up to 1 ms
 * between tries, with one "keyheap: domain "x" waits for a protection key
 * ..." warning per process) until one leaves; memory is never left
 * unprotected meanwhile.  When every key is held by domains the calling
 * thread itself is inside (it nests more domains than keyheap has keys) or
 * whose key was given out, no key can come free, and keyheap aborts with
 *   keyheap: domain "x" needs a protection key, but every one of keyheap's
 *   <n> (KEYHEAP_CONF keys:<m>) is held by a domain this thread is inside
 *   or whose key keyheap_domain_pkey gave out: this thread cannot nest
 *   more domains than keyheap has keys
 * (one line).  Likewise when threads inside domains wait for each other's
 * keys (every key is held by a domain that only threads waiting for a key
 * are inside): "keyheap: domain "x" needs a protection key, but every one
 * of keyheap's <n> (KEYHEAP_CONF keys:<m>) is held by a domain this thread
 * is inside, whose key keyheap_domain_pkey gave out, or that only threads
 * waiting for a key themselves are inside: threads inside domains wait for
 * each other's keys for ever".  So threads that stay inside a domain while
 * they enter another must be fewer than the keys.  A task that blocks
 * keyheap's signal (or is stopped) makes evictions wait (one "keyheap:
 * ... a thread did not answer keyheap's PKRU signal ..." warning), as it
 * makes a destroy keep its key.  An allocation in a parked KEYHEAP_MLOCK
 * domain gives it a key first, since locking needs it.  A signal handler
 * may enter a parked domain: while a thread holds keyheap's domain lock (in
 * keyheap_domain_create, keyheap_domain_destroy, keyheap_domain_pkey or a
 * miss) its asynchronous signals are blocked, so a handler never finds the
 * lock held by the code it interrupted; they are delivered when the call
 * is done.  A miss leaves errno alone.
 *
 * Thread-safety: every function declared here may be called from any thread.
 */
#ifndef KEYHEAP_H
#define KEYHEAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KEYHEAP_VERSION_MAJOR 0
#define KEYHEAP_VERSION_MINOR 3
#define KEYHEAP_VERSION_PATCH 0

/* Attribute macros, used on every prototype below. */
#if defined(__GNUC__) || defined(__clang__)
#define KEYHEAP_API __attribute__((visibility("default")))
#define KEYHEAP_NODISCARD __attribute__((warn_unused_result))
#else
#define KEYHEAP_API
#define KEYHEAP_NODISCARD
#endif

/*
 * keyheap_version - the library's version as "MAJOR.MINOR.PATCH".
 *
 * Returns a static string; never fails.  Compare it with the
 * KEYHEAP_VERSION_* macros to tell the header from the library in use.
 */
KEYHEAP_API const char *keyheap_version(void);

/*
 * keyheap_pku_supported - whether this process can have hardware-protected
 * domains.
 *
 * Returns 1 when the CPU has PKU, the kernel enabled it (OSPKE), a
 * protection key can actually be allocated (pkey_alloc succeeds; valgrind,
 * for one, makes it fail) and KEYHEAP_CONF does not say pku:off; 0
 * otherwise.  The answer is computed once and cached.  When it is 0, keyheap
 * never executes RDPKRU or WRPKRU.
 */
KEYHEAP_API KEYHEAP_NODISCARD int keyheap_pku_supported(void);

/* ==================================================================== domains
 *
 * A domain is a heap of its own whose pages carry a protection key of their
 * own.  Outside the domain, every load or store to its memory faults
 * (SIGSEGV, si_code SEGV_PKUERR); a thread that has entered the domain reads
 * and writes it at full speed.  Entering and leaving is a few instructions
 * (RDPKRU, WRPKRU and a thread-local stack), no system call.
 *
 * WARNING: a domain protects memory from code running in threads that have
 * not entered it.  It does not protect against code that can execute WRPKRU
 * itself, against the kernel's own paths that ignore PKRU (/proc/self/mem,
 * process_vm_readv, ptrace, io_uring workers), or secrets the program copies
 * out of the domain (onto the stack, into registers, into other heaps).
 */
typedef struct keyheap_domain keyheap_domain_t;

/*
 * Flags of keyheap_domain_create.
 *
 * Whatever the flags, a domain's memory is excluded from core dumps
 * (MADV_DONTDUMP), and its heap aborts with one "keyheap: <kind> <op> of
 * <address> in domain "<name>"" line on a double free, a use-after-free
 * realloc or malloc_usable_size, an interior-pointer or wild free, and any
 * of them on a block of a destroyed domain (docs/guide.md, "Misuse of a domain
 * heap is caught").  Domain blocks are at least 16 bytes.  Every large
 * block (over 14 KiB, jemalloc's largest small size class; also any block
 * aligned to more than a page) is followed by a guard page (PROT_NONE): a
 * write or read just past its usable size faults (SIGSEGV; SEGV_ACCERR
 * in a thread inside the domain) instead of reaching the next block.  Large
 * blocks are page-aligned, and each costs two system calls (mprotect on
 * allocation, again on free) and two of the process's vm.max_map_count
 * mappings (65530 by default, about 32000 live large domain blocks):
 * past that limit a large domain allocation fails with NULL and ENOMEM,
 * and the first such failure prints a "keyheap: ..." hint.
 *
 * KEYHEAP_NOSCRUB     do not zero blocks on free and on a realloc that
 *                     moves or shrinks them.  Zeroing (with a store the
 *                     compiler cannot drop) is the default.  Destroy drops
 *                     the domain's pages whatever the flags.
 * KEYHEAP_MLOCK       lock the domain's committed pages in memory (never
 *                     swapped).  An allocation that would pass
 *                     RLIMIT_MEMLOCK fails with NULL and ENOMEM, and the
 *                     first such failure prints a "keyheap: ..." hint.
 *                     Free pages of such a domain are given back to the
 *                     kernel only by decommitting them (unlocked first).
 * KEYHEAP_WIPEONFORK  a fork child sees the domain's memory as zeros
 *                     (MADV_WIPEONFORK); without it the child keeps the
 *                     domain and its data, as it keeps the rest of memory.
 * KEYHEAP_STRICT      abort ("keyheap: outside free of ...") when a thread
 *                     that has not entered the domain read-write frees one
 *                     of its blocks.
 * KEYHEAP_SECRETMEM   take the domain's memory from memfd_secret(2): the
 *                     kernel removes the pages from its direct map, so
 *                     /proc/<pid>/mem, process_vm_readv(2) and ptrace
 *                     (debuggers, other processes of the same user, root
 *                     without a kernel patch) cannot read or write them,
 *                     and they still carry the domain's key.  Needs Linux
 *                     5.14 or later, booted with secretmem.enable=1 before
 *                     6.5: elsewhere keyheap_domain_create fails with
 *                     ENOSYS and a "keyheap: ..." hint, never an ordinary
 *                     domain.  The pages are locked and count against
 *                     RLIMIT_MEMLOCK (unless the process has
 *                     CAP_IPC_LOCK): an allocation past it fails with NULL
 *                     and ENOMEM, and the first prints a hint.  They are
 *                     given back to the kernel only at destroy (the kernel
 *                     cannot drop single secret pages); free pages that
 *                     jemalloc decommits are zeroed and unmapped.  A fork
 *                     child sees the domain's memory as zeroes (as with
 *                     KEYHEAP_WIPEONFORK, implied), in a secret file of its
 *                     own; a child made by a raw fork system call, without
 *                     pthread_atfork's handlers, has no pages there at all
 *                     (a touch faults with SEGV_MAPERR).  The domain holds
 *                     one file descriptor (close-on-exec) while it lives:
 *                     a program that closes descriptors it did not open
 *                     stops the domain from growing (ENOMEM, with a
 *                     "keyheap: ..." line), never more.
 */
#define KEYHEAP_NOSCRUB 0x1u
#define KEYHEAP_MLOCK 0x2u
#define KEYHEAP_WIPEONFORK 0x4u
#define KEYHEAP_STRICT 0x8u
#define KEYHEAP_SECRETMEM 0x10u

/* The longest domain name, without its terminating NUL. */
#define KEYHEAP_NAME_MAX 63

/*
 * keyheap_domain_create - a new domain with its own heap and protection key
 * (a spare key of keyheap's, or a new one from the kernel while keyheap holds
 * fewer than KEYHEAP_CONF keys:<n>; otherwise the domain starts parked and
 * gets a key when it is entered: see "More domains than keys" above).
 *
 * name: a non-empty string of at most KEYHEAP_NAME_MAX bytes, copied; it
 * names the domain in every message keyheap prints.  flags: KEYHEAP_* flags
 * above, or 0.
 *
 * Returns the domain, or NULL with errno:
 *   EINVAL        name is NULL or empty, or flags has an unknown bit;
 *   ENOSYS        flags has KEYHEAP_SECRETMEM and the kernel has no
 *                 memfd_secret(2) (or it is disabled); EMFILE, ENFILE or
 *                 ENOMEM: what memfd_secret itself failed with;
 *   ENAMETOOLONG  name is longer than KEYHEAP_NAME_MAX;
 *   ENOSPC        no domain slot is left (1024 live domains, 64 where the
 *                 address space is short, as under valgrind: a destroyed
 *                 domain's slot is reused, once 4 others were destroyed
 *                 after it or when no fresh slot is left), or keyheap
 *                 holds no protection key and the kernel has none left
 *                 (other code in the process holds all 15);
 *   other         what pkey_alloc(2) itself failed with when keyheap holds
 *                 no key yet (EPERM from a seccomp filter, for one);
 *   ENOTSUP       the CPU or kernel has no usable protection keys (or
 *                 KEYHEAP_CONF says pku:off) and KEYHEAP_CONF does not say
 *                 unprotected:true; a "keyheap: ..." hint is printed once;
 *   ENOMEM        the address space for the domain heaps cannot be
 *                 reserved (1024 regions of 4 GiB, a 4 TiB span, PROT_NONE
 *                 and MAP_NORESERVE, plus its maps; where that fails
 *                 keyheap halves the regions down to 512 MiB, then takes
 *                 64 regions of 512 MiB down to 64 MiB, as under
 *                 valgrind; a domain's heap is limited to its region).
 * With KEYHEAP_CONF=unprotected:true on such a machine, the domain is a
 * separate heap without hardware protection and keyheap_domain_pkey
 * returns -1.
 *
 * Thread-safe.
 */
KEYHEAP_API KEYHEAP_NODISCARD keyheap_domain_t *keyheap_domain_create(const char *name,
                                                                      unsigned flags);

/*
 * keyheap_domain_destroy - frees every object of d, releases its memory and
 * then its protection key.
 *
 * Returns 0, or -1 with errno EBUSY when some thread is inside d (between
 * keyheap_enter(d) or keyheap_enter_ro(d) and the matching keyheap_leave);
 * then nothing changed.  On success every page d ever had is discarded and
 * mapped PROT_NONE before the key is freed, so a stale pointer into d faults
 * and a later domain that receives the same key can never see d's data.
 * The key is freed only once every thread has it closed (see "Signals"
 * above) and, when keyheap_domain_pkey gave it out, once no mapping of the
 * process carries it any more (/proc/self/smaps): memory the program
 * tagged itself with d's key keeps the key out of use, with a
 * "keyheap: ..." warning, so no later domain shares those pages.
 * Destroying a destroyed domain, or using its handle afterwards, aborts with a
 * "keyheap: ..." message wherever keyheap can tell (until the handle's slot
 * is reused by a later domain).
 *
 * WARNING: pointers into d are dangling afterwards, exactly as after free().
 *
 * Thread-safe, but no thread may use d (allocate, free, enter) concurrently.
 * If one does all the same, the outcome is defined: destroy first marks d
 * dead and waits for the heap calls already running in d (free, realloc,
 * the explicit API, a malloc that reaches jemalloc); a call that starts
 * after that aborts with "keyheap: <op> of <address> in domain "<name>"
 * while keyheap_domain_destroy destroys it ..." or, once the destroy is
 * done, "keyheap: use-after-destroy <op> of ...".  (A free or malloc that
 * only touches the calling thread's magazine does not wait: its block is
 * gone with the domain.)
 */
KEYHEAP_API int keyheap_domain_destroy(keyheap_domain_t *d);

/* keyheap_domain_name - d's name, as given to keyheap_domain_create. */
KEYHEAP_API KEYHEAP_NODISCARD const char *keyheap_domain_name(const keyheap_domain_t *d);

/* keyheap_domain_pkey - d's protection key (1..15), or -1 when d is an
 * unprotected domain.  A parked domain (see "More domains than keys") gets
 * a key first, as an enter would; -1 with errno EAGAIN when no key can be
 * had now (every key is held by a domain some thread is inside, or was
 * given out).  The key is d's until d is destroyed: the key cache never
 * takes it away, so with keys:1 a domain whose key was given out leaves no
 * key for any other.
 * WARNING: a page the program tags with this key (pkey_mprotect) is
 * readable only inside d; after d's destroy such a page keeps the key out
 * of use for good (keyheap_domain_destroy). */
KEYHEAP_API KEYHEAP_NODISCARD int keyheap_domain_pkey(const keyheap_domain_t *d);

/*
 * keyheap_domain_of - the domain whose heap holds address p, or NULL when p
 * is in the default heap or not keyheap's at all.  O(1), no lock.
 */
KEYHEAP_API KEYHEAP_NODISCARD keyheap_domain_t *keyheap_domain_of(const void *p);

/*
 * keyheap_current - this thread's malloc target: the innermost domain it
 * entered with keyheap_enter, or NULL (the default heap).
 */
KEYHEAP_API KEYHEAP_NODISCARD keyheap_domain_t *keyheap_current(void);

/*
 * Explicit allocation.  keyheap_malloc(d, n), keyheap_calloc(d, n, size) and
 * keyheap_aligned_alloc(d, alignment, size) allocate in d, or in the default
 * heap when d is NULL, whatever domain the calling thread is in; they work
 * from outside d (keyheap opens d's key for itself where it must write, as
 * calloc does).  They return NULL with errno ENOMEM when memory is short or
 * the size overflows, and keyheap_aligned_alloc returns NULL with EINVAL
 * when alignment is not a power of two.  A size of 0 gives a unique pointer.
 *
 * keyheap_realloc(p, size) resizes p within p's own heap (p's domain, or the
 * default heap); realloc(NULL, size) allocates in this thread's malloc target.
 * keyheap_free(p) and keyheap_usable_size(p) work on any pointer keyheap
 * returned, from any thread, inside or outside p's domain.
 *
 * The ordinary malloc family does the same by address: free, free_sized,
 * free_aligned_sized, realloc and malloc_usable_size follow the pointer;
 * malloc, calloc, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * C++ new (and libc functions that allocate, such as strdup) allocate in
 * keyheap_current().
 *
 * A library configured with --disable-malloc-replacement (for programs in
 * which AddressSanitizer or another allocator owns malloc) exports neither
 * the malloc family (free_sized and free_aligned_sized included) nor the C++
 * operators: there plain malloc, strdup and new are never routed into a
 * domain, even inside keyheap_enter; only the keyheap_* functions above
 * allocate in domains.
 *
 * Thread-safe.
 */
KEYHEAP_API KEYHEAP_NODISCARD void *keyheap_malloc(keyheap_domain_t *d, size_t size);
KEYHEAP_API KEYHEAP_NODISCARD void *keyheap_calloc(keyheap_domain_t *d, size_t n, size_t size);
KEYHEAP_API KEYHEAP_NODISCARD void *keyheap_aligned_alloc(keyheap_domain_t *d, size_t alignment,
                                                          size_t size);
KEYHEAP_API KEYHEAP_NODISCARD void *keyheap_realloc(void *p, size_t size);
KEYHEAP_API void keyheap_free(void *p);
KEYHEAP_API KEYHEAP_NODISCARD size_t keyheap_usable_size(const void *p);

/*
 * Statistics of one domain's heap, in bytes, as keyheap_domain_stats
 * reads them.
 */
struct keyheap_stats {
    size_t allocated; /* bytes in the live blocks: the sum of their usable
                         sizes (malloc_usable_size), at least 16 each */
    size_t peak;      /* the most bytes that were committed at once since
                         the domain was created: the high-water mark of the
                         heap's footprint; it never decreases, and is at
                         least committed */
    size_t committed; /* bytes of the domain's region readable and writable
                         now (tagged with its key): the pages of the live
                         blocks and the free pages jemalloc keeps for
                         reuse; at least allocated.  For a parked domain
                         (no key: the key cache), the same pages, PROT_NONE
                         until it gets a key */
    size_t locked;    /* bytes locked in memory: committed for a
                         KEYHEAP_MLOCK or KEYHEAP_SECRETMEM domain,
                         otherwise 0 */
    size_t objects;   /* live blocks: allocated and not yet freed */
};

/*
 * keyheap_domain_stats - fills *out with d's statistics.
 *
 * pre: d is a live domain (a destroyed or bad handle aborts with a
 * "keyheap: keyheap_domain_stats ..." message, as for the other
 * functions of a handle).  Returns 0, or -1 with errno EINVAL when out is
 * NULL.
 *
 * allocated and objects are exact: a block counts from the moment malloc
 * returns it to the moment free is called, whatever caches keep it after
 * that.  They are counted on each call from keyheap's record of the
 * domain's blocks (the block map), which costs time in proportion to the
 * address space the domain ever used (about 0.5 ms per 100 MiB on the
 * benchmark machine of docs/benchmarks.md): not for hot paths.  Reads no byte of the
 * domain's memory, so it works with d closed.
 *
 * KEYHEAP_CONF=stats_print:true prints, at exit, one line per live domain
 * on stderr (with write(2), in slot order):
 *
 *   keyheap: stats: domain "<name>" (pkey <key>): allocated <allocated> B
 *   in <objects> objects, peak <peak> B, committed <committed> B, locked
 *   <locked> B
 *
 * (one line; <key> is -1 for an unprotected domain, "none, parked" for a
 * domain the key cache parked; the name as in the
 * fault report, with quotes, backslashes and bytes that are not printable
 * ASCII shown as '?').  A fork child that calls exit prints its own.
 *
 * Thread-safe.  Allocations and frees in d by other threads during the
 * call may or may not be counted.
 */
KEYHEAP_API int keyheap_domain_stats(const keyheap_domain_t *d, struct keyheap_stats *out);

/*
 * keyheap_audit - compares this thread's PKRU register with what it must
 * be.  Each thread's domain stack is the shadow of its PKRU for keyheap's
 * own keys: closed, except the domains it has entered (read-write or
 * read-only); keys keyheap keeps after a destroy are closed too.  Keys that no code in the process has allocated (the kernel
 * says which: pkey_mprotect with such a key fails with EINVAL) must be
 * closed too.  Keys that other code allocated (a JIT, another library) are
 * foreign: never counted, never touched.
 *
 * Returns the number of mismatches: keyheap keys whose rights differ from
 * the shadow, plus unallocated keys that are open.  flags:
 *   KEYHEAP_AUDIT_REPAIR  writes the shadow back to the register (and
 *                         closes the unallocated keys); foreign keys keep
 *                         their rights;
 *   KEYHEAP_AUDIT_REPORT  prints one "keyheap: audit: ..." line on stderr
 *                         per mismatch and per foreign key.
 * Returns 0 when domains are not hardware-protected.  Thread-safe; it
 * audits the calling thread (see KEYHEAP_CONF=watchdog for all threads).
 * It makes up to 30 system calls (one or two pkey_mprotect calls per key
 * keyheap does not hold, to ask the kernel whether some code allocated
 * it): not for hot paths (KEYHEAP_CONF=verify:true checks keyheap's keys
 * at every enter and leave instead).
 */
#define KEYHEAP_AUDIT_REPAIR 0x1u
#define KEYHEAP_AUDIT_REPORT 0x2u
KEYHEAP_API int keyheap_audit(unsigned flags);

/*
 * keyheap_scan_self - looks for the instructions that change PKRU in the
 * code of the calling process: every WRPKRU (0F 01 EF) and every XRSTOR or
 * XRSTOR64 (0F AE /5, memory forms, with or without REX) in its executable
 * mappings, whether they begin an instruction or are embedded in another
 * one (an immediate, a displacement: code that an attacker steers can jump
 * into them).  The same scan as keyheap-scan(1) --pid: each file-backed
 * executable mapping is read from its file (a deleted or replaced one
 * through /proc/self/map_files), the vDSO through /proc/self/mem.
 * keyheap's own WRPKRUs (every keyheap_enter and keyheap_leave, in the
 * library and inlined in programs, recorded in the section
 * .keyheap_wrpkru) are recognised and not reported.  Prints one line on
 * stderr (write(2)) per finding:
 *
 *   keyheap: scan: <file>: offset 0x<o> vaddr 0x<v> <symbol>+0x<off>:
 *   wrpkru embedded (in the 5-byte instruction at <symbol>+0x<off>:
 *   e8 0f 01 ef ff)
 *
 * (one line; the format of keyheap-scan(1): "<name> instruction" when the
 * bytes begin one, "-" where no function symbol covers the address; vaddr
 * is the address in this process), and one "keyheap: scan: not scanned:
 * ..." line per executable mapping it could not read (anonymous or
 * writable: JIT code) or read.  Returns the number of findings (0: none),
 * or -1 with errno set when /proc/self/maps cannot be read.  It cannot see
 * code made or loaded after it runs, sigreturn frames, ptrace, or the
 * kernel paths that read and write memory whatever PKRU says
 * (/proc/self/mem, process_vm_readv/writev).  Reads every executable file
 * of the process: milliseconds, not for hot paths.  Allocates nothing
 * with malloc; thread-safe.  KEYHEAP_CONF=scan:true runs it once at the
 * first domain creation.
 */
KEYHEAP_API int keyheap_scan_self(void);

/*
 * The fault report.  At the first keyheap_domain_create that gets a
 * hardware key, keyheap installs a SIGSEGV handler (SA_SIGINFO, SA_ONSTACK),
 * once per process; KEYHEAP_CONF=fault_report:false opts out.  For a fault
 * with si_code SEGV_PKUERR on the key of a live domain it writes one line
 * to stderr with a single write(2), async-signal-safely:
 *
 *   keyheap: protection-key fault: thread <tid> <read|write> of <address>
 *   in domain "<name>" (pkey <key>) at ip <instruction>; open: "<a>" rw,
 *   "<b>" ro
 *
 * (one line; "open:" lists the domains the faulting thread has entered,
 * outermost first, or says "none"; bytes of a name that are quotes,
 * backslashes or not printable ASCII are shown as '?').  A fault with
 * si_code SEGV_ACCERR on the memory of a parked domain (see "More domains
 * than keys") gets the same line with "(parked: it has no key until a
 * thread enters it)" in place of "(pkey <key>)".  The list is
 * checked against the PKRU of the faulting code, which the kernel saves in
 * the signal frame.  Where that PKRU gives some domain other rights than
 * the thread's enters (a fault inside a signal handler, which runs with
 * every domain closed whatever the interrupted code entered; or code that
 * changed PKRU behind keyheap's back), "open:" lists what the hardware had
 * open instead, every live domain whose key that PKRU left readable, in
 * the domain table's slot order (creation order until destroyed domains'
 * slots are reused), and the enters follow:
 *
 *   ...; open: "<c>" rw; entered: "<a>" rw, "<b>" ro (PKRU differs from
 *   the domain stack: a signal handler, which runs with every domain
 *   closed, or PKRU changed outside keyheap)
 *
 * ("open: none; entered: ..." for a fault in a handler that entered
 * nothing; keys keyheap opened for a moment for its own use, to scrub a
 * block, are not counted as a difference).  Every SIGSEGV,
 * reported or not (a NULL dereference, another library's key), then goes
 * on to the action that was installed before keyheap's: a handler is
 * called with the kernel's siginfo and context and with its own sa_mask
 * and SA_NODEFER/SA_RESETHAND honoured; SIG_DFL (or SIG_IGN, which the
 * kernel does not honour for faults) is restored and the faulting access
 * runs again, so the process dies of the original fault, core dump and
 * siginfo included.  A handler the program installs afterwards replaces
 * keyheap's and is never overwritten; it may chain to keyheap's.
 */

/* ============================================================ enter / leave
 *
 * keyheap_enter(d) opens d for reading and writing in this thread, on top of
 * whatever is open already, and makes d the target of malloc; keyheap_leave(d)
 * restores exactly the state before the matching enter.  keyheap_enter_ro(d)
 * opens d read-only (a domain already open for writing stays writable) and
 * leaves the malloc target alone.  Enters nest, last in first out, up to
 * KEYHEAP_MAX_DEPTH deep; deeper aborts.  A keyheap_leave(d) that does not
 * match the innermost enter aborts with a message naming both domains.
 *
 * Per thread: other threads are unaffected.  A thread created with
 * pthread_create (or thrd_create, or for a SIGEV_THREAD timer) starts with
 * every domain closed, even when its creator is inside one.  Signal
 * handlers run with every domain closed (the kernel gives them the default
 * PKRU) and the interrupted state is restored when they return; a handler
 * that needs a domain enters it itself (enter and leave may be interrupted
 * by such a handler at any instruction).  A fork child keeps its domains,
 * and the calling thread's open ones.
 *
 * Threads that end inside a domain: a thread that calls pthread_exit, is
 * cancelled, or returns while inside a domain stays inside it, as far as
 * keyheap_domain_destroy is concerned (EBUSY), through its cleanup
 * handlers and thread-specific-data destructors, which may also enter and
 * leave domains; keyheap's exit hook runs in the last round of those
 * destructors and leaves every domain the thread is still in.  An enter
 * after that (a destructor of a later key in that last round) aborts with a
 * "keyheap: ..." message.  Allocating in a domain in a thread-specific-data
 * destructor fails with ENOMEM (and one "keyheap: domain ...: an allocation
 * after jemalloc's own thread-exit cleanup ..." warning), unless the
 * thread's cache of the domain holds a free block of that size: jemalloc's
 * destructor runs first in every round, and after it jemalloc serves only
 * its default arena, which is never handed out for a domain.  Frees (and
 * reallocs that stay in place) work there and scrub.  Cleanup handlers and
 * C++ thread_local destructors run earlier and may allocate.
 * pthread_exit keeps PKRU as it was; a
 * cancellation acted on in a blocking system call runs its cleanup from
 * glibc's signal handler, so cleanup handlers then see every domain closed
 * although keyheap_current() still names the innermost one: a cleanup that
 * needs the domain enters it itself, and should not malloc before it does.
 * longjmp out of an enter leaves the domain entered (leave it before, or
 * use a scope below only within the jump's range); C++ exceptions leave
 * keyheap::scope guards but not plain enters.
 *
 * Signal stacks: a handler on an alternate signal stack in domain memory
 * would fault on its first push (and kill the process).  keyheap exports
 * sigaltstack (also with --disable-malloc-replacement): a stack that
 * overlaps any domain's memory is never given to the kernel; this thread
 * gets a substitute of the same size in ordinary memory (key 0, a PROT_NONE
 * guard page below it) instead, with one "keyheap: sigaltstack: ..."
 * warning per process, and later calls report the stack the program gave
 * (ss_sp, ss_size) in its place.  Replacing or disabling the stack, or the
 * thread's exit, unmaps the substitute; every other call goes straight to
 * the C library's sigaltstack.
 *
 * WARNING: memory handed to system calls (read, write, ...) must be
 * accessible: enter the domain first, or the kernel returns EFAULT.
 * WARNING: initialise libraries (stdio buffers, lazily built tables) before
 * entering a domain: what they allocate inside it is unreadable outside.
 *
 * These are inline: the code below is the fast path, no call, no system call.
 */
#define KEYHEAP_MAX_DEPTH 64

/* --- The ABI of the fast path.  Not for direct use; layout is fixed. --- */
struct keyheap_abi_frame {
    keyheap_domain_t *domain; /* the domain entered; in verify mode with bit 0 set,
                                 so that the inline leave takes the slow path */
    keyheap_domain_t *target; /* the malloc target before this enter */
    unsigned pkru;            /* PKRU before this enter */
    unsigned readonly;        /* 1 for keyheap_enter_ro */
};

struct keyheap_abi_thread {
    keyheap_domain_t *target; /* malloc target; NULL: the default heap */
    unsigned depth;           /* frames in use */
    unsigned mode;            /* KEYHEAP_ABI_* below */
    struct keyheap_abi_frame stack[KEYHEAP_MAX_DEPTH];
};

#define KEYHEAP_ABI_UNSET 0u  /* this thread has not entered yet: slow path */
#define KEYHEAP_ABI_VERIFY 1u /* KEYHEAP_CONF=verify:true: every enter and leave
                                 takes the slow path, which checks PKRU */
#define KEYHEAP_ABI_SOFT 2u   /* unprotected domains: no RDPKRU/WRPKRU */
#define KEYHEAP_ABI_PKU 3u    /* protection keys */

/* The first fields of every struct keyheap_domain. */
struct keyheap_abi_domain {
    unsigned live;   /* KEYHEAP_ABI_LIVE while the domain exists and holds a
                        key (or is unprotected); KEYHEAP_ABI_PARKED while it
                        exists without one (its memory is PROT_NONE) */
    unsigned ad_bit; /* PKRU access-disable bit of its key; 0 when unprotected
                        or parked */
    unsigned used;   /* set by every enter, cleared by the key cache's clock */
};
#define KEYHEAP_ABI_LIVE 0x6b68646du
#define KEYHEAP_ABI_PARKED 0x6b68706bu

#if defined(__GNUC__) || defined(__clang__)
extern __thread struct keyheap_abi_thread keyheap_abi_self
    __attribute__((tls_model("initial-exec"), visibility("default")));
#define KEYHEAP_ABI_INLINE static inline __attribute__((always_inline))
#define KEYHEAP_ABI_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* "asm inline": the compiler counts the asm of keyheap_abi_wrpkru as one
 * instruction (its template has four lines, three of them directives), so
 * inlining decisions stay those of a single-instruction asm. */
#if (defined(__clang__) && __clang_major__ >= 11) || \
    (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 9)
#define KEYHEAP_ABI_ASM_INLINE __inline__
#else
#define KEYHEAP_ABI_ASM_INLINE
#endif
#else
#error "keyheap.h needs GCC or clang"
#endif

/* Out-of-line paths: the first enter of a thread, a bad handle, too deep,
 * verify mode, and a leave that does not match (which aborts) or that
 * verify mode sends here. */
KEYHEAP_API void keyheap_abi_enter_slow(keyheap_domain_t *d, unsigned readonly);
KEYHEAP_API void keyheap_abi_leave_slow(keyheap_domain_t *d);

KEYHEAP_ABI_INLINE unsigned keyheap_abi_rdpkru(void)
{
    unsigned eax, edx;
    __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
    (void)edx;
    return eax;
}

/* Every WRPKRU of keyheap, in the library and inlined in programs, is this
 * one: its address goes to the section .keyheap_wrpkru, which is not loaded
 * (like debug information, the linker resolves it to link-time addresses:
 * no relocation at run time, no byte added to the code, and strip keeps
 * it).  keyheap-scan(1) and keyheap_scan_self() tell keyheap's own WRPKRUs
 * from others by it. */
KEYHEAP_ABI_INLINE void keyheap_abi_wrpkru(unsigned pkru)
{
    __asm__ __volatile__ KEYHEAP_ABI_ASM_INLINE("1: .byte 0x0f,0x01,0xef\n\t"
                     ".pushsection .keyheap_wrpkru,\"\",@progbits\n\t"
                     ".quad 1b\n\t"
                     ".popsection"
                     :
                     : "a"(pkru), "c"(0), "d"(0)
                     : "memory");
}

/* pkru with the key of ad_bit opened.  Read-write clears both bits of the
 * key; read-only clears access-disable and sets write-disable only where
 * access was disabled, so an enclosing read-write enter stays writable. */
KEYHEAP_ABI_INLINE unsigned keyheap_abi_open(unsigned pkru, unsigned ad_bit, unsigned readonly)
{
    return readonly ? (pkru & ~ad_bit) | ((pkru & ad_bit) << 1) : pkru & ~(ad_bit * 3u);
}

KEYHEAP_ABI_INLINE void keyheap_abi_enter(keyheap_domain_t *d, unsigned readonly)
{
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    struct keyheap_abi_domain *a = (struct keyheap_abi_domain *)(void *)d;
    unsigned n = t->depth, mode = t->mode;
    if (KEYHEAP_ABI_UNLIKELY(mode < KEYHEAP_ABI_SOFT || n >= KEYHEAP_MAX_DEPTH)) {
        keyheap_abi_enter_slow(d, readonly);
        return;
    }
    struct keyheap_abi_frame *f = &t->stack[n];
    /* depth first: a signal handler that interrupts this enter and enters
     * a domain itself takes the next frame, never this one.  Until the
     * frame's domain is written, a handler reads it as NULL (every leave
     * clears it), never as a domain left before.  The frame is written
     * before the key opens, so a thread never has a key open that its
     * stack does not show (keyheap's PKRU signal reads the stack). */
    t->depth = n + 1;
    /* A compiler barrier for these two alone: the frame is written after
     * depth (as a handler on this thread sees them), and nothing else has
     * to be loaded again.  "+m": what the frame held before stays stored
     * (an inlined leave just before cleared its domain). */
    __asm__ volatile("" : "+m"(*f) : "m"(t->depth));
    f->domain = d;
    f->target = t->target;
    f->readonly = readonly;
    /* The domain's state is read after the frame names it, and in this
     * order: the key cache marks a domain parked, makes every thread's
     * earlier stores visible (membarrier), and takes its key only when no
     * thread's stack names the domain; a thread reads the state only after
     * its frame names it, so it either is seen inside or reads the domain
     * parked (and takes the out-of-line path, which gets it a key).  live
     * is read before ad_bit, which the cache sets before live and clears
     * after it; used is stored before the key opens (the cache's sweep
     * relies on it). */
    __asm__ volatile("" : : "m"(f->domain) : "memory");
    unsigned live = *(volatile const unsigned *)&a->live;
    unsigned ad_bit = *(volatile const unsigned *)&a->ad_bit;
    if (KEYHEAP_ABI_UNLIKELY(live != KEYHEAP_ABI_LIVE)) {
        /* Parked, destroyed or no domain: the frame is taken back, in the
         * reverse order, and the out-of-line path does it all. */
        f->domain = (keyheap_domain_t *)0;
        __asm__ volatile("" : "=m"(t->depth) : "m"(f->domain));
        t->depth = n;
        keyheap_abi_enter_slow(d, readonly);
        return;
    }
    if (KEYHEAP_ABI_UNLIKELY(a->used == 0))
        a->used = 1; /* stored once per sweep of the key cache's clock */
    if (mode == KEYHEAP_ABI_PKU) {
        unsigned pkru = keyheap_abi_rdpkru();
        f->pkru = pkru;
        keyheap_abi_wrpkru(keyheap_abi_open(pkru, ad_bit, readonly));
    }
    if (!readonly)
        t->target = d;
}

/* keyheap_enter - open d read-write in this thread and make it malloc's
 * target.  pre: d is a live domain. */
KEYHEAP_ABI_INLINE void keyheap_enter(keyheap_domain_t *d)
{
    keyheap_abi_enter(d, 0);
}

/* keyheap_enter_ro - open d read-only in this thread; malloc's target stays.
 * pre: d is a live domain. */
KEYHEAP_ABI_INLINE void keyheap_enter_ro(keyheap_domain_t *d)
{
    keyheap_abi_enter(d, 1);
}

/* keyheap_leave - undo the innermost enter, which must be of d. */
KEYHEAP_ABI_INLINE void keyheap_leave(keyheap_domain_t *d)
{
    struct keyheap_abi_thread *t = &keyheap_abi_self;
    unsigned n = t->depth;
    if (KEYHEAP_ABI_UNLIKELY(n == 0 || t->stack[n - 1].domain != d)) {
        keyheap_abi_leave_slow(d);
        return;
    }
    struct keyheap_abi_frame *f = &t->stack[n - 1];
    if (t->mode == KEYHEAP_ABI_PKU)
        keyheap_abi_wrpkru(f->pkru);
    t->target = f->target;
    f->domain = (keyheap_domain_t *)0; /* a left frame never names its domain */
    /* Both stores above come before depth drops: a handler that enters
     * after that takes this frame, and the target read from it must be
     * this enter's. */
    __asm__ volatile("" : "=m"(t->depth) : "m"(t->target), "m"(f->domain));
    t->depth = n - 1;
}

/* ================================================================= scopes
 *
 * A scope enters a domain and leaves it when the enclosing block is left,
 * so the leave cannot be forgotten on an early return.
 *
 *   int sign(keyheap_domain_t *d, ...)
 *   {
 *       KEYHEAP_SCOPE(d);        // keyheap_enter(d) here
 *       if (bad)
 *           return -1;           // keyheap_leave(d) on the way out
 *       ...
 *       return 0;                // and here
 *   }
 *
 * KEYHEAP_SCOPE(d) is a declaration: it evaluates d once, calls
 * keyheap_enter(d) and declares a hidden variable with
 * __attribute__((cleanup)), whose cleanup calls keyheap_leave(d) when the
 * block in which it stands is left by any ordinary path: falling off its
 * end, return, break, continue, or a goto to a label outside the block.
 * KEYHEAP_SCOPE_RO(d) does the same with keyheap_enter_ro(d).  Each scope's
 * variable has its own name (__COUNTER__), so several scopes may stand in
 * one block; they are left in reverse order, as enters nest.  In C++,
 * keyheap::scope and keyheap::scope_ro below do the same as objects.
 *
 * Rules: do not keyheap_leave(d) yourself inside a scope (the scope's own
 * leave would then not match and abort); do not jump into a block past a
 * KEYHEAP_SCOPE (clang refuses such a goto; gcc 12 accepts it silently,
 * and the cleanup then runs on the uninitialised variable: undefined).
 *
 * What happens on the ways out that are not ordinary (observed with gcc
 * 12, glibc 2.36; tests/check_scope.c and tests/check_scope.cc):
 *  - longjmp (and siglongjmp) out of a scope runs no cleanup and no C++
 *    destructor: the domain stays entered, and the next leave that does
 *    not match aborts.  Either longjmp only within a scope, or leave every
 *    domain the jump skips explicitly at the landing site.
 *  - A C++ exception that leaves a keyheap::scope or keyheap::scope_ro
 *    leaves the domain (the destructor runs while the stack unwinds); a
 *    plain keyheap_enter without a guard stays entered, as with longjmp.
 *    A KEYHEAP_SCOPE in C++ code is left by an exception too (g++ runs
 *    cleanup attributes while unwinding), and so is one in C code compiled
 *    with -fexceptions, which has the same landing pads pthread_exit runs
 *    (below).
 *    WARNING: an exception thrown inside a read-write scope is allocated
 *    in the domain (libstdc++ allocates exception objects with malloc,
 *    and std::runtime_error its message with new, and the domain is
 *    malloc's target), so once the scope is left, the rest of the
 *    unwinding faults on it (SEGV_PKUERR on the domain's key).  Catch inside the
 *    read-write scope, or throw only inside keyheap::scope_ro (which
 *    leaves malloc's target alone: the exception lands on the default
 *    heap).
 *  - pthread_exit, and pthread_cancel acted upon at a cancellation point,
 *    unwind the thread's stack (glibc's forced unwinding): C++ destructors
 *    run, so a keyheap::scope is left before the thread's pthread key
 *    destructors run.  A C KEYHEAP_SCOPE is left then only in code
 *    compiled with -fexceptions; without it (gcc's default for C) its
 *    cleanup does not run and the thread ends still inside the domain,
 *    which harms nothing else (PKRU is per thread).  Build C code that
 *    may exit or be cancelled inside a scope with -fexceptions.
 *    A cancellation acted upon in a blocking call (glibc 2.36 makes
 *    cancellation asynchronous around them) unwinds from glibc's
 *    SIGCANCEL handler, which runs with every domain closed: until the
 *    innermost guard is left, destructors, cleanups and pthread cleanup
 *    handlers see every domain closed whatever the domain stack says;
 *    each leave then restores what its enter found.
 *    The first pthread_exit, cancellation or backtrace() of a process
 *    makes glibc load its unwinder (libgcc_s, with dlopen); inside a
 *    domain the loader's allocations would land there, and exit() would
 *    later fault in the dynamic loader.  keyheap loads it on the default
 *    heap at the first keyheap_domain_create.
 *    WARNING: a thread that enters a domain while another thread's first
 *    keyheap_domain_create is still loading it (a creation does not wait
 *    for a load started elsewhere) can still meet this; other libraries
 *    that load code lazily must be initialised before entering, as always.
 */
#define KEYHEAP_SCOPE_CAT2(a, b) a##b
#define KEYHEAP_SCOPE_CAT(a, b) KEYHEAP_SCOPE_CAT2(a, b)
#define KEYHEAP_SCOPE_DECLARE(d, ro, n)                                                            \
    keyheap_domain_t *const KEYHEAP_SCOPE_CAT(keyheap_scope_, n)                                   \
        __attribute__((cleanup(keyheap_scope_leave), unused)) = keyheap_scope_enter((d), (ro))

/* KEYHEAP_SCOPE - keyheap_enter(d) until the enclosing block is left. */
#define KEYHEAP_SCOPE(d) KEYHEAP_SCOPE_DECLARE(d, 0, __COUNTER__)

/* KEYHEAP_SCOPE_RO - keyheap_enter_ro(d) until the enclosing block is left. */
#define KEYHEAP_SCOPE_RO(d) KEYHEAP_SCOPE_DECLARE(d, 1, __COUNTER__)

/* The two halves of a scope; not for direct use. */
KEYHEAP_ABI_INLINE keyheap_domain_t *keyheap_scope_enter(keyheap_domain_t *d, int readonly)
{
    keyheap_abi_enter(d, readonly ? 1u : 0u);
    return d;
}

KEYHEAP_ABI_INLINE void keyheap_scope_leave(keyheap_domain_t *const *d)
{
    keyheap_leave(*d);
}

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
namespace keyheap
{

/*
 * keyheap::scope - keyheap_enter(d) for the lifetime of the object: the
 * constructor enters, the destructor leaves, also when an exception, or
 * pthread_exit or cancellation, unwinds through it (see "scopes" above;
 * longjmp runs no destructor).  Neither copyable nor movable: the leave
 * belongs to this one object.
 *
 *   {
 *       keyheap::scope in(d);
 *       use(secret);   // may throw: d is left either way
 *   }
 */
class scope
{
  public:
    explicit scope(keyheap_domain_t *d) noexcept : d_(d) { keyheap_enter(d); }
    ~scope() noexcept { keyheap_leave(d_); }
    scope(const scope &) = delete;
    scope(scope &&) = delete;
    scope &operator=(const scope &) = delete;
    scope &operator=(scope &&) = delete;

  private:
    keyheap_domain_t *const d_;
};

/* keyheap::scope_ro - the same with keyheap_enter_ro(d). */
class scope_ro
{
  public:
    explicit scope_ro(keyheap_domain_t *d) noexcept : d_(d) { keyheap_enter_ro(d); }
    ~scope_ro() noexcept { keyheap_leave(d_); }
    scope_ro(const scope_ro &) = delete;
    scope_ro(scope_ro &&) = delete;
    scope_ro &operator=(const scope_ro &) = delete;
    scope_ro &operator=(scope_ro &&) = delete;

  private:
    keyheap_domain_t *const d_;
};

} /* namespace keyheap */
#endif

#endif /* KEYHEAP_H */
