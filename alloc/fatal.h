/*
 * alloc/fatal.h - keyheap's messages: one line on stderr with write(2).
 */
#ifndef KH_ALLOC_FATAL_H
#define KH_ALLOC_FATAL_H

#include "alloc/hidden.h"

/*
 * khi_fatal - writes "keyheap: " and the strings given (a NULL-terminated
 * list) as one line to stderr, then aborts.  Async-signal-safe; allocates
 * nothing, so it works on a broken heap.
 */
KHI_HIDDEN __attribute__((noreturn, sentinel)) void khi_fatal(const char *first, ...);

/* khi_warn - the same line, without aborting. */
KHI_HIDDEN __attribute__((sentinel)) void khi_warn(const char *first, ...);

/* khi_hex - p as "0x..." in buf (at least 19 bytes); returns buf. */
KHI_HIDDEN const char *khi_hex(char *buf, unsigned long p);

/* khi_dec - n in decimal in buf (at least 21 bytes); returns buf. */
KHI_HIDDEN const char *khi_dec(char *buf, unsigned long n);

#endif /* KH_ALLOC_FATAL_H */
