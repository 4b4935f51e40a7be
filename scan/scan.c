/* scan/scan.c - the scanner core (see scan.h).  No malloc, no stdio: it
 * runs inside keyheap, which is malloc. */
#include "scan/scan.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "scan/decode.h"

const char khi_scan_blind[] =
    "not seen: code made at run time (JIT: anonymous or writable executable mappings, not "
    "scanned), code loaded after the scan, sigreturn frames (a forged signal frame loads any "
    "PKRU through the kernel's XRSTOR), ptrace, and the kernel paths that read and write "
    "memory whatever PKRU says (/proc/PID/mem, process_vm_readv/writev, ptrace; closed for "
    "KEYHEAP_SECRETMEM domains)";

/* ------------------------------------------------------------ memory */

static void *map_anon(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void unmap(void *p, size_t n)
{
    if (p != NULL)
        munmap(p, n ? n : 1);
}

/* ------------------------------------------------------------ sorting */

struct sym {
    uint64_t start, size;
    const char *name;
    unsigned global;
};

static int sym_before(const struct sym *a, const struct sym *b)
{
    if (a->start != b->start)
        return a->start < b->start;
    if (a->global != b->global)
        return a->global > b->global; /* at one address the global name first */
    return strcmp(a->name, b->name) < 0;
}

/* Heapsort (no malloc: glibc's qsort may allocate). */
#define HEAPSORT(NAME, T, LESS)                                                                 \
    static void NAME##_sift(T *a, size_t i, size_t n)                                           \
    {                                                                                           \
        for (;;) {                                                                              \
            size_t c = 2 * i + 1;                                                               \
            if (c >= n)                                                                         \
                return;                                                                         \
            if (c + 1 < n && LESS(&a[c], &a[c + 1]))                                            \
                c++;                                                                            \
            if (!LESS(&a[i], &a[c]))                                                            \
                return;                                                                         \
            T t = a[i];                                                                         \
            a[i] = a[c];                                                                        \
            a[c] = t;                                                                           \
            i = c;                                                                              \
        }                                                                                       \
    }                                                                                           \
    static void NAME(T *a, size_t n)                                                            \
    {                                                                                           \
        for (size_t k = n / 2; k-- > 0;)                                                        \
            NAME##_sift(a, k, n);                                                               \
        for (size_t end = n; end > 1;) {                                                        \
            end--;                                                                              \
            T t = a[0];                                                                         \
            a[0] = a[end];                                                                      \
            a[end] = t;                                                                         \
            NAME##_sift(a, 0, end);                                                             \
        }                                                                                       \
    }

#define U64_LESS(a, b) (*(a) < *(b))
HEAPSORT(sort_u64, uint64_t, U64_LESS)
HEAPSORT(sort_syms, struct sym, sym_before)

/* Index of the last element <= v in sorted a[0, n), or n when none. */
static size_t last_le_u64(const uint64_t *a, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n; /* first element > v */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? n : lo - 1;
}

/* ------------------------------------------------------------ the image */

/* An executable PT_LOAD segment, checked to be inside the file. */
struct seg {
    uint64_t off, vaddr, filesz;
};

/* The file's headers are copied out with memcpy before use: nothing in an
 * untrusted file is aligned. */
struct image {
    const uint8_t *img;
    size_t size;
    Elf64_Ehdr eh;
    struct seg *segs; /* the executable segments */
    size_t nsegs, segs_bytes;
    struct sym *syms; /* function symbols, sorted; aliases after the first dropped */
    size_t nsyms, syms_bytes;
    uint64_t *own; /* .keyheap_wrpkru, sorted, zeros dropped */
    size_t nown, own_bytes;
    uint64_t *bounds; /* where linear decoding starts, sorted */
    size_t nbounds, bounds_bytes;
};

static int in_image(const struct image *im, uint64_t off, uint64_t len)
{
    return off <= im->size && len <= im->size - off;
}

/* Section header i in *out (the table was checked to be in the file);
 * returns 0, or -1 when there is no such section. */
static int section(const struct image *im, unsigned i, Elf64_Shdr *out)
{
    if (i >= im->eh.e_shnum)
        return -1;
    memcpy(out, im->img + im->eh.e_shoff + (uint64_t)i * sizeof *out, sizeof *out);
    return 0;
}

/* The NUL-terminated string at off in section strndx, or NULL. */
static const char *string_at(const struct image *im, unsigned strndx, uint64_t off)
{
    Elf64_Shdr s;
    if (section(im, strndx, &s) != 0 || s.sh_type == SHT_NOBITS ||
        !in_image(im, s.sh_offset, s.sh_size) || off >= s.sh_size)
        return NULL;
    const char *p = (const char *)im->img + s.sh_offset + off;
    return memchr(p, 0, s.sh_size - off) != NULL ? p : NULL;
}

static int exec_vaddr(const struct image *im, uint64_t v)
{
    for (size_t i = 0; i < im->nsegs; i++)
        if (v >= im->segs[i].vaddr && v - im->segs[i].vaddr < im->segs[i].filesz)
            return 1;
    return 0;
}

/* Function symbols of .symtab (else .dynsym), and the .keyheap_wrpkru table. */
static int load_tables(struct image *im, const char **err)
{
    const Elf64_Ehdr *eh = &im->eh;
    if (eh->e_shnum == 0 || eh->e_shoff == 0)
        return 0; /* no sections: segments only */
    if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
        !in_image(im, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr))) {
        *err = "section headers out of the file";
        return -1;
    }
    Elf64_Shdr tabh, *tab = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        Elf64_Shdr sh, *s = &sh;
        section(im, i, &sh);
        if (s->sh_type == SHT_SYMTAB || (s->sh_type == SHT_DYNSYM &&
                                         (tab == NULL || tab->sh_type != SHT_SYMTAB))) {
            tabh = sh;
            tab = &tabh;
        }
        const char *name = string_at(im, eh->e_shstrndx, s->sh_name);
        if (name != NULL && strcmp(name, ".keyheap_wrpkru") == 0 && s->sh_type != SHT_NOBITS &&
            in_image(im, s->sh_offset, s->sh_size) && im->own == NULL) {
            size_t n = s->sh_size / 8;
            im->own_bytes = n * 8;
            if ((im->own = map_anon(im->own_bytes)) == NULL) {
                *err = "out of memory";
                return -1;
            }
            for (size_t k = 0; k < n; k++) {
                uint64_t v;
                memcpy(&v, im->img + s->sh_offset + 8 * k, 8);
                if (v != 0)
                    im->own[im->nown++] = v;
            }
            sort_u64(im->own, im->nown);
        }
    }
    if (tab == NULL || tab->sh_entsize != sizeof(Elf64_Sym) ||
        !in_image(im, tab->sh_offset, tab->sh_size))
        return 0;
    size_t n = tab->sh_size / sizeof(Elf64_Sym);
    im->syms_bytes = n * sizeof(struct sym);
    if ((im->syms = map_anon(im->syms_bytes)) == NULL) {
        *err = "out of memory";
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        Elf64_Sym sym, *s = &sym;
        memcpy(&sym, im->img + tab->sh_offset + k * sizeof(Elf64_Sym), sizeof sym);
        unsigned type = ELF64_ST_TYPE(s->st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
            !exec_vaddr(im, s->st_value))
            continue;
        const char *name = string_at(im, tab->sh_link, s->st_name);
        if (name == NULL || name[0] == 0)
            continue;
        struct sym *d = &im->syms[im->nsyms++];
        d->start = s->st_value;
        d->size = s->st_size;
        d->name = name;
        d->global = ELF64_ST_BIND(s->st_info) != STB_LOCAL;
    }
    sort_syms(im->syms, im->nsyms);
    /* one name per address: the first (global, then by name) */
    size_t w = 0;
    for (size_t k = 0; k < im->nsyms; k++)
        if (w == 0 || im->syms[w - 1].start != im->syms[k].start)
            im->syms[w++] = im->syms[k];
        else if (im->syms[k].size > im->syms[w - 1].size)
            im->syms[w - 1].size = im->syms[k].size;
    im->nsyms = w;
    return 0;
}

