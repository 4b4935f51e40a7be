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
 *
 * The private jemalloc reads its options from the MALLOC_CONF environment
 * variable like any jemalloc; keyheap's own defaults are documented in the
 * README ("Tuning") and are overridden by MALLOC_CONF option by option.
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
#define KEYHEAP_VERSION_MINOR 1
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
 * Returns 1 when the CPU has PKU, the kernel enabled it (OSPKE) and a
 * protection key can actually be allocated (pkey_alloc succeeds; valgrind,
 * for one, makes it fail), 0 otherwise.  The answer is computed once and
 * cached; the probe allocates one key and frees it again.  Never executes
 * RDPKRU or WRPKRU when the answer is 0.
 */
KEYHEAP_API KEYHEAP_NODISCARD int keyheap_pku_supported(void);

#ifdef __cplusplus
}
#endif

#endif /* KEYHEAP_H */
