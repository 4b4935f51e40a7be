/*
 * alloc/region.c - one reserved address span, one fixed region per heap
 * slot, and the extent hooks that carve a heap's extents from its region.
 *
 * Facts this rests on (../shared/PKU-FACTS.md): a pkey tag survives
 * madvise(MADV_DONTNEED / MADV_FREE) and plain mprotect, and is lost by a
 * MAP_FIXED mapping over the range.  So extents are tagged when committed
 * (when carved, if jemalloc asks for committed space), purging uses
 * madvise, committing again re-tags (a repair if anything mapped over the
 * range), and the only MAP_FIXED mapping is the one that discards a
 * destroyed domain's region, before its key is freed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc/fatal.h"
#include "alloc/pkey.h"
#include "alloc/procfs.h"
#include "alloc/region.h"
#include "alloc/stats.h"

#define SPAN_UNRESERVED (UINTPTR_MAX - ((uintptr_t)KHI_SLOTS << KHI_REGION_SHIFT_MAX) + 1)

struct khi_span khi_span __attribute__((aligned(64))) = {.base = SPAN_UNRESERVED};

static pthread_mutex_t span_lock = PTHREAD_MUTEX_INITIALIZER;

/* Reserves slots regions of 1 << shift bytes, the span aligned to a
 * region; 0 on failure.  It over-reserves by one region so the span can
 * start aligned, and gives the unused ends back. */
static uintptr_t reserve_aligned(unsigned slots, unsigned shift)
{
    uintptr_t region = (uintptr_t)1 << shift, size = (uintptr_t)slots << shift;
    size_t len = size + region;
    char *raw = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return 0;
    uintptr_t base = ((uintptr_t)raw + region - 1) & ~(region - 1);
    if (base > (uintptr_t)raw)
        munmap(raw, base - (uintptr_t)raw);
    uintptr_t end = (uintptr_t)raw + len;
    if (end > base + size)
        munmap((void *)(base + size), end - (base + size));
    return base;
}

/* Reserves the block map for a span of size bytes: readable and writable,
 * untagged, pages made on first write.  NULL on failure. */
