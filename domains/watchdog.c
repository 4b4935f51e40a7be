/*
 * domains/watchdog.c - the watchdog (KEYHEAP_CONF=watchdog:<ms>): a thread
 * that every <ms> milliseconds runs an audit round (domains/rounds.c) in
 * which every task closes the keys it has open and must not
 * (domains/audit.h, khi_audit_close).
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "domains/rounds.h"
#include "domains/watchdog.h"

static bool wanted; /* KEYHEAP_CONF has watchdog:<ms>; guarded by the domain lock */

static void *watchdog_main(void *arg)
{
    (void)arg;
    /* Every signal blocked but keyheap's own, so that a destroy's round
     * reaches this thread at once like any other. */
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, KHI_PKRU_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    unsigned ms = khi_conf_get()->watchdog_ms;
    struct timespec period = {ms / 1000, (long)(ms % 1000) * 1000000L};
    unsigned complained = 0;
    for (;;) {
        nanosleep(&period, NULL);
        unsigned missing = khi_round_audit();
        if (missing != 0 && complained++ == 0) {
            char n[24];
            khi_warn("watchdog: ", khi_dec(n, missing),
                     " thread(s) did not answer the PKRU signal (blocked?) and were not audited",
                     (char *)NULL);
        }
    }
    return NULL;
}

static void start_watchdog(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, watchdog_main, NULL) != 0)
        khi_warn("KEYHEAP_CONF watchdog: cannot start the watchdog thread", (char *)NULL);
    pthread_attr_destroy(&attr);
}

void khi_watchdog_install(void)
{
    khi_rounds_install();
    if (!khi_rounds_installed() || wanted || khi_conf_get()->watchdog_ms == 0)
        return;
    wanted = true;
    start_watchdog();
}

void khi_watchdog_after_fork(void)
{
    khi_rounds_after_fork();
    if (wanted)
        start_watchdog();
}
