/*
 * alloc/conf.c - keyheap's defaults for its private jemalloc, and its version.
 *
 * jemalloc reads its options from, in order: the malloc_conf symbol (here
 * renamed kh_je_malloc_conf, so this definition replaces the archive's empty
 * weak one), the /etc/malloc.conf symlink, then the MALLOC_CONF environment
 * variable.  A later source overrides an earlier one option by option, so a
 * user changes any default below with MALLOC_CONF, for example
 * MALLOC_CONF=background_thread:false.  The numbers behind each default are
 * in the README ("Tuning").
 */
#include "config.h"

#include "alloc/je.h"
#include "include/keyheap.h"

/* Measured defaults; the README's "Tuning" section has the numbers.
 * Background purging threads make a many-thread cross-thread stress 2.4x
 * faster but raise peak RSS with the heap (13-15 % on the churn benchmark,
 * 38-45 % on the stress, past the 5 % keyheap allows itself) and add a
 * thread to every process keyheap is preloaded into; so they stay off by default and are one
 * MALLOC_CONF=background_thread:true away. */
#define KH_JE_DEFAULT_CONF "background_thread:false"

KHI_HIDDEN const char *kh_je_malloc_conf = KH_JE_DEFAULT_CONF;

KEYHEAP_API const char *keyheap_version(void)
{
    return PACKAGE_VERSION;
}
