/*
 * alloc/pkey.h - protection keys: the CPU probe and the key syscalls.
 * alloc/pkey.c is the one file of keyheap that makes pkey system calls.
 */
#ifndef KH_ALLOC_PKEY_H
#define KH_ALLOC_PKEY_H

#include "alloc/hidden.h"

#include <stddef.h>

/* khi_pku_usable - 1 when domains get hardware keys (keyheap_pku_supported). */
KHI_HIDDEN int khi_pku_usable(void);

/* khi_pkey_alloc - a fresh key, access-disabled in the calling thread, or -1
 * with errno (ENOSPC when none is left).  Never returns 0: a key 0 from the
 * kernel is fatal (it would mean key 0 had been freed). */
KHI_HIDDEN int khi_pkey_alloc(void);

/* khi_pkey_free - gives key back to the kernel.  pre: no page carries it.
 * Key 0 and -1 are never freed. */
KHI_HIDDEN void khi_pkey_free(int key);

/* khi_pkey_mprotect - mprotect that also tags the range with key; key -1
 * means an unprotected domain (plain mprotect).  Returns true on error. */
KHI_HIDDEN _Bool khi_pkey_mprotect(void *addr, size_t len, int prot, int key);

/* khi_pkey_test_init - maps the page khi_pkey_is_allocated uses; once,
 * before the first call.  Returns true on error. */
KHI_HIDDEN _Bool khi_pkey_test_init(void);

/* khi_pkey_is_allocated - whether some code in the process has allocated
 * key (1..15), asked of the kernel with one pkey_mprotect of a PROT_NONE
 * page (EINVAL: nobody has).  Async-signal-safe, no lock: keyheap's PKRU
 * signal handler calls it.  Says true when it cannot tell. */
KHI_HIDDEN _Bool khi_pkey_is_allocated(unsigned key);

/* khi_pkey_mappings - how many mappings of the process carry key, from
 * /proc/self/smaps ("ProtectionKey:"); 0 where it cannot be read.  Costs
 * a walk of every mapping: only for a destroy whose key the program was
 * told (keyheap_domain_pkey) and may have used with pkey_mprotect. */
KHI_HIDDEN unsigned khi_pkey_mappings(int key);

#endif /* KH_ALLOC_PKEY_H */