/* The symbol that covers v (name and offset), or NULL. */
static const char *covering(const struct image *im, uint64_t v, uint64_t *off)
{
    size_t lo = 0, hi = im->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (im->syms[mid].start <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct sym *s = &im->syms[lo - 1];
    if (s->size != 0 && v - s->start >= s->size)
        return NULL;
    *off = v - s->start;
    return s->name;
}

static int is_own(const struct image *im, uint64_t v)
{
    size_t i = last_le_u64(im->own, im->nown, v);
    return i < im->nown && im->own[i] == v;
}

/* ------------------------------------------------------------ scanning */

/* What begins at p (the 0F of a candidate), or NULL: the hit's name, and
 * *rex set when an XRSTOR's REX byte precedes it. */
static const char *candidate(const uint8_t *b, uint64_t i, uint64_t n, int *rex)
{
    *rex = 0;
    if (b[i] != 0x0f || i + 2 >= n)
        return NULL;
    if (b[i + 1] == 0x01 && b[i + 2] == 0xef)
        return "wrpkru";
    if (b[i + 1] == 0xae && ((b[i + 2] >> 3) & 7) == 5 && (b[i + 2] >> 6) != 3) {
        if (i > 0 && b[i - 1] >= 0x40 && b[i - 1] <= 0x4f) {
            *rex = 1;
            return (b[i - 1] & 8) ? "xrstor64" : "xrstor";
        }
        return "xrstor";
    }
    return NULL;
}

static long scan_segment(struct image *im, const struct seg *sg, uint64_t lo, uint64_t hi,
                         khi_scan_hit_fn *fn, void *arg)
{
    const uint8_t *b = im->img + sg->off;
    uint64_t n = sg->filesz;
    long findings = 0;
    /* decoding restarts at the segment's start and at every function
     * symbol's start and end inside it */
    size_t k0 = 0;
    while (k0 < im->nbounds && im->bounds[k0] <= sg->vaddr)
        k0++;
    uint64_t pos = 0;
    size_t k = k0;
    while (pos < n) {
        uint64_t stop = n;
        while (k < im->nbounds && im->bounds[k] <= sg->vaddr + pos)
            k++;
        if (k < im->nbounds && im->bounds[k] - sg->vaddr < n)
            stop = im->bounds[k] - sg->vaddr;
        while (pos < stop) {
            struct khi_insn insn;
            int ok = khi_decode(b + pos, n - pos, &insn);
            unsigned len = ok ? insn.len : 1;
            /* candidates from here to the next restart (those beyond it are
             * the next stretch's, decoded from there) */
            for (uint64_t i = pos; i < pos + len && i < stop; i++) {
                int rex;
                const char *name = candidate(b, i, n, &rex);
                if (name == NULL)
                    continue;
                uint64_t first = i - (unsigned)rex;
                if (sg->off + first < lo || sg->off + first >= hi)
                    continue;
                struct khi_scan_hit h;
                memset(&h, 0, sizeof h);
                h.name = name;
                h.offset = sg->off + first;
                h.vaddr = sg->vaddr + first;
                h.sym = covering(im, h.vaddr, &h.symoff);
                if (!ok)
                    h.kind = KHI_SCAN_UNDECODED;
                else if (i == pos + insn.opcode)
                    h.kind = KHI_SCAN_INSN;
                else
                    h.kind = KHI_SCAN_EMBEDDED;
                if (h.kind == KHI_SCAN_INSN && name[0] == 'w' && is_own(im, h.vaddr))
                    h.kind = KHI_SCAN_KEYHEAP;
                if (h.kind == KHI_SCAN_EMBEDDED) {
                    h.in_vaddr = sg->vaddr + pos;
                    h.in_sym = covering(im, h.in_vaddr, &h.in_symoff);
                    h.in_len = len;
                    h.in_bytes = b + pos;
                }
                if (h.kind != KHI_SCAN_KEYHEAP)
                    findings++;
                fn(arg, &h);
            }
            pos += len;
        }
        pos = stop; /* an instruction that runs over a restart: decode from it */
    }
    return findings;
}

long khi_scan_elf(const uint8_t *img, size_t size, uint64_t lo, uint64_t hi,
                  khi_scan_hit_fn *fn, void *arg, const char **err)
{
    struct image im;
    memset(&im, 0, sizeof im);
    im.img = img;
    im.size = size;
    if (size < sizeof(Elf64_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0) {
        *err = "not an ELF file";
        return -1;
    }
    memcpy(&im.eh, img, sizeof im.eh);
    const Elf64_Ehdr *eh = &im.eh;
    if (img[EI_CLASS] != ELFCLASS64 || img[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64) {
        *err = "not an x86-64 ELF64 file";
        return -1;
    }
    if (eh->e_phnum != 0 &&
        (eh->e_phentsize != sizeof(Elf64_Phdr) ||
         !in_image(&im, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)))) {
        *err = "program headers out of the file";
        return -1;
    }
    long total = -1;
    im.segs_bytes = (size_t)eh->e_phnum * sizeof *im.segs;
    if ((im.segs = map_anon(im.segs_bytes)) == NULL) {
        *err = "out of memory";
        goto out;
    }
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, img + eh->e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
            continue;
        struct seg sg = {ph.p_offset, ph.p_vaddr, ph.p_filesz};
        if (!in_image(&im, sg.off, sg.filesz)) {
            *err = "an executable segment out of the file";
            goto out;
        }
        im.segs[im.nsegs++] = sg;
    }
    if (load_tables(&im, err) != 0)
        goto out;
    im.bounds_bytes = (2 * im.nsyms + 1) * sizeof(uint64_t);
    if ((im.bounds = map_anon(im.bounds_bytes)) == NULL) {
        *err = "out of memory";
        goto out;
    }
    for (size_t k = 0; k < im.nsyms; k++) {
        im.bounds[im.nbounds++] = im.syms[k].start;
        if (im.syms[k].size != 0 && im.syms[k].start + im.syms[k].size > im.syms[k].start)
            im.bounds[im.nbounds++] = im.syms[k].start + im.syms[k].size;
    }
    sort_u64(im.bounds, im.nbounds);
    total = 0;
    for (size_t i = 0; i < im.nsegs; i++) {
        const struct seg *sg = &im.segs[i];
        if (sg->off >= hi || sg->off + sg->filesz <= lo)
            continue;
        total += scan_segment(&im, sg, lo, hi, fn, arg);
    }
out:
    unmap(im.segs, im.segs_bytes);
    unmap(im.syms, im.syms_bytes);
    unmap(im.own, im.own_bytes);
    unmap(im.bounds, im.bounds_bytes);
    return total;
}

/* ------------------------------------------------------------ formatting */

struct out {
    char *buf;
    size_t n, len;
};

static void put(struct out *o, const char *s)
{
    for (; *s; s++, o->len++)
        if (o->len + 1 < o->n)
            o->buf[o->len] = *s;
}

static void put_hexraw(struct out *o, uint64_t v)
{
    char t[17], *p = t + sizeof t;
    *--p = 0;
    do
        *--p = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    put(o, p);
}

static void put_hex(struct out *o, uint64_t v)
{
    put(o, "0x");
    put_hexraw(o, v);
}

static void put_byte(struct out *o, unsigned v)
{
    char t[3] = {"0123456789abcdef"[v >> 4], "0123456789abcdef"[v & 15], 0};
    put(o, t);
}

static void put_dec(struct out *o, unsigned v)
{
    char t[12], *p = t + sizeof t;
    *--p = 0;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    put(o, p);
}

static void put_sym(struct out *o, const char *sym, uint64_t off)
{
    if (sym == NULL) {
        put(o, "-");
        return;
    }
    put(o, sym);
    put(o, "+");
    put_hex(o, off);
}

size_t khi_scan_format(char *buf, size_t n, const char *path, const struct khi_scan_hit *h,
                       uint64_t vaddr)
{
    struct out o = {buf, n, 0};
    put(&o, path);
    put(&o, ": offset ");
    put_hex(&o, h->offset);
    put(&o, " vaddr ");
    put_hex(&o, vaddr);
    put(&o, " ");
    put_sym(&o, h->sym, h->symoff);
    put(&o, ": ");
    put(&o, h->name);
    switch (h->kind) {
    case KHI_SCAN_INSN:
        put(&o, " instruction");
        break;
    case KHI_SCAN_EMBEDDED:
        put(&o, " embedded (in the ");
        put_dec(&o, h->in_len);
        put(&o, "-byte instruction at ");
        if (h->in_sym != NULL)
            put_sym(&o, h->in_sym, h->in_symoff);
        else
            put_hex(&o, vaddr - h->vaddr + h->in_vaddr);
        put(&o, ":");
        for (unsigned i = 0; i < h->in_len; i++) {
            put(&o, " ");
            put_byte(&o, h->in_bytes[i]);
        }
        put(&o, ")");
        break;
    case KHI_SCAN_UNDECODED:
        put(&o, " embedded (in bytes that do not decode)");
        break;
    case KHI_SCAN_KEYHEAP:
        put(&o, " keyheap (keyheap's own enter/leave)");
        break;
    }
    if (n > 0)
        buf[o.len < n ? o.len : n - 1] = 0;
    return o.len;
}

/* ------------------------------------------------------------ processes */

/* Reads the whole of path into an anonymous mapping; returns it with its
 * length in *len and mapping size in *cap, or NULL. */
static uint8_t *slurp(const char *path, size_t *len, size_t *cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t c = 1u << 20, l = 0;
    uint8_t *b = map_anon(c);
    while (b != NULL) {
        if (l == c) {
            void *nb = mremap(b, c, 2 * c, MREMAP_MAYMOVE);
            if (nb == MAP_FAILED) {
                unmap(b, c);
                b = NULL;
                break;
            }
            b = nb;
            c *= 2;
        }
        ssize_t r = read(fd, b + l, c - l);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            unmap(b, c);
            b = NULL;
            break;
        }
        if (r == 0)
            break;
        l += (size_t)r;
    }
    close(fd);
    *len = l;
    *cap = c;
    return b;
}

