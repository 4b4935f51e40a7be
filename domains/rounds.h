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

/* khi_sweep_keys - the key cache's sweep (domains/keys.c): closes the keys
 * of ad_bits, each held by a resident domain, in every task, except in a
 * task whose domain stack names the key's domain: that task keeps the key
 * and sets the domain's `used` word.  pre: the caller cleared the `used`
 * word of those domains.  Returns 0 when every task answered and none
 * reopened a key after the last pass (then a domain whose `used` word is
 * still clear has its key closed in every task), else nonzero. */
KHI_HIDDEN unsigned khi_sweep_keys(unsigned ad_bits);

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
