/*
 * domains/rounds.h - closing keys in other threads: rounds of keyheap's PKRU
 * signal.
 */
#ifndef KH_DOMAINS_ROUNDS_H
#define KH_DOMAINS_ROUNDS_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* The signal keyheap sends its own threads to set their PKRU (documented in
 * keyheap.h; a program must leave it alone once it uses domains). */
#define KHI_PKRU_SIGNAL (SIGRTMAX - 1)

#include "alloc/hidden.h"

/* khi_rounds_install - installs the handler of keyheap's PKRU signal,
 * once (at a domain creation with a hardware key).  pre: the domain lock
 * is held.  khi_rounds_installed - whether it is. */
KHI_HIDDEN void khi_rounds_install(void);
KHI_HIDDEN bool khi_rounds_installed(void);

/* khi_close_key_everywhere - closes the keys of ad_bits (PKRU
 * access-disable bits) in every thread that ever used a domain, through
 * each thread's signal frame.  Returns the number of threads that did not
 * answer within a second (they block the signal, or are stuck); 0 when
 * every thread has the keys closed. */
KHI_HIDDEN unsigned khi_close_key_everywhere(unsigned ad_bits);

/* khi_close_key_evicting - an eviction's round: closes the key of ad_bit
 * (which must be among khi_keys_kept during the round) in every task but
 * the caller, which closes it itself, unless the task is inside victim or
 * busy in it.  pre: victim is marked parked (KEYHEAP_ABI_PARKED), so that
 * a task that was not inside it when signalled reads it parked after.
 * Returns whether the key may be taken from victim. */
struct khi_heap;
enum khi_evict_round {
    KHI_EVICT_CLOSED,     /* every task has the key closed: it may move */
    KHI_EVICT_REFUSED,    /* a task is inside victim or busy in it (or reopened
                             the key in every pass) */
    KHI_EVICT_UNANSWERED, /* a task did not answer within a second */
};
KHI_HIDDEN enum khi_evict_round khi_close_key_evicting(unsigned ad_bit,
                                                        const struct khi_heap *victim);

/* khi_rounds_exempt - records tid as a task that blocks every signal
 * and runs no user code (glibc's timer helper): rounds do not wait for it
 * once it is seen to block keyheap's signal and never used a domain. */
KHI_HIDDEN void khi_rounds_exempt(pid_t tid);

/* khi_task_snapshot - the tids of up to max tasks of the process but the
 * caller (from /proc/self/task); returns how many (0 without /proc). */
KHI_HIDDEN unsigned khi_task_snapshot(pid_t *out, unsigned max);

/* khi_round_audit - the watchdog's round: every task closes the keys it
 * has open and must not (domains/audit.h).  Returns how many tasks did
 * not answer. */
KHI_HIDDEN unsigned khi_round_audit(void);

/* khi_rounds_after_fork - in a fork child: the round state of threads
 * that are gone is dropped. */
KHI_HIDDEN void khi_rounds_after_fork(void);

#endif /* KH_DOMAINS_ROUNDS_H */
