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

/* Measured defaults; see the README's "Tuning" table for why each is here. */
#define KH_JE_DEFAULT_CONF "background_thread:true"

KHI_HIDDEN const char *kh_je_malloc_conf = KH_JE_DEFAULT_CONF;

KEYHEAP_API const char *keyheap_version(void)
{
    return PACKAGE_VERSION;
}
