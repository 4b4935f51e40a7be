/*
 * fuzz/api.c - libFuzzer target: the input is a program of keyheap API
 * calls, and every result is checked against a model.
 *
 * Each input byte sequence is read as operations (one byte: the operation,
 * then its arguments, one byte each; a short input just ends).  The model
 * keeps what keyheap must have: the live domains (name, flags), this
 * thread's stack of enters (so the malloc target, keyheap_current), the
 * domains whose key keyheap_domain_pkey gave out (pinned: the key cache
 * never takes their key), and the live blocks (requested size, domain,
 * allocator, alignment and a per-block byte pattern).  Checked after or
 * during every operation:
 *  - results and errno of the defined errors: EINVAL (bad name or flags,
 *    alignment not a power of two), ENAMETOOLONG, ENOTSUP (no keys and no
 *    unprotected:true), EBUSY (destroy of a domain this thread is inside),
 *    EAGAIN (keyheap_domain_pkey of a parked domain when every key is held
 *    by a domain this thread is inside or a pinned one), ENOMEM (huge or
 *    overflowing sizes); errno untouched by a successful create and by
 *    realloc(p, 0);
 *  - keyheap_usable_size >= the requested size (>= 16 in a domain),
 *    alignment, keyheap_domain_of of every block, keyheap_current,
 *    keyheap_domain_name/_pkey (a pinned domain's key stays, keys of
 *    pinned domains differ), keyheap_domain_stats (objects and allocated
 *    exact), keyheap_audit finding nothing;
 *  - the key cache (KEYHEAP_CONF keys:<n>; run with keys:2 as well): a
 *    domain this thread is inside or a pinned one is resident (its handle
 *    says KEYHEAP_ABI_LIVE), no more domains are resident than keyheap can
 *    hold keys, and blocks of parked domains keep their contents (a
 *    content check enters the block's domain, which makes it resident);
 *  - contents: calloc'd bytes are zero, every block keeps its pattern until
 *    it is freed, realloc keeps the common prefix.
 * Sequences the API defines as fatal (a leave that does not match, more
 * than KEYHEAP_MAX_DEPTH enters, any use of a destroyed domain, double or
 * foreign frees, a KEYHEAP_STRICT block freed from outside, and making a
 * parked domain resident while every key is held by a domain this thread
 * is inside or a pinned one: entering it, calloc or realloc in it, a
 * scrubbing free of its block) are never executed: the model picks only
 * live handles and blocks and skips what would abort.  Every input ends
 * with everything left, freed and destroyed, so inputs are independent.
 *
 * The plain malloc family is exercised as well: where libkeyheap replaces
 * it, inside a domain it must land in the domain; in a build configured
 * with --disable-malloc-replacement (the fuzz and sanitizer builds), where
 * it is the C library's or AddressSanitizer's, it must never land in one.
 *
 * Content checks need the block's domain open: the target enters it for the
 * check (one more frame; skipped at the depth limit).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <keyheap.h>

#define MAX_DOMAINS 16
#define MAX_BLOCKS 64
#define DOMAIN_GRANULE 16

/* Any failed check ends the process: libFuzzer reports it as a crash. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_failed(__LINE__, #cond);                                                         \
    } while (0)
static void check_failed(int line, const char *what) __attribute__((noreturn, cold));

/* The flags keyheap_domain_create knows; those whose allocations may fail
 * with ENOMEM past RLIMIT_MEMLOCK. */
#define KNOWN_FLAGS                                                                                \
    (KEYHEAP_NOSCRUB | KEYHEAP_MLOCK | KEYHEAP_WIPEONFORK | KEYHEAP_STRICT | KEYHEAP_SECRETMEM)
#define LOCKED_FLAGS (KEYHEAP_MLOCK | KEYHEAP_SECRETMEM)

struct mdomain {
    keyheap_domain_t *h; /* NULL: this model slot is free */
    unsigned flags;
    int pinned; /* keyheap_domain_pkey gave out its key, pkey: it keeps it */
    int pkey;
    char name[KEYHEAP_NAME_MAX + 1];
};

enum kind { KH, LIBC };

struct mblock {
    unsigned char *p; /* NULL: free model slot */
    size_t size;      /* requested */
    int dom;          /* model domain index, -1: not in a domain */
    enum kind kind;   /* KH: keyheap_*; LIBC: the plain malloc family */
    size_t align;     /* asked alignment, 0: none */
    unsigned seed;
    int known; /* 1: contents are the pattern; 2: zeros; 0: unknown */
};

struct frame {
    int dom;
    int ro;
};

