/*
 * fuzz/scan.c - libFuzzer target for keyheap-scan's core (scan/): the ELF
 * reader and the instruction-length decoder over arbitrary bytes, as
 * keyheap-scan reads untrusted files.
 *
 * The input is scanned as an ELF file (khi_scan_elf, every offset), and
 * each hit is checked: its bytes are in the input and are what its name
 * says (0F 01 EF; 0F AE /5 with a memory operand, after a REX byte for
 * xrstor64), its kind is one of the four, an embedding instruction holds
 * the hit's first byte after its own start, and khi_scan_format's line
 * fits and is terminated.  Then every position of the input is decoded
 * (khi_decode): a valid instruction is 1 to 15 bytes, its opcode inside
 * it, and it decodes the same from exactly its own bytes (the length
 * depends on nothing after it).  Any failure aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scan/decode.h"
#include "scan/scan.h"
#include "fuzz/check.h"

struct input {
    const uint8_t *data;
    size_t size;
    unsigned long hits, findings;
};

static void hit(void *arg, const struct khi_scan_hit *h)
{
    struct input *in = arg;
    const uint8_t *b = in->data;
    in->hits++;
    CHECK(h->offset < in->size);
    size_t at = (size_t)h->offset;
    if (strcmp(h->name, "wrpkru") == 0) {
        CHECK(at + 3 <= in->size && b[at] == 0x0f && b[at + 1] == 0x01 && b[at + 2] == 0xef);
    } else {
        CHECK(strcmp(h->name, "xrstor") == 0 || strcmp(h->name, "xrstor64") == 0);
        if (b[at] != 0x0f) { /* a REX byte first */
            CHECK(b[at] >= 0x40 && b[at] <= 0x4f);
            CHECK(strcmp(h->name, "xrstor64") == 0 ? (b[at] & 8) != 0 : (b[at] & 8) == 0);
            at++;
        } else {
            CHECK(strcmp(h->name, "xrstor") == 0);
        }
        CHECK(at + 3 <= in->size && b[at] == 0x0f && b[at + 1] == 0xae);
        CHECK(((b[at + 2] >> 3) & 7) == 5 && (b[at + 2] >> 6) != 3);
    }
    CHECK(h->kind == KHI_SCAN_INSN || h->kind == KHI_SCAN_EMBEDDED ||
          h->kind == KHI_SCAN_UNDECODED || h->kind == KHI_SCAN_KEYHEAP);
    if (h->kind == KHI_SCAN_KEYHEAP)
        CHECK(strcmp(h->name, "wrpkru") == 0);
    else
        in->findings++;
    if (h->kind == KHI_SCAN_EMBEDDED) {
        CHECK(h->in_len >= 1 && h->in_len <= 15);
        /* it holds the 0F byte, and starts before it */
        uint64_t v0f = h->vaddr + (at - h->offset);
        CHECK(h->in_vaddr < v0f && v0f - h->in_vaddr < h->in_len);
        CHECK(h->in_bytes >= in->data && h->in_bytes + h->in_len <= in->data + in->size);
    }
    char line[256];
    size_t n = khi_scan_format(line, sizeof line, "input", h, h->vaddr);
    CHECK(strlen(line) == (n < sizeof line ? n : sizeof line - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of its own size, so that any read past it is ASan's */
    uint8_t *copy = malloc(size ? size : 1);
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    struct input in = {copy, size, 0, 0};
    const char *err = NULL;
    long r = khi_scan_elf(copy, size, 0, size, hit, &in, &err);
    if (r < 0)
        CHECK(err != NULL && err[0] != 0);
    else
        CHECK((unsigned long)r == in.findings);

    for (size_t i = 0; i < size; i++) {
        struct khi_insn insn;
        if (!khi_decode(copy + i, size - i, &insn))
            continue;
        CHECK(insn.len >= 1 && insn.len <= 15 && insn.len <= size - i);
        CHECK(insn.opcode < insn.len);
        uint8_t *own = malloc(insn.len); /* exactly its bytes: ASan sees any read after */
        CHECK(own != NULL);
        memcpy(own, copy + i, insn.len);
        struct khi_insn again;
        CHECK(khi_decode(own, insn.len, &again));
        CHECK(again.len == insn.len && again.opcode == insn.opcode && again.rex == insn.rex);
        free(own);
    }
    free(copy);
    return 0;
}
