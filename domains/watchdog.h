/*
 * domains/watchdog.h - setting PKRU in other threads, and the watchdog.
 */
#ifndef KH_DOMAINS_WATCHDOG_H
#define KH_DOMAINS_WATCHDOG_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* The signal keyheap sends its own threads to set their PKRU (documented in
 * keyheap.h; a program must leave it alone once it uses domains). */
#define KHI_PKRU_SIGNAL (SIGRTMAX - 1)

#define KHI_FN_W __attribute__((visibility("hidden")))

/* khi_watchdog_install - at a domain creation with a hardware key: installs
 * the handler of keyheap's PKRU signal (once) and starts the watchdog
 * thread when KEYHEAP_CONF asks for one (once per process).  pre: the
 * domain lock is held. */
KHI_FN_W void khi_watchdog_install(void);

/* khi_close_key_everywhere - closes the keys of ad_bits (PKRU
 * access-disable bits) in every thread that ever used a domain, through
 * each thread's signal frame.  Returns the number of threads that did not
 * answer within a second (they block the signal, or are stuck); 0 when
 * every thread has the keys closed. */
KHI_FN_W unsigned khi_close_key_everywhere(unsigned ad_bits);

/* khi_watchdog_exempt - records tid as a task that blocks every signal
 * and runs no user code (glibc's timer helper): rounds do not wait for it
 * once it is seen to block keyheap's signal and never used a domain. */
KHI_FN_W void khi_watchdog_exempt(pid_t tid);

/* khi_task_snapshot - the tids of up to max tasks of the process but the
 * caller (from /proc/self/task); returns how many (0 without /proc). */
KHI_FN_W unsigned khi_task_snapshot(pid_t *out, unsigned max);

/* khi_watchdog_after_fork - in a fork child: starts the watchdog thread
 * again if the parent had one. */
KHI_FN_W void khi_watchdog_after_fork(void);

#endif /* KH_DOMAINS_WATCHDOG_H */
