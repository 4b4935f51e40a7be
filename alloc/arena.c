/*
 * alloc/arena.c - the arenas and thread caches of domains, through the
 * private jemalloc's mallctl interface.
 */
#include "config.h"

#include <stdio.h>

#include "alloc/je.h"

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
    return kh_je_mallctl("experimental.arenas_create_ext", arena, &sz, &cfg, sizeof cfg) != 0;
}

/* Not arena.<i>.destroy: jemalloc never unmaps a destroyed arena's
 * metadata while it retains address space (retain:true, its default here),
 * so every destroyed arena would leak some 2 MiB of address space.  An
 * arena per domain slot, emptied and used again, leaks nothing. */
bool khi_je_arena_empty(unsigned arena)
{
    char name[64];
    snprintf(name, sizeof name, "arena.%u.reset", arena);
    if (kh_je_mallctl(name, NULL, NULL, NULL, 0) != 0)
        return true;
    snprintf(name, sizeof name, "arena.%u.purge", arena);
    return kh_je_mallctl(name, NULL, NULL, NULL, 0) != 0;
}

bool khi_je_tcache_create(unsigned *tcache)
{
    size_t sz = sizeof *tcache;
    return kh_je_mallctl("tcache.create", tcache, &sz, NULL, 0) != 0;
}

void khi_je_tcache_destroy(unsigned tcache)
{
    kh_je_mallctl("tcache.destroy", NULL, NULL, &tcache, sizeof tcache);
}
