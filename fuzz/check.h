/*
 * fuzz/check.h - CHECK(cond) for the fuzz targets that link keyheap's
 * sources (fuzz/conf.c, fuzz/scan.c): a failed check prints its file, line
 * and condition and aborts, which libFuzzer and fuzz/replay.c report as a
 * crash.  (fuzz/api.c, which includes only <keyheap.h>, has its own.)
 */
#ifndef KH_FUZZ_CHECK_H
#define KH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif /* KH_FUZZ_CHECK_H */
