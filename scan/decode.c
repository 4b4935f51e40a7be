/* scan/decode.c - x86-64 instruction lengths (see decode.h).
 *
 * The tables below are the opcode maps of the Intel SDM, volume 2,
 * appendix A, reduced to what decides an instruction's length: whether a
 * ModRM byte follows and which immediate.  One letter per opcode, sixteen
 * per row:
 *   .  no ModRM, no immediate          m  ModRM
 *   b  ModRM and imm8                  z  ModRM and imm16/32 (66 prefix)
 *   1  imm8 (rel8 included)            Z  imm16/32 (66 prefix)
 *   w  imm16                           v  imm16/32/64 (B8+r: 66, REX.W)
 *   r  rel16/32 (66 prefix without REX.W gives rel16, as AMD64 and
 *      objdump decode it; Intel CPUs ignore that 66)
 *   o  moffs (8 bytes, 4 with 67)      e  ENTER: imm16 and imm8
 *   g  F6 group 3: ModRM, imm8 for /0 and /1 (TEST)
 *   G  F7 group 3: ModRM, imm16/32 for /0 and /1
 *   c  MOV to or from CR/DR: ModRM always of the register form
 *   s  escape: 0F, 0F 38, 0F 3A, VEX (C4, C5), EVEX (62), XOP (8F)
 *   p  prefix (legacy or REX; handled before the table)
 *   x  invalid in 64-bit mode */
#include "scan/decode.h"

static const char one_byte[256 + 1] =
    /* 0 */ "mmmm1Zxxmmmm1Zxs"
    /* 1 */ "mmmm1Zxxmmmm1Zxx"
    /* 2 */ "mmmm1Zpxmmmm1Zpx"
    /* 3 */ "mmmm1Zpxmmmm1Zpx"
    /* 4 */ "pppppppppppppppp"
    /* 5 */ "................"
    /* 6 */ "xxsmppppZz1b...."
    /* 7 */ "1111111111111111"
    /* 8 */ "bzxbmmmmmmmmmmms"
    /* 9 */ "..........x....."
    /* A */ "oooo....1Z......"
    /* B */ "11111111vvvvvvvv"
    /* C */ "bbw.ssbze.w..1x."
    /* D */ "mmmmxxx.mmmmmmmm"
    /* E */ "11111111rrx1...."
    /* F */ "p.pp..gG......mm";

/* The 0F map.  0F 0F (3DNow!) is left out: invalid here. */
static const char two_byte[256 + 1] =
    /* 0 */ "mmmmx.....x.xm.x"
    /* 1 */ "mmmmmmmmmmmmmmmm"
    /* 2 */ "ccccxxxxmmmmmmmm"
    /* 3 */ "........sxsxxxxx"
    /* 4 */ "mmmmmmmmmmmmmmmm"
    /* 5 */ "mmmmmmmmmmmmmmmm"
    /* 6 */ "mmmmmmmmmmmmmmmm"
    /* 7 */ "bbbbmmm.mmxxmmmm"
    /* 8 */ "rrrrrrrrrrrrrrrr"
    /* 9 */ "mmmmmmmmmmmmmmmm"
    /* A */ "...mbmxx...mbmmm"
    /* B */ "mmmmmmmmmmbmmmmm"
    /* C */ "mmbmbbbm........"
    /* D */ "mmmmmmmmmmmmmmmm"
    /* E */ "mmmmmmmmmmmmmmmm"
    /* F */ "mmmmmmmmmmmmmmmm";

#define MAXLEN 15u

/* Length of the ModRM byte at p[i] with its SIB and displacement, or 0
 * when it runs past n. */
static unsigned modrm_len(const uint8_t *p, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    unsigned modrm = p[i], mod = modrm >> 6, rm = modrm & 7, len = 1;
    if (mod == 3)
        return 1;
    if (rm == 4) { /* SIB */
        if (i + 1 >= n)
            return 0;
        len++;
        if (mod == 0 && (p[i + 1] & 7) == 5)
            len += 4;
    } else if (mod == 0 && rm == 5) {
        len += 4; /* RIP-relative */
    }
    if (mod == 1)
        len += 1;
    else if (mod == 2)
        len += 4;
    return len;
}

/* Whether an opcode of the 0F map under VEX or EVEX takes an imm8:
 * PSHUFD and the shifts by immediate (70-73), CMPPS (C2), PINSRW, PEXTRW,
 * SHUFPS (C4-C6). */
static int vex_map1_imm8(unsigned op)
{
    return (op >= 0x70 && op <= 0x73) || op == 0xc2 || (op >= 0xc4 && op <= 0xc6);
}

static int finish(size_t i, size_t n, struct khi_insn *out)
{
    if (i > MAXLEN || i > n)
        return 0;
    out->len = (unsigned)i;
    return 1;
}

