/* tests/scan/objdump_compare.c - keyheap's x86-64 length decoder
 * (scan/decode.c) against objdump -d, on a real ELF file.
 *
 *   objdump_compare FILE OBJDUMP_OUTPUT
 *
 * OBJDUMP_OUTPUT is `objdump -d -z --insn-width=16 --no-show-raw-insn FILE`.
 * For every function symbol with a size in an executable segment
 * (.symtab, else .dynsym), both decode linearly from its start: the set of
 * instruction starts inside [start, start + size) is compared.  Functions
 * where objdump prints "(bad)" (bytes it does not decode either) are
 * counted apart and left out of the comparison.  A REX prefix that does
 * not immediately precede an opcode is ignored by the CPU (SDM 2.2.1) and
 * belongs to the instruction it stands in; objdump prints it on a line of
 * its own ("rex.RXB" alone): the instruction is taken to start at the first
 * of those lines, and they are counted (R).  objdump also prints FWAIT (9B)
 * and the x87 instruction after it as one ("fstsw" for 9B DF E0, as the SDM
 * lists it), where the CPU runs two instructions: a start of keyheap's just
 * after a 9B that both start an instruction at is counted (W), not a
 * mismatch.  Prints one summary line
 *   FILE: F functions, I instructions, M mismatched starts in K functions; B functions with (bad) left out; R lone REX lines of objdump; W FWAIT+x87 pairs
 * and the first mismatches; exits 0 only when M is 0 and I is not. */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scan/decode.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t *starts, *bads;
static size_t nstarts, nbads;
static unsigned long lone_rex, fwait_pairs;

static size_t lower(const uint64_t *a, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (a[m] < v)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

static void read_objdump(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 1 << 20, bcap = 1024;
    starts = malloc(cap * sizeof *starts);
    bads = malloc(bcap * sizeof *bads);
    char line[4096];
    unsigned long long rex_at = 0; /* first of the lone REX lines just before */
    int rex_pending = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line, *end;
        while (*p == ' ')
            p++;
        unsigned long long a = strtoull(p, &end, 16);
        if (end == p || *end != ':' || end[1] != '\t') {
            rex_pending = 0; /* a symbol's header: decoding restarts */
            continue;
        }
        const char *m = end + 2;
        size_t ml = strcspn(m, " \n");
        if (ml >= 3 && strncmp(m, "rex", 3) == 0 && strspn(m + 3, ".WRXB") == ml - 3 &&
            m[ml] == '\n') {
            lone_rex++;
            if (!rex_pending)
                rex_at = a;
            rex_pending = 1;
            continue;
        }
        if (rex_pending)
            a = rex_at;
        rex_pending = 0;
        if (nstarts == cap)
            starts = realloc(starts, (cap *= 2) * sizeof *starts);
        starts[nstarts++] = a;
        if (strstr(end, "(bad)") != NULL) {
            if (nbads == bcap)
                bads = realloc(bads, (bcap *= 2) * sizeof *bads);
            bads[nbads++] = a;
        }
    }
    fclose(f);
    qsort(starts, nstarts, sizeof *starts, cmp_u64);
    qsort(bads, nbads, sizeof *bads, cmp_u64);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: objdump_compare FILE OBJDUMP_OUTPUT\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 2;
    }
    const uint8_t *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (img == MAP_FAILED)
        return 2;
    read_objdump(argv[2]);
    const Elf64_Ehdr *eh = (const void *)img;
    const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff);
    const Elf64_Shdr *sh = (const void *)(img + eh->e_shoff);
    const Elf64_Shdr *tab = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB || (sh[i].sh_type == SHT_DYNSYM && tab == NULL))
            tab = &sh[i];
    if (tab == NULL) {
        fprintf(stderr, "%s: no symbols\n", argv[1]);
        return 2;
    }
    const Elf64_Sym *syms = (const void *)(img + tab->sh_offset);
    const char *strs = (const char *)img + sh[tab->sh_link].sh_offset;
    size_t nsyms = tab->sh_size / sizeof *syms;
    unsigned long functions = 0, insns = 0, mismatches = 0, bad_functions = 0, mism_functions = 0;
    uint64_t *seen = calloc(nsyms, sizeof *seen);
    size_t nseen = 0;
    for (size_t k = 0; k < nsyms; k++) {
        const Elf64_Sym *s = &syms[k];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_size == 0 || s->st_shndx == SHN_UNDEF)
            continue;
        const Elf64_Phdr *seg = NULL;
        for (unsigned i = 0; i < eh->e_phnum; i++)
            if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) && s->st_value >= ph[i].p_vaddr &&
                s->st_value + s->st_size <= ph[i].p_vaddr + ph[i].p_filesz)
                seg = &ph[i];
        if (seg == NULL)
            continue;
        int dup = 0; /* aliases: once */
        for (size_t j = 0; j < nseen && !dup; j++)
            dup = seen[j] == s->st_value;
        if (dup)
            continue;
        seen[nseen++] = s->st_value;
        uint64_t lo = s->st_value, hi = lo + s->st_size;
        size_t b = lower(bads, nbads, lo);
        if (b < nbads && bads[b] < hi) {
            bad_functions++;
            continue;
        }
        functions++;
        const uint8_t *code = img + seg->p_offset + (lo - seg->p_vaddr);
        size_t avail = seg->p_vaddr + seg->p_filesz - lo;
        size_t oi = lower(starts, nstarts, lo);
        unsigned long here = 0;
        uint64_t prev = (uint64_t)-1; /* keyheap's previous start */
        for (uint64_t pos = 0; lo + pos < hi;) {
            struct khi_insn in;
            unsigned len = khi_decode(code + pos, avail - pos, &in) ? in.len : 1;
            insns++;
            /* objdump's starts skipped over are mismatches too */
            while (oi < nstarts && starts[oi] < lo + pos) {
                if (here++ < 3 && mismatches < 20)
                    printf("  %s: objdump starts an instruction at 0x%llx (%s+0x%llx), keyheap does not\n",
                           argv[1], (unsigned long long)starts[oi], strs + s->st_name,
                           (unsigned long long)(starts[oi] - lo));
                mismatches++;
                oi++;
            }
            if (oi < nstarts && starts[oi] == lo + pos)
                oi++;
            else if (pos > 0 && code[pos - 1] == 0x9b && prev == pos - 1 && code[pos] >= 0xd8 &&
                     code[pos] <= 0xdf) {
                fwait_pairs++;
            } else {
                if (here++ < 3 && mismatches < 20) {
                    printf("  %s: keyheap starts an instruction at 0x%llx (%s+0x%llx), objdump does not:",
                           argv[1], (unsigned long long)(lo + pos), strs + s->st_name,
                           (unsigned long long)pos);
                    for (unsigned i = 0; i < 15 && pos + i < avail; i++)
                        printf(" %02x", code[pos + i]);
                    printf("\n");
                }
                mismatches++;
            }
            prev = pos;
            pos += len;
        }
        while (oi < nstarts && starts[oi] < hi) {
            mismatches++;
            here++;
            oi++;
        }
        mism_functions += here != 0;
    }
    printf("%s: %lu functions, %lu instructions, %lu mismatched starts in %lu functions; "
           "%lu functions with (bad) left out; %lu lone REX lines of objdump; %lu FWAIT+x87 pairs\n",
           argv[1], functions, insns, mismatches, mism_functions, bad_functions, lone_rex,
           fwait_pairs);
    free(seen);
    return mismatches == 0 && insns > 0 ? 0 : 1;
}