static struct mdomain doms[MAX_DOMAINS];
static struct mblock blocks[MAX_BLOCKS];
static struct frame stack[KEYHEAP_MAX_DEPTH];
static unsigned depth;
static unsigned seeds;

/* What the process offers, found once. */
static int mode_pku;          /* domains have hardware keys */
static int mode_enotsup;      /* domain_create fails with ENOTSUP */
static unsigned key_capacity; /* keys keyheap can hold (PKU mode): at most
                                 KEYHEAP_CONF keys:<n>, fewer only where the
                                 kernel has no more */
static int malloc_is_keyheap; /* the plain malloc family is keyheap's */

struct input {
    const uint8_t *p;
    size_t n, i;
};

static unsigned byte(struct input *in)
{
    return in->i < in->n ? in->p[in->i++] : 0;
}

static int more(const struct input *in)
{
    return in->i < in->n;
}

/* The plain malloc family through pointers the compiler cannot see
 * through: clang treats malloc and calloc as touching no memory of the
 * program's, and then moves a load of errno from after the call to before
 * it (errno came out 0 instead of ENOMEM). */
static void *(*volatile plain_malloc)(size_t) = malloc;
static void *(*volatile plain_calloc)(size_t, size_t) = calloc;
static void *(*volatile plain_realloc)(void *, size_t) = realloc;
static void *(*volatile plain_reallocarray)(void *, size_t, size_t) = reallocarray;
static int (*volatile plain_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile plain_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile plain_memalign)(size_t, size_t) = memalign;
static void *(*volatile plain_valloc)(size_t) = valloc;
static void *(*volatile plain_pvalloc)(size_t) = pvalloc;
static char *(*volatile plain_strdup)(const char *) = strdup;
static void (*volatile plain_free)(void *) = free;
static size_t (*volatile plain_usable_size)(void *) = malloc_usable_size;

/* Leaves every domain this thread entered before it aborts: libFuzzer's
 * crash handler allocates (where keyheap owns malloc, in this thread's
 * malloc target) and writes the input out, which inside a domain would
 * fault, with every domain closed in the handler, and lose the input. */
static void check_failed(int line, const char *what)
{
    fprintf(stderr, "fuzz/api.c:%d: check failed: %s\n", line, what);
    while (depth > 0)
        keyheap_leave(doms[stack[--depth].dom].h);
    abort();
}

/* ------------------------------------------------------------ model */

static int current(void)
{
    for (unsigned i = depth; i-- > 0;)
        if (!stack[i].ro)
            return stack[i].dom;
    return -1;
}

static keyheap_domain_t *handle(int dom)
{
    return dom < 0 ? NULL : doms[dom].h;
}

static int live_domains(void)
{
    int n = 0;
    for (int i = 0; i < MAX_DOMAINS; i++)
        n += doms[i].h != NULL;
    return n;
}

/* The sel-th live domain (mod their number, plus one for "none": -1). */
static int pick_domain(unsigned sel)
{
    int n = live_domains();
    if (n == 0)
        return -1;
    sel %= (unsigned)n + 1;
    for (int i = 0; i < MAX_DOMAINS; i++)
        if (doms[i].h != NULL && sel-- == 0)
            return i;
    return -1;
}

static int pick_block(unsigned sel)
{
    int n = 0;
    for (int i = 0; i < MAX_BLOCKS; i++)
        n += blocks[i].p != NULL;
    if (n == 0)
        return -1;
    sel %= (unsigned)n;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p != NULL && sel-- == 0)
            return i;
    return -1;
}

static int free_block_slot(void)
{
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p == NULL)
            return i;
    return -1;
}

static int frames_of(int dom, int rw_only)
{
    int n = 0;
    for (unsigned i = 0; i < depth; i++)
        n += stack[i].dom == dom && (!rw_only || !stack[i].ro);
    return n;
}

/* ------------------------------------------------------- key cache */

/* Whether dom surely holds a key: this thread is inside it, or its key
 * was given out.  The key cache takes a key from neither. */
static int held(int dom)
{
    return doms[dom].pinned || frames_of(dom, 0) > 0;
}

static unsigned holders(void)
{
    unsigned n = 0;
    for (int i = 0; i < MAX_DOMAINS; i++)
        n += doms[i].h != NULL && held(i);
    return n;
}

/* Whether this thread may make dom resident (enter it, calloc or realloc
 * in it, free a block of it with scrubbing): it is resident for sure, or
 * some key is not held by a domain this thread is inside or a pinned one
 * (a spare key, a fresh one, or one to evict).  Otherwise keyheap aborts:
 * this thread would nest more domains than keyheap has keys. */
