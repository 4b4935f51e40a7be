/*
 * tests/programs/indomain.c - a preload shim that runs a whole program inside
 * one domain.
 *
 *   LD_PRELOAD="libkeyheap.so indomain.so" program ...
 *
 * Its constructor creates the domain "everything" and enters it in the main
 * thread before main runs, so every malloc the program makes from then on
 * (keyheap's malloc replacement allocates in the thread's current domain)
 * lands in that domain, and the main thread never leaves it.  Its destructor
 * prints one line on stderr:
 *
 *   indomain: <objects> blocks in domain, peak <peak> B (pkey <key>)
 *
 * with the domain's live blocks and the high-water mark of its committed
 * bytes from keyheap_domain_stats, so a test can tell that the program's
 * allocations really landed there (a program that frees what it allocated
 * before exit leaves few blocks, but its peak stays).  libkeyheap.so must
 * come first in LD_PRELOAD: as a mere dependency of this shim it would be
 * searched after libc, and libc's malloc would stay the program's malloc.
 *
 * A fork child that exits normally prints its own line; an exec'd child
 * re-runs this constructor and enters a domain of its own.
 *
 * Threads the program creates start with every domain closed (keyheap's
 * pthread_create wrapper), so a worker thread that touches what the main
 * thread allocated faults: the documented behaviour.
 *
 * Creation failure is fatal: a program that silently ran outside the domain
 * would prove nothing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/keyheap.h"

static keyheap_domain_t *everything;

static void say(const char *line)
{
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, line, n);
        if (w <= 0)
            return;
        line += w, n -= (size_t)w;
    }
}

__attribute__((constructor)) static void indomain_enter(void)
{
    everything = keyheap_domain_create("everything", 0);
    if (everything == NULL) {
        char line[160];
        snprintf(line, sizeof line, "indomain: keyheap_domain_create failed: %s\n",
                 strerror(errno));
        say(line);
        _exit(125);
    }
    keyheap_enter(everything);
}

__attribute__((destructor)) static void indomain_report(void)
{
    struct keyheap_stats st;
    if (everything == NULL || keyheap_domain_stats(everything, &st) != 0)
        return;
    /* On the stack: the stdio and heap state here may be the program's. */
    char line[160];
    snprintf(line, sizeof line, "indomain: %zu blocks in domain, peak %zu B (pkey %d)\n",
             st.objects, st.peak, keyheap_domain_pkey(everything));
    say(line);
}
