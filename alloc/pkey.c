/*
 * alloc/pkey.c - the CPU and kernel probe for memory protection keys, and
 * the key system calls.  This is the one file of keyheap that makes them.
 */
#include "config.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/mman.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"
#include "alloc/pkey.h"
#include "alloc/procfs.h"
#include "include/keyheap.h"

/* CPUID leaf 7, subleaf 0, ECX: PKU (the CPU has protection keys) and
 * OSPKE (the kernel enabled them in CR4). */
#define CPUID7_ECX_PKU (1u << 3)
#define CPUID7_ECX_OSPKE (1u << 4)

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int pku_usable;

static int cpu_has_pku(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    (void)a, (void)b, (void)d;
    return (c & (CPUID7_ECX_PKU | CPUID7_ECX_OSPKE)) == (CPUID7_ECX_PKU | CPUID7_ECX_OSPKE);
}

static void probe(void)
{
    if (!khi_conf_get()->pku || !cpu_has_pku())
        return;
    /* The CPU and the kernel agree; a key must also be obtainable (valgrind,
     * a seccomp filter or a full key table can still refuse one).  The key
     * is asked for access-disabled: pkey_alloc sets its rights in the
     * calling thread's PKRU and pkey_free leaves them, so a probe with
     * rights 0 would leave this key open here and in every thread created
     * from here later, and the next domain gets the same key (PKU-FACTS
     * row 8c). */
    int key = pkey_alloc(0, PKEY_DISABLE_ACCESS);
    if (key < 0)
        return;
    /* pkey_free(0) succeeds and would hand key 0 out later: never free it. */
    if (key != 0)
        pkey_free(key);
    pku_usable = key > 0;
}

int khi_pku_usable(void)
{
    pthread_once(&probe_once, probe);
    return pku_usable;
}

KEYHEAP_API int keyheap_pku_supported(void)
{
    return khi_pku_usable();
}

int khi_pkey_alloc(void)
{
    int key = pkey_alloc(0, PKEY_DISABLE_ACCESS);
    if (key == 0)
        khi_fatal("pkey_alloc returned key 0, the default key: something freed it; "
                  "refusing to hand out memory everyone can read",
                  (char *)NULL);
    return key;
}

void khi_pkey_free(int key)
{
    if (key > 0 && pkey_free(key) != 0) {
        char buf[24];
        khi_fatal("pkey_free(", khi_dec(buf, (unsigned long)key), ") failed: key table corrupt",
                  (char *)NULL);
    }
}

_Bool khi_pkey_mprotect(void *addr, size_t len, int prot, int key)
{
    if (key < 0)
        return mprotect(addr, len, prot) != 0;
    return pkey_mprotect(addr, len, prot, key) != 0;
}

/* A PROT_NONE page for khi_pkey_is_allocated, mapped once. */
static void *test_page;

bool khi_pkey_test_init(void)
{
    if (__atomic_load_n(&test_page, __ATOMIC_ACQUIRE) != NULL)
        return false;
    void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return true;
    void *none = NULL;
    if (!__atomic_compare_exchange_n(&test_page, &none, p, false, __ATOMIC_RELEASE,
                                     __ATOMIC_RELAXED))
        munmap(p, 4096);
    return false;
}

bool khi_pkey_is_allocated(unsigned key)
{
    void *page = __atomic_load_n(&test_page, __ATOMIC_ACQUIRE);
    if (page == NULL || key == 0 || key > 15)
        return true;
    if (pkey_mprotect(page, 4096, PROT_NONE, (int)key) != 0)
        return errno != EINVAL;
    /* Back to key 0: the page never keeps a key that may be freed. */
    pkey_mprotect(page, 4096, PROT_NONE, 0);
    return true;
}

/* The value of a "Name:  <decimal>" line of smaps, or -1. */
static long smaps_field(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(line, name, n) != 0)
        return -1;
    return strtol(line + n, NULL, 10);
}

struct key_query {
    long key;
    unsigned found;
};

static bool key_line(const char *line, void *ctx)
{
    struct key_query *q = ctx;
    if (smaps_field(line, "ProtectionKey:") == q->key)
        q->found++;
    return false;
}

unsigned khi_pkey_mappings(int key)
{
    struct key_query q = {key, 0};
    khi_proc_lines("/proc/self/smaps", key_line, &q);
    return q.found;
}