static int can_hold(int dom)
{
    return !mode_pku || dom < 0 || held(dom) || holders() < key_capacity;
}

/* Whether a free of a block of dom writes it (scrubbing): that needs the
 * key. */
static int free_needs_key(int dom)
{
    return dom >= 0 && !(doms[dom].flags & KEYHEAP_NOSCRUB);
}

/* The domain's state as its handle says it (the ABI of the inline enter). */
static unsigned abi_live(int dom)
{
    return ((const struct keyheap_abi_domain *)(const void *)doms[dom].h)->live;
}

/* Block contents: byte i of a block with seed s is patterns[s % PERIOD +
 * i % CHUNK] (never 0), written and compared a chunk at a time with
 * memcpy/memcmp: byte loops here would cost more than keyheap's calls under
 * the fuzzer's comparison tracing. */
#define PERIOD 251u
#define CHUNK (PERIOD * 261u) /* 65511: a whole number of periods */
static unsigned char patterns[PERIOD + CHUNK];
static unsigned char zeros[CHUNK];

static void make_patterns(void)
{
    for (size_t j = 0; j < sizeof patterns; j++)
        patterns[j] = (unsigned char)((j % PERIOD) * 7u % 255u + 1u);
}

/* Sizes: small, up to 1 KiB, around jemalloc's 14 KiB large threshold,
 * large (guarded in a domain), and huge (must fail with ENOMEM). */
static size_t pick_size(unsigned s, int *huge)
{
    static const size_t huges[] = {
        SIZE_MAX,        SIZE_MAX - 4095, SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)PTRDIFF_MAX,
        (size_t)1 << 47, SIZE_MAX - 15,   (size_t)1 << 50,
    };
    unsigned v = s & 63;
    *huge = 0;
    switch (s >> 6) {
    case 0:
        return v;
    case 1:
        return 64 + (size_t)v * 16 + (v & 7);
    case 2:
        return 12288 + (size_t)v * 64 + (v & 1);
    default:
        if (v < 56)
            return (size_t)v * 4096 + (v & 3) * 1000 + 1;
        *huge = 1;
        return huges[v - 56];
    }
}

/* ----------------------------------------------------- open and check */

/* Opens dom for this thread's own accesses: returns 1 when it entered (the
 * caller leaves with close_dom), 0 when nothing needed opening, -1 when the
 * depth limit forbids it. */
static int open_dom(int dom)
{
    if (dom < 0)
        return 0;
    if (depth >= KEYHEAP_MAX_DEPTH || !can_hold(dom))
        return -1;
    keyheap_enter(doms[dom].h);
    stack[depth++] = (struct frame){dom, 0};
    return 1;
}

static void close_dom(int dom, int opened)
{
    if (opened == 1) {
        keyheap_leave(doms[dom].h);
        depth--;
    }
}

static size_t usable(const struct mblock *b)
{
    if (b->kind == LIBC && !malloc_is_keyheap)
        return plain_usable_size(b->p);
    return keyheap_usable_size(b->p);
}

static void check_block_meta(const struct mblock *b)
{
    CHECK(keyheap_domain_of(b->p) == handle(b->dom));
    size_t u = usable(b);
    CHECK(u >= b->size);
    if (b->dom >= 0)
        CHECK(u >= DOMAIN_GRANULE);
    if (b->align > 1)
        CHECK(((uintptr_t)b->p & (b->align - 1)) == 0);
}

static void check_contents(const struct mblock *b)
{
    if (b->known == 0)
        return;
    int o = open_dom(b->dom);
    if (o >= 0) {
        const unsigned char *want = b->known == 2 ? zeros : patterns + b->seed % PERIOD;
        for (size_t off = 0; off < b->size; off += CHUNK) {
            size_t n = b->size - off < CHUNK ? b->size - off : CHUNK;
            CHECK(memcmp(b->p + off, want, n) == 0);
        }
        close_dom(b->dom, o);
    }
}

static void fill(struct mblock *b)
{
    int o = open_dom(b->dom);
    if (o < 0) {
        b->known = 0;
        return;
    }
    b->seed = ++seeds;
    for (size_t off = 0; off < b->size; off += CHUNK) {
        size_t n = b->size - off < CHUNK ? b->size - off : CHUNK;
        memcpy(b->p + off, patterns + b->seed % PERIOD, n);
    }
    b->known = 1;
    close_dom(b->dom, o);
}

