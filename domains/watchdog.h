/*
 * domains/watchdog.h - the watchdog thread (KEYHEAP_CONF=watchdog:<ms>).
 */
#ifndef KH_DOMAINS_WATCHDOG_H
#define KH_DOMAINS_WATCHDOG_H

#include "alloc/hidden.h"

/* khi_watchdog_install - at a domain creation with a hardware key:
 * installs the handler of keyheap's PKRU signal (once, domains/rounds.h)
 * and starts the watchdog thread when KEYHEAP_CONF asks for one (once per
 * process).  pre: the domain lock is held. */
KHI_HIDDEN void khi_watchdog_install(void);

/* khi_watchdog_after_fork - in a fork child: the round state is reset,
 * and the watchdog thread started again if the parent had one. */
KHI_HIDDEN void khi_watchdog_after_fork(void);

#endif /* KH_DOMAINS_WATCHDOG_H */