int khi_decode(const uint8_t *p, size_t n, struct khi_insn *out)
{
    size_t i = 0;
    unsigned rex = 0, opsize16 = 0, addr32 = 0, rep_f2 = 0, rep_f3 = 0;
    if (n > MAXLEN)
        n = MAXLEN;
    for (;; i++) {
        if (i >= n)
            return 0;
        unsigned b = p[i];
        if (b >= 0x40 && b <= 0x4f) {
            rex = b;
            continue;
        }
        if (one_byte[b] != 'p')
            break;
        rex = 0; /* a legacy prefix after REX: the REX is ignored */
        if (b == 0x66)
            opsize16 = 1;
        else if (b == 0x67)
            addr32 = 1;
        else if (b == 0xf2)
            rep_f2 = 1;
        else if (b == 0xf3)
            rep_f3 = 1;
    }
    (void)rep_f3;
    out->opcode = (unsigned)i;
    out->rex = rex ? p[i - 1] : 0;
    unsigned rexw = (rex & 8) != 0;
    unsigned immz = opsize16 && !rexw ? 2 : 4;
    unsigned op = p[i++];
    char kind = one_byte[op];
    unsigned m;

    if (kind == 's') {
        if (op == 0x0f) {
            if (i >= n)
                return 0;
            unsigned op2 = p[i++];
            if (op2 == 0x38 || op2 == 0x3a) {
                if (i >= n)
                    return 0;
                i++; /* the third opcode byte */
                if (!(m = modrm_len(p, n, i)))
                    return 0;
                i += m + (op2 == 0x3a);
                return finish(i, n, out);
            }
            kind = two_byte[op2];
            switch (kind) {
            case '.':
                return finish(i, n, out);
            case 'c':
                return finish(i + 1, n, out);
            case 'r':
                return finish(i + immz, n, out);
            case 'm':
            case 'b':
                if (!(m = modrm_len(p, n, i)))
                    return 0;
                i += m + (kind == 'b');
                /* EXTRQ and INSERTQ (66 or F2 0F 78, AMD SSE4a): two imm8 */
                if (op2 == 0x78 && (opsize16 || rep_f2))
                    i += 2;
                return finish(i, n, out);
            default:
                return 0;
            }
        }
        if (op == 0xc4 || op == 0xc5) { /* VEX */
            unsigned map = 1;
            if (op == 0xc4) {
                if (i + 1 >= n)
                    return 0;
                map = p[i] & 0x1f;
                i += 2;
            } else {
                if (i >= n)
                    return 0;
                i += 1;
            }
            if (map < 1 || map > 3 || i >= n)
                return 0;
            out->opcode = (unsigned)i;
            unsigned vop = p[i++];
            if (map == 1 && vop == 0x77) /* VZEROUPPER, VZEROALL */
                return finish(i, n, out);
            if (!(m = modrm_len(p, n, i)))
                return 0;
            i += m + (map == 3 || (map == 1 && vex_map1_imm8(vop)));
            return finish(i, n, out);
        }
        if (op == 0x62) { /* EVEX */
            if (i + 3 >= n)
                return 0;
            unsigned map = p[i] & 7;
            i += 3;
            if (map != 1 && map != 2 && map != 3 && map != 5 && map != 6)
                return 0;
            out->opcode = (unsigned)i;
            unsigned vop = p[i++];
            if (!(m = modrm_len(p, n, i)))
                return 0;
            i += m + (map == 3 || (map == 1 && vex_map1_imm8(vop)));
            return finish(i, n, out);
        }
        /* 8F: XOP when the map field is 8 or more, else POP r/m (/0) */
        if (i >= n)
            return 0;
        unsigned map = p[i] & 0x1f;
        if (map < 8) {
            if (!(m = modrm_len(p, n, i)))
                return 0;
            return finish(i + m, n, out);
        }
        if (map > 10 || i + 2 >= n)
            return 0;
        i += 2;
        out->opcode = (unsigned)i;
        i++;
        if (!(m = modrm_len(p, n, i)))
            return 0;
        i += m + (map == 8 ? 1 : map == 10 ? 4 : 0);
        return finish(i, n, out);
    }

    switch (kind) {
    case '.':
        break;
    case 'm':
    case 'b':
    case 'z':
        if (!(m = modrm_len(p, n, i)))
            return 0;
        i += m + (kind == 'b' ? 1 : kind == 'z' ? immz : 0);
        break;
    case 'g':
    case 'G':
        if (!(m = modrm_len(p, n, i)))
            return 0;
        if (((p[i] >> 3) & 7) < 2)
            i += kind == 'g' ? 1 : immz;
        i += m;
        break;
    case '1':
        i += 1;
        break;
    case 'Z':
    case 'r':
        i += immz;
        break;
    case 'w':
        i += 2;
        break;
    case 'e':
        i += 3;
        break;
    case 'v':
        i += rexw ? 8 : immz;
        break;
    case 'o':
        i += addr32 ? 4 : 8;
        break;
    default:
        return 0;
    }
    return finish(i, n, out);
}