static void check_state(void)
{
    CHECK(keyheap_current() == handle(current()));
    unsigned resident = 0;
    for (int i = 0; i < MAX_DOMAINS; i++) {
        if (doms[i].h == NULL)
            continue;
        CHECK(strcmp(keyheap_domain_name(doms[i].h), doms[i].name) == 0);
        unsigned live = abi_live(i);
        CHECK(live == KEYHEAP_ABI_LIVE || (mode_pku && live == KEYHEAP_ABI_PARKED));
        resident += live == KEYHEAP_ABI_LIVE;
        if (mode_pku && held(i))
            CHECK(live == KEYHEAP_ABI_LIVE);
        /* keyheap_domain_pkey pins a domain: only where it already is. */
        if (!mode_pku)
            CHECK(keyheap_domain_pkey(doms[i].h) == -1);
        else if (doms[i].pinned)
            CHECK(keyheap_domain_pkey(doms[i].h) == doms[i].pkey);
    }
    if (mode_pku) {
        CHECK(holders() <= key_capacity);
        CHECK(resident <= key_capacity);
    }
}

static void check_stats(int dom)
{
    struct keyheap_stats st;
    CHECK(keyheap_domain_stats(doms[dom].h, &st) == 0);
    size_t objects = 0, allocated = 0;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p != NULL && blocks[i].dom == dom) {
            objects++;
            allocated += usable(&blocks[i]);
        }
    CHECK(st.objects == objects);
    CHECK(st.allocated == allocated);
    CHECK(st.committed >= st.allocated);
    CHECK(st.peak >= st.committed);
    CHECK(st.locked == ((doms[dom].flags & LOCKED_FLAGS) ? st.committed : 0));
    errno = 0;
    CHECK(keyheap_domain_stats(doms[dom].h, NULL) == -1 && errno == EINVAL);
}

/* ------------------------------------------------------- operations */

/* A new block p (or a failure) of size in domain dom. */
static void record(unsigned char *p, size_t size, int dom, enum kind kind, size_t align, int zero,
                   int huge, int err)
{
    if (huge || p == NULL) {
        /* Huge sizes must fail; so may an allocation in a KEYHEAP_MLOCK
         * or KEYHEAP_SECRETMEM domain past RLIMIT_MEMLOCK; nothing else
         * may. */
        CHECK(p == NULL);
        CHECK(err == ENOMEM);
        CHECK(huge || (dom >= 0 && (doms[dom].flags & LOCKED_FLAGS)));
        return;
    }
    int slot = free_block_slot();
    CHECK(slot >= 0);
    struct mblock *b = &blocks[slot];
    *b = (struct mblock){p, size, dom, kind, align, 0, zero ? 2 : 0};
    check_block_meta(b);
    check_contents(b);
    fill(b);
}

static void op_create(struct input *in)
{
    unsigned sel = byte(in), flags = byte(in) & 0x3f;
    char name[80];
    const char *arg = name;
    switch (sel % 8) {
    case 0:
        arg = NULL;
        break;
    case 1:
        name[0] = '\0';
        break;
    case 2:
        memset(name, 'x', KEYHEAP_NAME_MAX + 1);
        name[KEYHEAP_NAME_MAX + 1] = '\0';
        break;
    case 3:
        memset(name, 'y', KEYHEAP_NAME_MAX);
        name[KEYHEAP_NAME_MAX] = '\0';
        break;
    default:
        /* Any bytes but NUL, quotes included, from the input. */
        snprintf(name, sizeof name, "d%u%c", sel, (char)(byte(in) | 1));
        break;
    }
    int slot = -1;
    for (int i = 0; i < MAX_DOMAINS && slot < 0; i++)
        if (doms[i].h == NULL)
            slot = i;
    size_t len = arg ? strlen(arg) : 0;
    int want;
    if (arg == NULL || len == 0 || (flags & ~KNOWN_FLAGS))
        want = EINVAL;
    else if (len > KEYHEAP_NAME_MAX)
        want = ENAMETOOLONG;
    else if (mode_enotsup)
        want = ENOTSUP;
    else if (slot < 0)
        return; /* the model is full: skip */
    else
        want = 0; /* no ENOSPC: 16 live domains are far from keyheap's slots,
                     and a domain without a key of its own starts parked */
    errno = 4242;
    keyheap_domain_t *d = keyheap_domain_create(arg, flags);
    if (want == 0 && d == NULL && (flags & KEYHEAP_SECRETMEM) && errno == ENOSYS)
        return; /* a kernel without memfd_secret: defined, and nothing made */
    if (want) {
        CHECK(d == NULL);
        CHECK(errno == want);
        return;
    }
    CHECK(d != NULL);
    CHECK(errno == 4242);
    for (int i = 0; i < MAX_DOMAINS; i++)
        CHECK(doms[i].h != d);
    doms[slot] = (struct mdomain){.h = d, .flags = flags};
    snprintf(doms[slot].name, sizeof doms[slot].name, "%s", arg);
}

