/* scan/decode.h - an x86-64 instruction-length decoder (64-bit mode).
 *
 * Written for keyheap's scanner (scan/scan.h) from the opcode maps of the
 * Intel SDM, volume 2, appendix A (one-byte, 0F, 0F38 and 0F3A maps), the
 * VEX and EVEX prefix formats (SDM 2.3, 2.7) and AMD's XOP format (AMD64
 * APM volume 6).  It tells how long an instruction is and where its opcode
 * starts, nothing more: no operands, no names.  Compiled into libkeyheap
 * (hidden) and into keyheap-scan; it allocates nothing. */
#ifndef KEYHEAP_SCAN_DECODE_H
#define KEYHEAP_SCAN_DECODE_H

#include <stddef.h>
#include <stdint.h>

struct khi_insn {
    unsigned len;    /* bytes, 1 to 15 */
    unsigned opcode; /* offset of the opcode's first byte (0F included), after
                        legacy prefixes, REX, VEX, EVEX or XOP */
    unsigned rex;    /* the REX byte (40-4F) just before the opcode, or 0 */
};

/* Decodes the instruction at p (n bytes readable).  Returns 1 and fills *out
 * when it is a valid instruction of 64-bit mode; 0 when the bytes are not
 * one (an opcode invalid in 64-bit mode, longer than 15 bytes, or cut short
 * by n): the caller skips one byte. */
int khi_decode(const uint8_t *p, size_t n, struct khi_insn *out)
    __attribute__((visibility("hidden")));

#endif