static uint64_t parse_hex(const char **p)
{
    uint64_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uint64_t)(c - 'a' + 10);
        else
            return v;
    }
}

static uint64_t parse_dec(const char **p)
{
    uint64_t v = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++)
        v = v * 10 + (uint64_t)(**p - '0');
    return v;
}

static void cat(char *d, size_t n, const char *a, const char *b, const char *c)
{
    struct out o = {d, n, 0};
    put(&o, a);
    put(&o, b);
    put(&o, c);
    d[o.len < n ? o.len : n - 1] = 0;
}

struct pidscan {
    const struct khi_scan_map *m;
    khi_scan_pidhit_fn *fn;
    void *arg;
};

static void pid_hit(void *arg, const struct khi_scan_hit *h)
{
    struct pidscan *ps = arg;
    ps->fn(ps->arg, ps->m, h, ps->m->start + (h->offset - ps->m->offset));
}

/* Scans mapping m of pid from the file open at fd. */
static long scan_fd(int fd, const struct khi_scan_map *m, struct pidscan *ps, const char **why)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        *why = "not a regular file";
        return -1;
    }
    void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (img == MAP_FAILED) {
        *why = "cannot map the file";
        return -1;
    }
    long r = khi_scan_elf(img, (size_t)st.st_size, m->offset, m->offset + (m->end - m->start),
                          pid_hit, ps, why);
    munmap(img, (size_t)st.st_size);
    return r;
}