static void free_blocks_of(int dom);

static void op_destroy(struct input *in)
{
    int dom = pick_domain(byte(in));
    if (dom < 0)
        return;
    if (frames_of(dom, 0) > 0) {
        errno = 0;
        CHECK(keyheap_domain_destroy(doms[dom].h) == -1);
        CHECK(errno == EBUSY);
        return;
    }
    /* Blocks of a destroyed domain are dangling: the model forgets them
     * (after checking them), or frees some first. */
    if (byte(in) & 1)
        free_blocks_of(dom);
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p != NULL && blocks[i].dom == dom) {
            check_contents(&blocks[i]);
            blocks[i].p = NULL;
        }
    CHECK(keyheap_domain_destroy(doms[dom].h) == 0);
    doms[dom].h = NULL;
    doms[dom].pinned = 0;
}

static void op_enter(struct input *in, int ro)
{
    int dom = pick_domain(byte(in));
    if (dom < 0 || depth >= KEYHEAP_MAX_DEPTH || !can_hold(dom))
        return;
    if (ro)
        keyheap_enter_ro(doms[dom].h);
    else
        keyheap_enter(doms[dom].h);
    stack[depth++] = (struct frame){dom, ro};
    CHECK(abi_live(dom) == KEYHEAP_ABI_LIVE);
}

/* keyheap_domain_pkey: the key, and the domain keeps it until destroyed;
 * or EAGAIN when every key is held by a domain this thread is inside or a
 * pinned one (the domain is parked then). */
static void op_pkey(struct input *in)
{
    int dom = pick_domain(byte(in));
    if (dom < 0)
        return;
    int can = can_hold(dom);
    errno = 0;
    int k = keyheap_domain_pkey(doms[dom].h);
    if (!mode_pku) {
        CHECK(k == -1);
        return;
    }
    if (!can) {
        CHECK(k == -1 && errno == EAGAIN);
        CHECK(abi_live(dom) == KEYHEAP_ABI_PARKED);
        return;
    }
    CHECK(k >= 1 && k <= 15);
    CHECK(abi_live(dom) == KEYHEAP_ABI_LIVE);
    if (doms[dom].pinned)
        CHECK(k == doms[dom].pkey);
    for (int i = 0; i < MAX_DOMAINS; i++)
        if (i != dom && doms[i].h != NULL && doms[i].pinned)
            CHECK(doms[i].pkey != k);
    doms[dom].pinned = 1;
    doms[dom].pkey = k;
}

static void op_leave(void)
{
    if (depth == 0)
        return;
    keyheap_leave(doms[stack[depth - 1].dom].h);
    depth--;
}

static void op_kh_alloc(struct input *in, unsigned which)
{
    int dom = pick_domain(byte(in));
    int huge;
    size_t size = pick_size(byte(in), &huge);
    unsigned char *p;
    size_t align = 0;
    errno = 0;
    if (free_block_slot() < 0)
        return;
    /* A KEYHEAP_MLOCK domain locks what it commits, which needs its key. */
    if (dom >= 0 && (doms[dom].flags & KEYHEAP_MLOCK) && !can_hold(dom))
        return;
    switch (which) {
    case 0:
        p = keyheap_malloc(handle(dom), size);
        break;
    case 1: {
        size_t n = byte(in), m = size;
        if (huge) /* n * m overflows, or is huge */
            n = n | 2;
        else if (n > 16)
            n = 16;
        size_t total;
        int over = __builtin_mul_overflow(n, m, &total);
        if (!can_hold(dom))
            return; /* calloc zeroes: it needs the key */
        p = keyheap_calloc(handle(dom), n, m);
        record(p, over ? 0 : total, dom, KH, 0, 1, huge || over, errno);
        return;
    }
    default: {
        unsigned a = byte(in);
        align = (a & 0x80) ? (size_t)(a & 0x7f) : (size_t)1 << (a % 17);
        p = keyheap_aligned_alloc(handle(dom), align, size);
        if (align == 0 || (align & (align - 1))) {
            CHECK(p == NULL && errno == EINVAL);
            return;
        }
        break;
    }
    }
    record(p, size, dom, KH, align, 0, huge, errno);
}

