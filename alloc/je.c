/*
 * alloc/je.c - keyheap's private jemalloc: its defaults, and the arenas and
 * thread caches of heaps through its mallctl interface.  The calls
 * themselves are written once, in alloc/je.h.
 *
 * jemalloc reads its options from, in order: the malloc_conf symbol (here
 * renamed kh_je_malloc_conf, so this definition replaces the archive's empty
 * weak one), the /etc/malloc.conf symlink, then the MALLOC_CONF environment
 * variable.  A later source overrides an earlier one option by option, so a
 * user changes any default below with MALLOC_CONF, for example
 * MALLOC_CONF=background_thread:false.  The numbers behind each default are
 * in docs/configuration.md ("Tuning").
 */
#include "config.h"

#include <stdio.h>

#include "alloc/je.h"

/* Measured defaults; docs/configuration.md ("Tuning") has the numbers.
 * Background purging threads make a many-thread cross-thread stress 2.4x
 * faster but raise peak RSS with the heap (13-15 % on the churn benchmark,
 * 38-45 % on the stress, past the 5 % keyheap allows itself) and add a
 * thread to every process keyheap is preloaded into; so they stay off by default and are one
 * MALLOC_CONF=background_thread:true away. */
/* thp:never: where transparent huge pages are "always" (Debian's cloud
 * kernel), every domain heap's jemalloc metadata (the page-map leaf of its
 * region, 2 MiB of address space of which a few pages are used) would take
 * a whole huge page: 300 domains measured 1.26 GB of RSS, against 41 MB
 * with thp:never.  Where THP is "madvise" (Debian's default), jemalloc's
 * memory has no huge pages either way. */
#define KH_JE_DEFAULT_CONF "background_thread:false,thp:never"

KHI_HIDDEN const char *kh_je_malloc_conf = KH_JE_DEFAULT_CONF;

/* The layout of jemalloc 5.3.0's arena_config_t, which
 * experimental.arenas_create_ext takes (include/jemalloc/internal/
 * arena_types.h there).  metadata_use_hooks = false keeps arena_t and the
 * extent metadata on ordinary key-0 pages: jemalloc then never touches a
 * domain's pages to allocate or free, so it works while the key is closed. */
struct je_arena_config {
    khi_extent_hooks_t *extent_hooks;
    bool metadata_use_hooks;
};

bool khi_je_arena_create(khi_extent_hooks_t *hooks, unsigned *arena)
{
    struct je_arena_config cfg = {.extent_hooks = hooks, .metadata_use_hooks = false};
    size_t sz = sizeof *arena;
    return khi_je_ctl("experimental.arenas_create_ext", arena, &sz, &cfg, sizeof cfg) != 0;
}

/* Not arena.<i>.destroy: jemalloc never unmaps a destroyed arena's
 * metadata while it retains address space (retain:true, its default here),
 * so every destroyed arena would leak some 2 MiB of address space.  An
 * arena per domain slot, emptied and used again, leaks nothing. */
bool khi_je_arena_empty(unsigned arena)
{
    char name[64];
    snprintf(name, sizeof name, "arena.%u.reset", arena);
    if (khi_je_ctl(name, NULL, NULL, NULL, 0) != 0)
        return true;
    snprintf(name, sizeof name, "arena.%u.purge", arena);
    return khi_je_ctl(name, NULL, NULL, NULL, 0) != 0;
}

bool khi_je_tcache_create(unsigned *tcache)
{
    size_t sz = sizeof *tcache;
    return khi_je_ctl("tcache.create", tcache, &sz, NULL, 0) != 0;
}

void khi_je_tcache_destroy(unsigned tcache)
{
    khi_je_ctl("tcache.destroy", NULL, NULL, &tcache, sizeof tcache);
}