static unsigned char *reserve_map(uintptr_t size)
{
    void *map = mmap(NULL, size >> KHI_GRANULE_SHIFT, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    /* Each region's part is touched at a different place: small pages, or
     * every domain would cost a transparent huge page of map. */
    madvise(map, size >> KHI_GRANULE_SHIFT, MADV_DONTDUMP);
    madvise(map, size >> KHI_GRANULE_SHIFT, MADV_NOHUGEPAGE);
    return map;
}

/* Reserves the commit map for a span of size bytes, as reserve_map does. */
static uint64_t *reserve_commit_map(uintptr_t size)
{
    size_t len = (size >> KHI_PAGE_SHIFT) / 8;
    void *map =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    madvise(map, len, MADV_DONTDUMP);
    madvise(map, len, MADV_NOHUGEPAGE);
    return map;
}

bool khi_span_reserve(void)
{
    bool failed = false;
    pthread_mutex_lock(&span_lock);
    if (khi_span.size == 0) {
        /* KHI_SLOTS regions of 4 GiB down to 512 MiB; where even that does
         * not fit (valgrind), KHI_SLOTS_SHORT regions of 512 MiB down to
         * 64 MiB, so that every domain still has room. */
        unsigned slots = KHI_SLOTS, shift = KHI_REGION_SHIFT_MAX;
        uintptr_t base = 0;
        unsigned char *map = NULL;
        uint64_t *committed = NULL;
        for (;;) {
            uintptr_t size = (uintptr_t)slots << shift;
            if ((base = reserve_aligned(slots, shift)) != 0 && (map = reserve_map(size)) != NULL &&
                (committed = reserve_commit_map(size)) != NULL)
                break;
            if (map != NULL)
                munmap(map, size >> KHI_GRANULE_SHIFT);
            map = NULL;
            if (base != 0)
                munmap((void *)base, size);
            base = 0;
            if (slots == KHI_SLOTS && shift == KHI_REGION_SHIFT_MID)
                slots = KHI_SLOTS_SHORT;
            else if (shift-- == KHI_REGION_SHIFT_MIN)
                break;
        }
        if (base == 0) {
            failed = true;
            errno = ENOMEM;
        } else {
            uintptr_t size = (uintptr_t)slots << shift;
            madvise((void *)base, size, MADV_DONTDUMP);
            khi_span.shift = shift;
            khi_span.slots = slots;
            khi_span.map = map;
            khi_span.committed = committed;
            /* base before size: a reader that sees the new size sees it. */
            __atomic_store_n(&khi_span.base, base, __ATOMIC_RELEASE);
            __atomic_store_n(&khi_span.size, size, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&span_lock);
    return failed;
}

/* ------------------------------------------------------- the commit map */

enum map_op { MAP_COUNT, MAP_SET, MAP_CLEAR };

/* Counts, sets or clears the bits of the pages of [addr, addr + len) in
 * map w (a bit per page of the span); returns how many of them were set
 * before.  pre: addr and len are multiples of the page. */
static size_t map_bits(uint64_t *w, uintptr_t addr, size_t len, enum map_op op)
{
    size_t i = (addr - khi_span.base) >> KHI_PAGE_SHIFT, end = i + (len >> KHI_PAGE_SHIFT);
    size_t set = 0;
    while (i < end) {
        unsigned lo = (unsigned)(i % 64);
        size_t n = end - i < 64 - lo ? end - i : 64 - lo;
        uint64_t bits = (n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1) << lo;
        set += (size_t)__builtin_popcountll(w[i / 64] & bits);
        if (op == MAP_SET)
            w[i / 64] |= bits;
        else if (op == MAP_CLEAR)
            w[i / 64] &= ~bits;
        i += n;
    }
    return set;
}

/* Marks the pages of [addr, addr + len) committed (on) or not.  pre: the
 * carve lock of their heap; addr and len are multiples of the page. */
static void commit_mark(uintptr_t addr, size_t len, bool on)
{
    map_bits(khi_span.committed, addr, len, on ? MAP_SET : MAP_CLEAR);
}

/* The first page at or after i (page index in the span), below end, whose
 * commit bit is set (want) or clear (!want); end when there is none. */
static size_t commit_next(size_t i, size_t end, bool want)
{
    const uint64_t *w = khi_span.committed;
    while (i < end) {
        uint64_t word = want ? w[i / 64] : ~w[i / 64];
        word &= ~(uint64_t)0 << (i % 64);
        if (word != 0) {
            size_t at = (i & ~(size_t)63) + (size_t)__builtin_ctzll(word);
            return at < end ? at : end;
        }
        i = (i & ~(size_t)63) + 64;
    }
    return end;
}

/* --------------------------------------------------- KEYHEAP_SECRETMEM
 *
 * A KEYHEAP_SECRETMEM heap's committed pages are a shared mapping of one
 * memfd_secret(2) file per heap, as large as its region, at the offset of
 * their address in the region: the kernel takes them out of its direct
 * map, so /proc/<pid>/mem, process_vm_readv and ptrace cannot read them,
 * and they carry the heap's key like any other page.  What the kernel
 * allows on such a mapping, and so what keyheap does instead (observed on
 * Linux 6.1 and 6.18, PKU-FACTS' machine kinds):
 *   - secret pages count against RLIMIT_MEMLOCK: Linux 6.18 checks each
 *     mapping's length at mmap (CAP_IPC_LOCK exempts), so only committed
 *     runs are mapped, never the whole region; Linux 6.1 counts every page
 *     a secret file holds, mapped or not, at the fault that makes it,
 *     CAP_IPC_LOCK or not, and raises SIGBUS past the limit.  So keyheap
 *     counts the pages its files may hold (every page mapped since the
 *     file was made: the filed map) and refuses, with ENOMEM and a hint, a
 *     mapping that would take them past RLIMIT_MEMLOCK's soft limit, for
 *     every process: an allocation fails, never a later touch;
 *   - a MAP_FIXED mapping that fails has already unmapped what it was to
 *     replace: the span's PROT_NONE reservation is put back;
 *   - MADV_DONTNEED, MADV_FREE and MADV_WIPEONFORK fail, and the file has
 *     no fallocate(PUNCH_HOLE): pages go back to the kernel only when the
 *     file is closed, at destroy.  Purges are refused; a decommit zeroes
 *     the pages it drops (jemalloc takes decommitted memory to read as
 *     zeroes when it commits it again, and the file keeps the old bytes),
 *     then unmaps them, which ends their RLIMIT_MEMLOCK charge;
 *   - the mapping is shared, so a fork child would share the heap with
 *     its parent: the pages are MADV_DONTFORK, and the child gets a file
 *     of its own, committed where the parent's was, and zeroes
 *     (khi_region_after_fork: KEYHEAP_WIPEONFORK's answer);
 *   - the descriptor is the process's: a program that closes descriptors
 *     it did not open may close it, and open another file under its
 *     number.  Every commit checks that the number still names the file
 *     keyheap made, and fails otherwise, so that domain memory never lands
 *     in another file.
 */
static struct secret {
    int fd;     /* the heap's memfd_secret file; valid while it is live */
    bool dying; /* torn down: its pages go with the file, unzeroed */
    dev_t dev;  /* the file's identity, checked before every mapping */
    ino_t ino;
    size_t filed; /* pages its file may hold: its bits in the filed map */
} secrets[KHI_SLOTS];

/* A bit per page of the span: mapped from its heap's secret file since the
 * file was made (made on the first secret heap, as the commit map is).
 * filed_total: the pages of every live secret heap's file, against
 * RLIMIT_MEMLOCK. */
static uint64_t *filed;
static size_t filed_total;

static void memlock_hint(const struct khi_heap *d)
{
    static bool hinted;
    if (!__atomic_exchange_n(&hinted, true, __ATOMIC_RELAXED))
        khi_warn("KEYHEAP_SECRETMEM domain \"", d->name,
                 "\": the kernel refused more secret memory (memfd_secret pages count "
                 "against RLIMIT_MEMLOCK), so the allocation fails with ENOMEM; raise "
                 "RLIMIT_MEMLOCK (ulimit -l) or keep fewer secrets",
                 (char *)NULL);
}

/* Takes pages more pages for the secret files' count; false (nothing
 * taken) when that would pass RLIMIT_MEMLOCK. */
static bool filed_take(size_t pages)
{
    struct rlimit rl;
    size_t total = __atomic_add_fetch(&filed_total, pages, __ATOMIC_RELAXED);
    if (pages == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        total <= rl.rlim_cur >> KHI_PAGE_SHIFT)
        return true;
    __atomic_sub_fetch(&filed_total, pages, __ATOMIC_RELAXED);
    return false;
}

static bool is_secret(const struct khi_heap *d)
{
    return (d->flags & KEYHEAP_SECRETMEM) != 0;
}

/* Puts back the span's reservation over [addr, addr + size): PROT_NONE,
 * no key, no pages.  Returns true on error. */
static bool reserve_again(void *addr, size_t size)
{
    void *p =
        mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        return true;
    madvise(addr, size, MADV_DONTDUMP);
    return false;
}

/* A new memfd_secret file as large as a region, for the heap of name;
 * -1 with errno (and a "keyheap: ..." line for a missing syscall). */
static int secret_file(const char *name, struct secret *s)
{
    int fd = (int)syscall(SYS_memfd_secret, (unsigned)O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        static bool hinted;
        if (e == ENOSYS && !__atomic_exchange_n(&hinted, true, __ATOMIC_RELAXED))
            khi_warn("KEYHEAP_SECRETMEM domain \"", name,
                     "\": the kernel has no memfd_secret(2) (Linux 5.14 or later; before 6.5 "
                     "it needs secretmem.enable=1 on the kernel command line), so the domain "
                     "is not created (ENOSYS)",
                     (char *)NULL);
        errno = e;
        return -1;
    }
    struct stat st;
    if (ftruncate(fd, (off_t)((uintptr_t)1 << khi_span.shift)) != 0 || fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return fd;
}

bool khi_region_secret_open(const struct khi_heap *d, const char *name)
{
    struct secret *s = &secrets[d - khi_heaps];
    if (filed == NULL && (filed = reserve_commit_map(khi_span.size)) == NULL) {
        errno = ENOMEM;
        return true;
    }
    int fd = secret_file(name, s);
    if (fd < 0)
        return true;
    s->fd = fd;
    s->dying = false;
    return false;
}

void khi_region_secret_close(const struct khi_heap *d)
{
    struct secret *s = &secrets[d - khi_heaps];
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->filed != 0) {
        map_bits(filed, d->start, d->next - d->start, MAP_CLEAR);
        __atomic_sub_fetch(&filed_total, s->filed, __ATOMIC_RELAXED);
        s->filed = 0;
    }
}

void khi_region_secret_dying(struct khi_heap *d)
{
    if (is_secret(d))
        secrets[d->slot].dying = true;
}

/* Maps [addr, addr + size) of secret heap d from its file, PROT_NONE and
 * MADV_DONTFORK; commit_pages tags it.  Returns true on error (errno;
 * ENOMEM with a hint for RLIMIT_MEMLOCK), the range reserved again.
 * pre: d's carve lock. */
static bool secret_map(const struct khi_heap *d, void *addr, size_t size)
{
    struct secret *s = &secrets[d->slot];
    struct stat st;
    if (s->fd < 0) {
        errno = ENOMEM; /* a fork child that could not have a file of its own */
        return true;
    }
    if (fstat(s->fd, &st) != 0 || st.st_dev != s->dev || st.st_ino != s->ino) {
        static bool hinted;
        if (!__atomic_exchange_n(&hinted, true, __ATOMIC_RELAXED))
            khi_warn("KEYHEAP_SECRETMEM domain \"", d->name,
                     "\": the program closed keyheap's memfd_secret descriptor (or replaced "
                     "it), so the domain cannot grow: the allocation fails with ENOMEM",
                     (char *)NULL);
        errno = ENOMEM;
        return true;
    }
    size_t fresh = (size >> KHI_PAGE_SHIFT) - map_bits(filed, (uintptr_t)addr, size, MAP_COUNT);
    if (!filed_take(fresh)) {
        memlock_hint(d);
        errno = ENOMEM;
        return true;
    }
    void *p = mmap(addr, size, PROT_NONE, MAP_SHARED | MAP_FIXED, s->fd,
                   (off_t)((uintptr_t)addr - d->start));
    if (p == MAP_FAILED) {
        int e = errno;
        __atomic_sub_fetch(&filed_total, fresh, __ATOMIC_RELAXED);
        if (reserve_again(addr, size))
            khi_fatal("KEYHEAP_SECRETMEM domain \"", d->name,
                      "\": a failed mapping left a hole "
                      "in keyheap's address span, and it cannot be reserved again",
                      (char *)NULL);
        if (e == EAGAIN)
            memlock_hint(d);
        errno = e == EAGAIN ? ENOMEM : e;
        return true;
    }
    map_bits(filed, (uintptr_t)addr, size, MAP_SET);
    s->filed += fresh;
    madvise(addr, size, MADV_DONTFORK);
    return false;
}

/* Zeroes the committed pages of [addr, addr + size) that secret heap d's
 * file holds (mincore: pages never touched are not made to be zeroed).
 * pre: d's carve lock, d resident. */
static void secret_zero(const struct khi_heap *d, char *addr, size_t size)
{
    unsigned char in[512];
    struct khi_open o = khi_heap_open(d);
    for (size_t done = 0; done < size;) {
        size_t chunk = size - done < sizeof in * 4096 ? size - done : sizeof in * 4096;
        bool known = mincore(addr + done, chunk, in) == 0;
        for (size_t i = 0; i < chunk / 4096; i++) {
            char *page = addr + done + i * 4096;
            /* A page made a guard (PROT_NONE, not committed) is skipped. */
            if ((!known || (in[i] & 1)) &&
                map_bits(khi_span.committed, (uintptr_t)page, 4096, MAP_COUNT) != 0)
                explicit_bzero(page, 4096);
        }
        done += chunk;
    }
    khi_heap_close(d, o);
}

/* The decommit of [addr, addr + size) of secret heap d: zeroed (unless d
 * is being torn down), then unmapped.  A parked d cannot be zeroed (its
 * pages are PROT_NONE with no key): refused, jemalloc keeps the range
 * committed.  pre: d's carve lock.  Returns true when refused or failed. */
static bool secret_unmap(struct khi_heap *d, char *addr, size_t size)
{
    if (!secrets[d->slot].dying) {
        if (d->pkey == KHI_PKEY_PARKED)
            return true;
        secret_zero(d, addr, size);
    }
    return reserve_again(addr, size);
}

/* The hygiene flags of d on pages just tagged read-write: KEYHEAP_WIPEONFORK
 * (a fork child gets zeros) and KEYHEAP_MLOCK (no swap; mlock must fault
 * the pages in, which the key forbids while it is closed, so keyheap opens
 * it around the call).  Returns true on error, with the pages tagged
 * PROT_NONE again and errno from the failed call. */
static bool secure_pages(const struct khi_heap *d, void *addr, size_t size)
{
    /* Secret pages are locked by the kernel, and wiped in a fork child by
     * keyheap (khi_region_after_fork): MADV_WIPEONFORK fails on them. */
    if (is_secret(d))
        return false;
    if ((d->flags & KEYHEAP_WIPEONFORK) && madvise(addr, size, MADV_WIPEONFORK) != 0)
        goto undo;
    /* A parked heap's pages are locked when it gets its key back. */
    if ((d->flags & KEYHEAP_MLOCK) && d->pkey != KHI_PKEY_PARKED) {
        struct khi_open pkru = khi_heap_open(d);
        int rc = mlock(addr, size);
        khi_heap_close(d, pkru);
        if (rc != 0) {
            static bool hinted;
            if (!__atomic_exchange_n(&hinted, true, __ATOMIC_RELAXED))
                khi_warn("KEYHEAP_MLOCK domain \"", d->name,
                         "\": mlock failed, so the "
                         "allocation fails with ENOMEM; raise RLIMIT_MEMLOCK (ulimit -l) or "
                         "lock less",
                         (char *)NULL);
            goto undo;
        }
    }
    return false;
undo:;
    int e = errno;
    mprotect(addr, size, PROT_NONE);
    errno = e;
    return true;
}

/* Makes [addr, addr + size) of d usable memory: read-write with d's key,
 * or, while d is parked, PROT_NONE with key 0 until it gets one.  pre: d's
 * carve lock. */
static bool commit_pages(const struct khi_heap *d, void *addr, size_t size)
{
    if (is_secret(d) && secret_map(d, addr, size))
        return true;
    if (d->pkey == KHI_PKEY_PARKED)
        return khi_pkey_mprotect(addr, size, PROT_NONE, 0);
    return khi_pkey_mprotect(addr, size, PROT_READ | PROT_WRITE, d->pkey);
}

static struct khi_heap *domain_of_hooks(khi_extent_hooks_t *hooks)
{
    return (struct khi_heap *)((char *)hooks - offsetof(struct khi_heap, hooks));
}

/* Carves size bytes aligned to alignment from the region, and commits
 * (tags) them only when jemalloc asks to: when it grows an arena it asks
 * for uncommitted space and commits the part it uses (hook_commit), so it
 * never believes in committed pages that a destroy has made PROT_NONE
 * (khi_region_discard), and hands none out to the slot's next domain
 * without committing them again.  jemalloc asks for new_addr only to grow
 * an extent in place: that works exactly when new_addr is where carving
 * continues. */
static void *hook_alloc(khi_extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment,
                        bool *zero, bool *commit, unsigned arena_ind)
{
    (void)arena_ind;
    struct khi_heap *d = domain_of_hooks(hooks);
    void *result = NULL;
    pthread_mutex_lock(&d->carve_lock);
    uintptr_t addr = (d->next + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (new_addr != NULL && (uintptr_t)new_addr != addr)
        addr = 0;
    if (addr != 0 && addr + size > addr && addr + size <= d->end &&
        (!*commit ||
         (!commit_pages(d, (void *)addr, size) && !secure_pages(d, (void *)addr, size)))) {
        /* The alignment gap before addr stays PROT_NONE: a guard. */
        d->next = addr + size;
        if (*commit) {
            commit_mark(addr, size, true);
            khi_stats_commit(d, size);
        }
        result = (void *)addr;
        *zero = true; /* fresh anonymous pages, or PROT_NONE until committed */
    }
    pthread_mutex_unlock(&d->carve_lock);
    return result;
}

/* Refusing keeps the extent in the arena as retained address space, to be
 * reused; the region is only given back whole, at destroy. */
static bool hook_dalloc(khi_extent_hooks_t *hooks, void *addr, size_t size, bool committed,
                        unsigned arena_ind)
{
    (void)hooks, (void)addr, (void)size, (void)committed, (void)arena_ind;
    return true;
}

/* Called for retained extents when the arena is destroyed: drop the pages
 * now; khi_region_discard unmaps the region afterwards. */
static void hook_destroy(khi_extent_hooks_t *hooks, void *addr, size_t size, bool committed,
                         unsigned arena_ind)
{
    (void)committed, (void)arena_ind;
    if (!is_secret(domain_of_hooks(hooks)))
        madvise(addr, size, MADV_DONTNEED);
}

static bool hook_commit(khi_extent_hooks_t *hooks, void *addr, size_t size, size_t offset,
                        size_t length, unsigned arena_ind)
{
    (void)size, (void)arena_ind;
    struct khi_heap *d = domain_of_hooks(hooks);
    char *p = (char *)addr + offset;
    pthread_mutex_lock(&d->carve_lock);
    bool failed = commit_pages(d, p, length) || secure_pages(d, p, length);
    if (!failed)
        commit_mark((uintptr_t)p, length, true);
    pthread_mutex_unlock(&d->carve_lock);
    if (failed)
        return true;
    khi_stats_commit(d, length);
    return false;
}

static bool hook_decommit(khi_extent_hooks_t *hooks, void *addr, size_t size, size_t offset,
                          size_t length, unsigned arena_ind)
{
    (void)size, (void)arena_ind;
    struct khi_heap *d = domain_of_hooks(hooks);
    char *p = (char *)addr + offset;
    pthread_mutex_lock(&d->carve_lock);
    /* Locked pages cannot be dropped: unlock them first (commit locks
     * them again).  Plain mprotect keeps the key tag; the pages themselves
     * are dropped. */
    bool failed = is_secret(d) ? secret_unmap(d, p, length)
                               : ((d->flags & KEYHEAP_MLOCK) && munlock(p, length) != 0) ||
                                     madvise(p, length, MADV_DONTNEED) != 0 ||
                                     mprotect(p, length, PROT_NONE) != 0;
    if (!failed)
        commit_mark((uintptr_t)p, length, false);
    pthread_mutex_unlock(&d->carve_lock);
    if (failed)
        return true;
    khi_stats_decommit(d, length);
    return false;
}

/* Purged pages stay committed, and jemalloc reuses them without calling
 * commit: in a KEYHEAP_MLOCK domain they would come back unlocked, so its
 * purges are refused (jemalloc decommits instead); secret pages cannot be
 * purged at all. */
static bool hook_purge_lazy(khi_extent_hooks_t *hooks, void *addr, size_t size, size_t offset,
                            size_t length, unsigned arena_ind)
{
    (void)size, (void)arena_ind;
    if (domain_of_hooks(hooks)->flags & (KEYHEAP_MLOCK | KEYHEAP_SECRETMEM))
        return true;
    return madvise((char *)addr + offset, length, MADV_FREE) != 0;
}

static bool hook_purge_forced(khi_extent_hooks_t *hooks, void *addr, size_t size, size_t offset,
                              size_t length, unsigned arena_ind)
{
    (void)size, (void)arena_ind;
    if (domain_of_hooks(hooks)->flags & (KEYHEAP_MLOCK | KEYHEAP_SECRETMEM))
        return true;
    return madvise((char *)addr + offset, length, MADV_DONTNEED) != 0;
}

/* Every extent of a domain lies in its one region with one key: any split
 * and any merge of neighbours is fine. */
static bool hook_split(khi_extent_hooks_t *hooks, void *addr, size_t size, size_t size_a,
                       size_t size_b, bool committed, unsigned arena_ind)
{
    (void)hooks, (void)addr, (void)size, (void)size_a, (void)size_b, (void)committed;
    (void)arena_ind;
    return false;
}

static bool hook_merge(khi_extent_hooks_t *hooks, void *addr_a, size_t size_a, void *addr_b,
                       size_t size_b, bool committed, unsigned arena_ind)
{
    (void)hooks, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b, (void)committed;
    (void)arena_ind;
    return false;
}

void khi_region_init(struct khi_heap *d)
{
    d->hooks = (khi_extent_hooks_t){
        .alloc = hook_alloc,
        .dalloc = hook_dalloc,
        .destroy = hook_destroy,
        .commit = hook_commit,
        .decommit = hook_decommit,
        .purge_lazy = hook_purge_lazy,
        .purge_forced = hook_purge_forced,
        .split = hook_split,
        .merge = hook_merge,
    };
    if (d->end != 0)
        return; /* a new arena for a slot whose old one was left alone
                   (domain.c): it carves on from where the old one stopped */
    pthread_mutex_init(&d->carve_lock, NULL);
    d->start = khi_span.base + ((uintptr_t)d->slot << khi_span.shift);
    /* The region's first page stays unused: a guard below the heap. */
    d->next = d->start + 4096;
    d->end = d->start + ((uintptr_t)1 << khi_span.shift);
}

bool khi_region_discard(struct khi_heap *d)
{
    size_t used = d->next - d->start;
    if (used == 0) {
        if (is_secret(d))
            khi_region_secret_close(d);
        return false;
    }
    /* A fresh PROT_NONE mapping over the used part drops the pages, their
     * data and the key tag at once (PKU-FACTS row 5b). */
    if (reserve_again((void *)d->start, used))
        return true;
    if (is_secret(d))
        khi_region_secret_close(d); /* unmapped, its pages go back with it */
    khi_stats_reset(d);
    pthread_mutex_lock(&d->carve_lock);
    commit_mark(d->start, used, false);
    pthread_mutex_unlock(&d->carve_lock);
    /* The carve pointer stays: the arena retains what was carved and will
     * hand it out again. */
    /* The region's part of the block map: zeroes, with its pages dropped.
     * It starts on a page (a region's part is at least 4 MiB). */
    size_t map_used = ((used >> KHI_GRANULE_SHIFT) + 4095) & ~(size_t)4095;
    unsigned char *map = khi_map_of((void *)d->start);
    if (madvise(map, map_used, MADV_DONTNEED) != 0)
        memset(map, 0, map_used);
    return false;
}

bool khi_region_protect(const struct khi_heap *h, void *addr, size_t len, bool usable)
{
    struct khi_heap *d = (struct khi_heap *)h; /* its carve lock only */
    pthread_mutex_lock(&d->carve_lock);
    bool failed = usable ? commit_pages(d, addr, len) : mprotect(addr, len, PROT_NONE) != 0;
    if (!failed)
        commit_mark((uintptr_t)addr, len, usable);
    pthread_mutex_unlock(&d->carve_lock);
    return failed;
}

/* Calls fn(d, run, length) for every run of committed pages of d (the
 * commit map), in order, until one returns true; returns whether one did. */
static bool each_run(const struct khi_heap *d, bool (*fn)(const struct khi_heap *, void *, size_t))
{
    size_t i = (d->start - khi_span.base) >> KHI_PAGE_SHIFT;
    size_t end = (d->next - khi_span.base) >> KHI_PAGE_SHIFT;
    while ((i = commit_next(i, end, true)) < end) {
        size_t stop = commit_next(i, end, false);
        if (fn(d, (void *)(khi_span.base + (i << KHI_PAGE_SHIFT)), (stop - i) << KHI_PAGE_SHIFT))
            return true;
        i = stop;
    }
    return false;
}

/* Makes a committed run of d read-write with d's key (and locks it for
 * KEYHEAP_MLOCK).  Returns true on error (errno).  pre: d's carve lock;
 * d->pkey and d->abi.ad_bit say the key. */
static bool tag_run(const struct khi_heap *d, void *p, size_t len)
{
    if (khi_pkey_mprotect(p, len, PROT_READ | PROT_WRITE, d->pkey))
        return true;
    if ((d->flags & (KEYHEAP_MLOCK | KEYHEAP_SECRETMEM)) != KEYHEAP_MLOCK)
        return false;
    /* Pages committed while parked are locked now (mlock faults them in,
     * which needs the key open). */
    struct khi_open o = khi_heap_open(d);
    int rc = mlock(p, len);
    khi_heap_close(d, o);
    return rc != 0;
}

bool khi_region_park(struct khi_heap *d)
{
    pthread_mutex_lock(&d->carve_lock);
    size_t used = d->next - d->start;
    /* One call for the whole used range: the commit map keeps what was
     * usable.  Key 0, so that no page of the heap carries the key it
     * gives up. */
    bool failed = used != 0 && khi_pkey_mprotect((void *)d->start, used, PROT_NONE, 0);
    /* A call that failed half-way left some runs PROT_NONE: they are
     * given back their key, as the heap keeps it. */
    if (failed && each_run(d, tag_run))
        khi_fatal("domain \"", d->name,
                  "\": parking its memory failed half-way, and so did "
                  "giving it back its key",
                  (char *)NULL);
    if (!failed) {
        d->pkey = KHI_PKEY_PARKED;
        d->abi.ad_bit = 0;
    }
    pthread_mutex_unlock(&d->carve_lock);
    return failed;
}

bool khi_region_resume(struct khi_heap *d, int key)
{
    pthread_mutex_lock(&d->carve_lock);
    d->pkey = key;
    d->abi.ad_bit = 1u << (2 * key);
    bool failed = each_run(d, tag_run);
    if (failed) {
        int e = errno;
        size_t used = d->next - d->start;
        /* Pages must not keep the key the pool gets back. */
        if (used != 0 && khi_pkey_mprotect((void *)d->start, used, PROT_NONE, 0))
            khi_fatal("domain \"", d->name,
                      "\": tagging its memory with a key failed, and so "
                      "did parking it again",
                      (char *)NULL);
        d->pkey = KHI_PKEY_PARKED;
        d->abi.ad_bit = 0;
        errno = e;
    }
    pthread_mutex_unlock(&d->carve_lock);
    return failed;
}

/* Whether the maps line (lo-hi perms ...) is a readable or writable
 * mapping overlapping [start, end). */
static bool line_rw_in(const char *line, uintptr_t start, uintptr_t end)
{
    char *rest;
    uintptr_t lo = strtoul(line, &rest, 16);
    if (*rest != '-')
        return false;
    uintptr_t hi = strtoul(rest + 1, &rest, 16);
    if (*rest != ' ' || hi <= start || lo >= end)
        return false;
    return rest[1] == 'r' || rest[2] == 'w';
}

struct committed_query {
    uintptr_t start, end;
    bool found;
};

static bool committed_line(const char *line, void *ctx)
{
    struct committed_query *q = ctx;
    q->found = line_rw_in(line, q->start, q->end);
    return q->found;
}

bool khi_region_has_committed(const struct khi_heap *d)
{
    if (d->pkey == KHI_PKEY_PARKED) {
        /* Parked, every page is PROT_NONE: the commit map says what
         * jemalloc still holds as committed. */
        size_t i = (d->start - khi_span.base) >> KHI_PAGE_SHIFT;
        size_t end = (d->next - khi_span.base) >> KHI_PAGE_SHIFT;
        return commit_next(i, end, true) < end;
    }
    struct committed_query q = {d->start, d->next, false};
    khi_proc_lines("/proc/self/maps", committed_line, &q);
    return q.found;
}

void khi_region_after_fork(void)
{
    /* Another thread of the parent may have held a carve lock at the fork
     * (khi_region_protect, park and resume take it outside jemalloc's
     * locks, which jemalloc's own fork handler holds): in the child that
     * thread is gone and its lock would stay taken for good. */
    for (unsigned i = 0; i < khi_span.slots; i++)
        if (khi_heaps[i].end != 0)
            pthread_mutex_init(&khi_heaps[i].carve_lock, NULL);
    for (unsigned i = 0; i < khi_span.slots; i++) {
        struct khi_heap *d = &khi_heaps[i];
        if (!khi_heap_live(d) || !is_secret(d))
            continue;
        /* The parent's file must not serve the child: close it whatever
         * happens next. */
        struct secret *s = &secrets[i];
        int fd = secret_file(d->name, s);
        khi_region_secret_close(d);
        s->fd = fd;
        size_t used = d->next - d->start;
        bool failed = fd < 0 || (used != 0 && reserve_again((void *)d->start, used));
        /* Committed where the parent's was, and zeroes.  The only thread
         * of the child takes no carve lock: another thread of the parent
         * may have held one. */
        failed = failed || each_run(d, commit_pages);
        if (failed) {
            if (used != 0)
                reserve_again((void *)d->start, used);
            khi_region_secret_close(d);
            khi_warn("fork child: KEYHEAP_SECRETMEM domain \"", d->name,
                     "\": its memory cannot be made again in the child (memfd_secret or "
                     "mmap failed), so every block of it is inaccessible here and it cannot "
                     "grow",
                     (char *)NULL);
        }
    }
}