/* Frees block i, with keyheap_free or free; from inside its domain or
 * from outside, except where KEYHEAP_STRICT makes that fatal. */
static void free_block(int i, unsigned how)
{
    struct mblock *b = &blocks[i];
    check_block_meta(b);
    check_contents(b);
    if (free_needs_key(b->dom) && !can_hold(b->dom))
        return; /* keep it for later or the final cleanup */
    int inside = (how & 1) || (b->dom >= 0 && (doms[b->dom].flags & KEYHEAP_STRICT) &&
                               frames_of(b->dom, 1) == 0);
    int o = inside ? open_dom(b->dom) : 0;
    if (o < 0)
        return; /* cannot enter: keep it for the final cleanup */
    if (b->kind == LIBC || (malloc_is_keyheap && (how & 2)))
        plain_free(b->p);
    else
        keyheap_free(b->p);
    close_dom(b->dom, o);
    b->p = NULL;
}

static void free_blocks_of(int dom)
{
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p != NULL && blocks[i].dom == dom)
            free_block(i, 1);
}

static void op_free(struct input *in)
{
    int i = pick_block(byte(in));
    if (i >= 0)
        free_block(i, byte(in));
}

/* keyheap_realloc (or the plain realloc/reallocarray of a keyheap block
 * where keyheap owns them). */
static void op_realloc(struct input *in, int plain)
{
    unsigned sel = byte(in);
    int huge;
    size_t size = pick_size(byte(in), &huge);
    if (plain && !malloc_is_keyheap)
        return;
    if (sel == 0xff) {
        /* realloc(NULL, n): malloc in this thread's target. */
        if (free_block_slot() < 0)
            return;
        errno = 0;
        unsigned char *p = plain ? plain_realloc(NULL, size) : keyheap_realloc(NULL, size);
        record(p, size, current(), plain ? LIBC : KH, 0, 0, huge, errno);
        return;
    }
    int i = pick_block(sel);
    if (i < 0)
        return;
    struct mblock *b = &blocks[i];
    if (b->kind == LIBC && !malloc_is_keyheap)
        return;
    check_contents(b);
    /* realloc copies, a realloc to 0 frees: with the key. */
    if ((size != 0 || free_needs_key(b->dom)) && !can_hold(b->dom))
        return;
    if (size == 0) {
        /* Frees, returns NULL, errno untouched: a free, so KEYHEAP_STRICT
         * needs the domain open. */
        int o = (b->dom >= 0 && (doms[b->dom].flags & KEYHEAP_STRICT) && frames_of(b->dom, 1) == 0)
                    ? open_dom(b->dom)
                    : 0;
        if (o < 0)
            return;
        errno = 4242;
        void *q = plain ? plain_realloc(b->p, 0) : keyheap_realloc(b->p, 0);
        CHECK(q == NULL && errno == 4242);
        close_dom(b->dom, o);
        b->p = NULL;
        return;
    }
    errno = 0;
    unsigned char *q;
    if (plain && (sel & 1)) {
        /* reallocarray(p, n, m) with n * m = size, or overflowing. */
        size_t n = huge ? SIZE_MAX / 3 : 1, m = huge ? 5 : size;
        q = plain_reallocarray(b->p, n, m);
    } else {
        q = plain ? plain_realloc(b->p, size) : keyheap_realloc(b->p, size);
    }
    int err = errno;
    if (q == NULL) {
        CHECK(err == ENOMEM);
        CHECK(huge || (b->dom >= 0 && (doms[b->dom].flags & LOCKED_FLAGS)));
        check_block_meta(b);
        check_contents(b);
        return;
    }
    CHECK(!huge);
    size_t keep = b->size < size ? b->size : size;
    b->p = q;
    b->size = keep;
    b->align = 0;
    check_contents(b); /* the common prefix survived */
    b->size = size;
    check_block_meta(b);
    fill(b);
}

/* The plain malloc family, in this thread's malloc target where keyheap
 * owns it, never in a domain where it does not. */
