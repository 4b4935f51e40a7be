/*
 * tests/khfault.h - what keyheap's "must fault" and "must abort" tests share.
 *
 * A must-fault test calls kht_expect_pku_fault(key) first and then makes the
 * bad access through kht_read/kht_write; the handler accepts only
 * SEGV_PKUERR on that key and exits with KHT_EXIT_PKU_FAULT, which the test
 * case checks with tcase_add_exit_test.  Any other SIGSEGV exits with a
 * different code, so the test fails.
 */
#ifndef KH_TESTS_KHFAULT_H
#define KH_TESTS_KHFAULT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KHT_EXIT_PKU_FAULT 42
#define KHT_EXIT_ACCERR_FAULT 41
#define KHT_EXIT_WRONG_FAULT 43

/* Accept only SEGV_PKUERR with si_pkey == key. */
void kht_expect_pku_fault(int key);

/* Accept only SEGV_ACCERR at exactly addr (a PROT_NONE page). */
void kht_expect_accerr_fault(const void *addr);

/* The accesses under test, out of line and through volatile pointers. */
unsigned char kht_read(const void *p);
void kht_write(void *p, unsigned char v);

/* PKRU, read with RDPKRU (only where PKU works). */
unsigned kht_pkru(void);

/* WRPKRU pkru: behind keyheap's back, as a program's own code would. */
void kht_wrpkru(unsigned pkru);

/* The PKRU rights of key: 0 open, 1 read-only... as bits (AD=1, WD=2). */
unsigned kht_key_rights(int key);

/* Runs fn(arg) in a forked child (SIGABRT at its default) whose stderr is
 * captured into buf (up to size - 1 bytes, NUL-terminated); returns the
 * child's wait status. */
int kht_child_stderr(void (*fn)(void *), void *arg, char *buf, size_t size);

/* Runs fn(arg) in a child whose stderr is captured; asserts that the child
 * died of SIGABRT and that its stderr was exactly message. */
void kht_expect_abort(void (*fn)(void *), void *arg, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* KH_TESTS_KHFAULT_H */
