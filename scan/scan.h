/* scan/scan.h - the scanner of keyheap-scan(1) and keyheap_scan_self(3):
 * WRPKRU (0F 01 EF) and XRSTOR/XRSTOR64 (0F AE /5, memory forms) in the
 * executable segments of ELF files and of live processes.
 *
 * Compiled into libkeyheap (hidden, prefix khi_) and into the keyheap-scan
 * program.  It allocates with mmap only and prints nothing: the caller gets
 * each finding through a callback and formats it with khi_scan_format, so
 * both print the same line.  Every field of a file is bounds-checked: the
 * files are untrusted. */
#ifndef KEYHEAP_SCAN_SCAN_H
#define KEYHEAP_SCAN_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define KHI_SCAN_HIDDEN __attribute__((visibility("hidden")))

enum khi_scan_kind {
    KHI_SCAN_INSN,     /* the bytes begin an instruction */
    KHI_SCAN_EMBEDDED, /* inside another instruction (immediate, displacement) */
    KHI_SCAN_UNDECODED, /* at a byte that does not decode as an instruction */
    KHI_SCAN_KEYHEAP,  /* keyheap's own WRPKRU (.keyheap_wrpkru): not a finding */
};

struct khi_scan_hit {
    const char *name;   /* "wrpkru", "xrstor", "xrstor64" */
    enum khi_scan_kind kind;
    uint64_t offset;    /* file offset of its first byte (the REX of an XRSTOR) */
    uint64_t vaddr;     /* its virtual address in the file (link time) */
    const char *sym;    /* the function symbol that covers it, or NULL */
    uint64_t symoff;
    /* KHI_SCAN_EMBEDDED: the instruction it is inside */
    uint64_t in_vaddr;
    const char *in_sym; /* or NULL */
    uint64_t in_symoff;
    unsigned in_len;
    const uint8_t *in_bytes;
};

/* Called once per hit (keyheap's own included). */
typedef void khi_scan_hit_fn(void *arg, const struct khi_scan_hit *h);

/* khi_scan_elf - scans the ELF64 x86-64 image img[0, size) (a file, or a
 * copy of the vDSO): every PF_X PT_LOAD segment, reporting the hits whose
 * first byte has a file offset in [lo, hi).  Instructions are decoded
 * linearly from each function symbol's start (.symtab, else .dynsym), from
 * each one's end, and from each segment's start.  Returns the number of
 * findings (hits but keyheap's own), or -1 with *err set to a static
 * message when the image is not one it can scan. */
KHI_SCAN_HIDDEN long khi_scan_elf(const uint8_t *img, size_t size, uint64_t lo, uint64_t hi,
                                  khi_scan_hit_fn *fn, void *arg, const char **err);

/* One executable mapping of a process, as khi_scan_pid reports it. */
struct khi_scan_map {
    uint64_t start, end, offset; /* addresses and file offset */
    char perms[5];
    const char *path;  /* "" for anonymous */
    const char *why;   /* NULL: scanned; else why not (a static string) */
};
typedef void khi_scan_map_fn(void *arg, const struct khi_scan_map *m);

/* The hit callback of khi_scan_pid gets, besides the hit, the mapping it
 * is in; rt_vaddr is its address in the process. */
typedef void khi_scan_pidhit_fn(void *arg, const struct khi_scan_map *m,
                                const struct khi_scan_hit *h, uint64_t rt_vaddr);

/* khi_scan_pid - scans every executable mapping of process pid ("self" or
 * a number) through /proc: file-backed ones in their files (a deleted or
 * replaced file through /proc/PID/map_files), the vDSO through
 * /proc/PID/mem; writable or anonymous ones are not scanned (JIT).  mapfn
 * is called for every executable mapping after it is scanned (or not).
 * Returns the number of findings, or -1 with *err (static) when /proc/PID/maps
 * cannot be read; a mapping that cannot be scanned is reported to mapfn
 * with why set, and counted in *unscanned. */
KHI_SCAN_HIDDEN long khi_scan_pid(const char *pid, khi_scan_pidhit_fn *hitfn,
                                  khi_scan_map_fn *mapfn, void *arg, unsigned *unscanned,
                                  const char **err);

/* khi_scan_format - the line of a hit, without a newline, in buf (always
 * terminated; cut at n - 1):
 *   PATH: offset 0xO vaddr 0xV SYM: NAME instruction
 *   PATH: offset 0xO vaddr 0xV SYM: NAME embedded (in the N-byte instruction at SYM2: BYTES)
 *   PATH: offset 0xO vaddr 0xV SYM: NAME embedded (in bytes that do not decode)
 *   PATH: offset 0xO vaddr 0xV SYM: NAME keyheap (keyheap's own enter/leave)
 * SYM is symbol+0xOFF or "-"; vaddr is the one given (the process's
 * address for khi_scan_pid, the file's otherwise); SYM2 is placed the same
 * way.  Returns the length. */
KHI_SCAN_HIDDEN size_t khi_scan_format(char *buf, size_t n, const char *path,
                                       const struct khi_scan_hit *h, uint64_t vaddr);

/* keyheap_scan_self once, at the first domain created with
 * KEYHEAP_CONF=scan:true (scan/self.c; called without keyheap's locks). */
KHI_SCAN_HIDDEN void khi_scan_first(void);

/* The note on what the scanner cannot see, one line without a newline. */
KHI_SCAN_HIDDEN extern const char khi_scan_blind[];

#endif