static void op_plain_alloc(struct input *in)
{
    unsigned which = byte(in) % 10;
    int huge;
    size_t size = pick_size(byte(in), &huge);
    unsigned a = byte(in);
    int target = malloc_is_keyheap ? current() : -1;
    if (free_block_slot() < 0)
        return;
    if (!malloc_is_keyheap) {
        /* AddressSanitizer's or the C library's: only valid requests (a
         * sanitizer reports bad ones), and never in a domain. */
        if (huge)
            return;
        which %= 3;
    }
    unsigned char *p = NULL;
    size_t align = 0;
    errno = 0;
    switch (which) {
    case 0:
        p = plain_malloc(size);
        break;
    case 1: {
        size_t n = huge ? (SIZE_MAX / 2) : 3;
        size_t total;
        int over = __builtin_mul_overflow(n, size ? size : 1, &total);
        p = plain_calloc(n, size ? size : 1);
        record(p, over ? 0 : total, target, LIBC, 0, 1, huge || over, errno);
        return;
    }
    case 2: {
        /* strdup of a string of size bytes (at most 4 KiB). */
        if (huge)
            return;
        size_t n = size > 4096 ? 4096 : size;
        char *s = keyheap_malloc(NULL, n + 1);
        CHECK(s != NULL);
        memset(s, 'a' + (int)(n % 26), n);
        s[n] = '\0';
        p = (unsigned char *)plain_strdup(s);
        keyheap_free(s);
        CHECK(p != NULL);
        CHECK(keyheap_domain_of(p) == handle(target));
        int slot = free_block_slot();
        blocks[slot] = (struct mblock){p, n + 1, target, LIBC, 0, 0, 0};
        check_block_meta(&blocks[slot]);
        fill(&blocks[slot]);
        return;
    }
    case 3: {
        align = (a & 0x80) ? (size_t)(a & 0x7f) : (size_t)1 << (a % 17);
        void *out = (void *)&p;
        int bad = align < sizeof(void *) || (align & (align - 1));
        errno = 4242;
        int rc = plain_posix_memalign(out, align, size);
        CHECK(errno == 4242);
        if (bad) {
            CHECK(rc == EINVAL);
            return;
        }
        if (rc != 0) {
            CHECK(rc == ENOMEM && p == NULL);
            record(NULL, size, target, LIBC, align, 0, huge, ENOMEM);
            return;
        }
        break;
    }
    case 4:
        align = (a & 0x80) ? (size_t)(a & 0x7f) : (size_t)1 << (a % 17);
        p = plain_aligned_alloc(align, size);
        if (align == 0 || (align & (align - 1))) {
            CHECK(p == NULL && errno == EINVAL);
            return;
        }
        break;
    case 5: {
        align = (a & 0x80) ? (size_t)(a & 0x7f) + 1 : (size_t)1 << (a % 17);
        p = plain_memalign(align, size);
        size_t want = 1;
        while (want < align)
            want <<= 1;
        align = want;
        break;
    }
    case 6:
        p = plain_valloc(size);
        align = 4096;
        break;
    case 7:
        p = plain_pvalloc(size);
        align = 4096;
        if (p != NULL)
            CHECK(keyheap_usable_size(p) >= 4096);
        break;
    default:
        p = plain_malloc(size);
        break;
    }
    record(p, size, target, LIBC, align, 0, huge, errno);
}

static void op_inspect(struct input *in)
{
    int i = pick_block(byte(in));
    if (i >= 0) {
        check_block_meta(&blocks[i]);
        check_contents(&blocks[i]);
    }
    int local;
    CHECK(keyheap_domain_of(&local) == NULL);
    CHECK(keyheap_domain_of(NULL) == NULL);
    CHECK(keyheap_usable_size(NULL) == 0);
    check_state();
}

static void op_audit(struct input *in)
{
    /* No code but keyheap's changes PKRU here: nothing to find. */
    CHECK(keyheap_audit(byte(in) & KEYHEAP_AUDIT_REPAIR) == 0);
}

static void op_stats(struct input *in)
{
    int dom = pick_domain(byte(in));
    if (dom >= 0)
        check_stats(dom);
}

/* ------------------------------------------------------------ driver */

/* KEYHEAP_CONF's keys:<n> (1..15, the last valid one), or 15. */
static unsigned conf_keys(void)
{
    const char *s = getenv("KEYHEAP_CONF");
    unsigned keys = 15;
    while (s != NULL && *s != '\0') {
        const char *end = strchr(s, ',');
        size_t len = end != NULL ? (size_t)(end - s) : strlen(s), i = 5;
        if (len > 5 && memcmp(s, "keys:", 5) == 0) {
            unsigned v = 0;
            for (; i < len && s[i] >= '0' && s[i] <= '9' && v <= 15; i++)
                v = v * 10 + (unsigned)(s[i] - '0');
            if (i == len && v >= 1 && v <= 15)
                keys = v;
        }
        s = end != NULL ? end + 1 : NULL;
    }
    return keys;
}