long khi_scan_pid(const char *pid, khi_scan_pidhit_fn *hitfn, khi_scan_map_fn *mapfn, void *arg,
                  unsigned *unscanned, const char **err)
{
    char path[4200], mapsname[64];
    cat(mapsname, sizeof mapsname, "/proc/", pid, "/maps");
    size_t len, cap;
    uint8_t *maps = slurp(mapsname, &len, &cap);
    *unscanned = 0;
    if (maps == NULL) {
        *err = "cannot read /proc/PID/maps";
        return -1;
    }
    long total = 0;
    for (size_t at = 0; at < len;) {
        const char *line = (const char *)maps + at;
        const uint8_t *nl = memchr(maps + at, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - (maps + at)) : len - at;
        at += ll + 1;
        if (ll >= 4096 + 128)
            continue;
        char l[4096 + 128];
        memcpy(l, line, ll);
        l[ll] = 0;
        /* start-end perms offset dev inode path */
        const char *p = l;
        struct khi_scan_map m;
        memset(&m, 0, sizeof m);
        m.start = parse_hex(&p);
        if (*p++ != '-')
            continue;
        m.end = parse_hex(&p);
        if (*p++ != ' ' || strlen(p) < 5)
            continue;
        memcpy(m.perms, p, 4);
        p += 4;
        if (*p++ != ' ')
            continue;
        m.offset = parse_hex(&p);
        p++;
        uint64_t major = parse_hex(&p);
        p++;
        uint64_t minor = parse_hex(&p);
        p++;
        uint64_t inode = parse_dec(&p);
        while (*p == ' ')
            p++;
        m.path = p;
        if (m.perms[2] != 'x')
            continue;
        long r = 0;
        if (m.perms[1] == 'w') {
            m.why = "writable and executable (JIT?)";
        } else if (m.path[0] == 0) {
            m.why = "anonymous executable memory (JIT?)";
        } else if (strcmp(m.path, "[vdso]") == 0) {
            size_t n = (size_t)(m.end - m.start);
            uint8_t *img = map_anon(n);
            cat(path, sizeof path, "/proc/", pid, "/mem");
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (img == NULL || fd < 0 ||
                pread(fd, img, n, (off_t)m.start) != (ssize_t)n) {
                m.why = "cannot read it through /proc/PID/mem";
            } else {
                struct khi_scan_map mm = m;
                mm.offset = 0;
                struct pidscan ps = {&mm, hitfn, arg};
                r = khi_scan_elf(img, n, 0, n, pid_hit, &ps, &m.why);
            }
            if (fd >= 0)
                close(fd);
            unmap(img, n);
        } else if (strcmp(m.path, "[vsyscall]") == 0) {
            m.why = "the kernel's legacy vsyscall page (not readable; the kernel emulates it)";
        } else if (m.path[0] != '/') {
            m.why = "not a file";
        } else {
            /* the file itself, unless it was deleted or replaced since:
             * then the mapped one through /proc/PID/map_files */
            int fd = open(m.path, O_RDONLY | O_CLOEXEC);
            struct stat st;
            if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_ino != inode ||
                            major(st.st_dev) != major || minor(st.st_dev) != minor)) {
                close(fd);
                fd = -1;
            }
            if (fd < 0) {
                struct out o = {path, sizeof path, 0};
                put(&o, "/proc/");
                put(&o, pid);
                put(&o, "/map_files/");
                put_hexraw(&o, m.start);
                put(&o, "-");
                put_hexraw(&o, m.end);
                path[o.len < sizeof path ? o.len : sizeof path - 1] = 0;
                fd = open(path, O_RDONLY | O_CLOEXEC);
            }
            if (fd < 0) {
                m.why = "cannot open the mapped file";
            } else {
                struct pidscan ps = {&m, hitfn, arg};
                r = scan_fd(fd, &m, &ps, &m.why);
                close(fd);
            }
        }
        if (m.why != NULL)
            ++*unscanned;
        else if (r > 0)
            total += r;
        if (mapfn != NULL)
            mapfn(arg, &m);
    }
    unmap(maps, cap);
    return total;
}