static void probe(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    make_patterns();
    void *m = dlsym(RTLD_DEFAULT, "malloc"), *k = dlsym(RTLD_DEFAULT, "keyheap_malloc");
    Dl_info mi, ki;
    malloc_is_keyheap = m != NULL && k != NULL && dladdr(m, &mi) && dladdr(k, &ki) &&
                        strcmp(mi.dli_fname, ki.dli_fname) == 0;
    mode_pku = keyheap_pku_supported();
    errno = 0;
    keyheap_domain_t *d = keyheap_domain_create("probe", 0);
    if (d == NULL) {
        CHECK(errno == ENOTSUP);
        mode_enotsup = 1;
        return;
    }
    CHECK(keyheap_domain_destroy(d) == 0);
    if (!mode_pku)
        return;
    /* How many keys keyheap can hold: 16 domains (more than keys, so some
     * start parked), and keyheap_domain_pkey pins one after the other until
     * every key is given out; the rest get EAGAIN. */
    keyheap_domain_t *all[16];
    unsigned n = 0, seen = 0;
    for (unsigned i = 0; i < 16; i++)
        CHECK((all[i] = keyheap_domain_create("probe", 0)) != NULL);
    for (unsigned i = 0; i < 16; i++) {
        errno = 0;
        int key = keyheap_domain_pkey(all[i]);
        if (key == -1) {
            CHECK(errno == EAGAIN);
            continue;
        }
        CHECK(n == i && key >= 1 && key <= 15 && !(seen & (1u << key)));
        seen |= 1u << key;
        n++;
    }
    unsigned cap = conf_keys();
    CHECK(n >= 1 && n <= cap);
    if (n < cap) {
        /* Fewer than keys:<n> only when the kernel has none left. */
        int spare = pkey_alloc(0, 0);
        if (spare >= 0)
            pkey_free(spare);
        CHECK(spare < 0);
    }
    key_capacity = n;
    fprintf(stderr, "fuzz/api.c: keyheap can hold %u protection key(s) (KEYHEAP_CONF keys:%u)\n", n,
            cap);
    for (unsigned i = 0; i < 16; i++)
        CHECK(keyheap_domain_destroy(all[i]) == 0);
}

static void cleanup(void)
{
    while (depth > 0)
        op_leave();
    /* Blocks outside domains and in pinned ones first, then the pinned
     * domains go, so that every other domain can get a key to be entered
     * (its blocks checked and freed). */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < MAX_BLOCKS; i++)
            if (blocks[i].p != NULL && (pass == 1 || blocks[i].dom < 0 || held(blocks[i].dom))) {
                free_block(i, 1);
                CHECK(blocks[i].p == NULL);
            }
        for (int i = 0; i < MAX_DOMAINS && pass == 0; i++)
            if (doms[i].h != NULL && doms[i].pinned) {
                CHECK(keyheap_domain_destroy(doms[i].h) == 0);
                doms[i].h = NULL;
                doms[i].pinned = 0;
            }
    }
    for (int i = 0; i < MAX_DOMAINS; i++)
        if (doms[i].h != NULL) {
            CHECK(keyheap_domain_destroy(doms[i].h) == 0);
            doms[i].h = NULL;
        }
    CHECK(keyheap_current() == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    probe();
    struct input in = {data, size, 0};
    /* Bounded work per input. */
    for (unsigned ops = 0; more(&in) && ops < 512; ops++) {
        unsigned op = byte(&in);
        switch (op % 16) {
        case 0:
            op_create(&in);
            break;
        case 1:
            op_destroy(&in);
            break;
        case 2:
            op_enter(&in, 0);
            break;
        case 3:
            op_enter(&in, 1);
            break;
        case 4:
            op_leave();
            break;
        case 5:
        case 6:
        case 7:
            op_kh_alloc(&in, op % 16 - 5);
            break;
        case 8:
            op_realloc(&in, 0);
            break;
        case 9:
            op_free(&in);
            break;
        case 10:
            op_plain_alloc(&in);
            break;
        case 11:
            op_realloc(&in, 1);
            break;
        case 12:
            op_inspect(&in);
            break;
        case 13:
            op_audit(&in);
            break;
        case 14:
            op_stats(&in);
            break;
        default:
            /* Rarely keyheap_domain_pkey: a pinned domain holds a key for
             * good, and with keys:2 two of them leave none to enter others. */
            if (op >= 0xc0)
                op_pkey(&in);
            else
                check_state();
            break;
        }
        CHECK(keyheap_current() == handle(current()));
    }
    cleanup();
    return 0;
}
