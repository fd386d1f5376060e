/* LZ4 frames (lz4/doc/lz4_Frame_format.md, lz4_Block_format.md) decoded into a buffer of
 * fixed room, for the AEDAT4 packets (aedat4.c): every length, offset and checksum of the
 * frame is checked against the bytes at hand and the output's room. */
#include "kernels.h"

#include <string.h>

/* ---------------------------------------------------------------- xxHash32 (the frame's checksums) */
#define XP1 2654435761u
#define XP2 2246822519u
#define XP3 3266489917u
#define XP4 668265263u
#define XP5 374761393u

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }
static inline uint32_t xround(uint32_t acc, uint32_t v) { return rotl32(acc + v * XP2, 13) * XP1; }

static uint32_t xxh32(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    uint32_t h;
    if (len >= 16) {
        uint32_t v1 = XP1 + XP2, v2 = XP2, v3 = 0, v4 = 0u - XP1;
        for (; end - p >= 16; p += 16) {
            v1 = xround(v1, rd32(p)), v2 = xround(v2, rd32(p + 4));
            v3 = xround(v3, rd32(p + 8)), v4 = xround(v4, rd32(p + 12));
        }
        h = rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18);
    } else {
        h = XP5;
    }
    h += (uint32_t)len;
    for (; end - p >= 4; p += 4)
        h = rotl32(h + rd32(p) * XP3, 17) * XP4;
    for (; p < end; p++)
        h = rotl32(h + *p * XP5, 11) * XP1;
    h ^= h >> 15, h *= XP2, h ^= h >> 13, h *= XP3, h ^= h >> 16;
    return h;
}

/* ---------------------------------------------------------------- LZ4 blocks and frames */
/* What the decoders return when the output does not fit the room given. */
const char LZ4_TOO_BIG[] = "too big";

/* Decodes one block src[0:n] to dst[*pos:], never past dst[cap]; a match may reach back to
 * dst[floor] (the frame's start for linked blocks, the block's own for independent ones).
 * Returns NULL or what is wrong. The fast paths copy 8 bytes of a match at a time (16 or 32 of
 * literals) when 32 bytes of room remain past the copy's end, so they never write past `cap`. */
static const char *lz4_block(const uint8_t *src, size_t n, uint8_t *dst, size_t *pos, size_t cap,
                             size_t floor)
{
    const uint8_t *ip = src, *iend = src + n;
    uint8_t *op = dst + *pos, *const oend = dst + cap, *const low = dst + floor;
    if (n == 0)
        return "an empty LZ4 block";
    for (;;) {
        /* the common sequence (at most 14 literals, a match of at most 18 bytes from 4 or
         * more back) far from both ends: copies of fixed size, no length checks needed */
        if (iend - ip >= 32 && oend - op >= 64 && (ip[0] >> 4) != 15 && (ip[0] & 15) != 15) {
            unsigned token = *ip++;
            size_t lit = token >> 4, len = (token & 15u) + 4;
            memcpy(op, ip, 8);
            if (lit > 8)
                memcpy(op + 8, ip + 8, 8);
            op += lit, ip += lit;
            size_t off = rd16(ip);
            if (off >= 4 && off <= (size_t)(op - low)) {
                ip += 2;
                const uint8_t *m = op - off;
                /* 4-byte copies: a wider load of bytes that smaller stores have just
                 * written stalls until they reach the cache (store forwarding fails), and
                 * matches from the event before (16 bytes back) are the usual ones; each
                 * 4 bytes read are final already */
                memcpy(op, m, 4);
                memcpy(op + 4, m + 4, 4);
                if (len > 8) {
                    memcpy(op + 8, m + 8, 4);
                    memcpy(op + 12, m + 12, 4);
                    if (len > 16)
                        memcpy(op + 16, m + 16, 4);
                }
                op += len;
                continue;
            }
            ip -= lit + 1, op -= lit; /* a near or bad offset: the general path decides */
        }
        unsigned token = *ip++;
        size_t lit = token >> 4;
        if (lit == 15) {
            unsigned b;
            do {
                if (ip >= iend)
                    return "an LZ4 literal length runs past its block";
                b = *ip++;
                lit += b;
            } while (b == 255 && lit < ((size_t)1 << 40));
        }
        if (lit > (size_t)(iend - ip))
            return "LZ4 literals run past their block";
        if (lit > (size_t)(oend - op))
            return LZ4_TOO_BIG;
        if (lit <= 32 && iend - ip >= 32 && oend - op >= 64) {
            memcpy(op, ip, 16);
            memcpy(op + 16, ip + 16, 16);
        } else
            memmove(op, ip, lit);
        op += lit, ip += lit;
        if (ip == iend)
            break; /* the block's last sequence: literals only */
        if (iend - ip < 2)
            return "an LZ4 match offset runs past its block";
        size_t off = rd16(ip);
        ip += 2;
        if (off == 0 || off > (size_t)(op - low))
            return "an LZ4 match reaches before the data";
        size_t len = (token & 15u) + 4;
        if ((token & 15u) == 15) {
            unsigned b;
            do {
                if (ip >= iend)
                    return "an LZ4 match length runs past its block";
                b = *ip++;
                len += b;
            } while (b == 255 && len < ((size_t)1 << 40));
        }
        if (len > (size_t)(oend - op))
            return LZ4_TOO_BIG;
        const uint8_t *m = op - off;
        if (off >= 8 && (size_t)(oend - op) >= len + 32) {
            for (size_t i = 0; i < len; i += 8) /* each 8 bytes read are final already */
                memcpy(op + i, m + i, 8);
        } else if ((size_t)(oend - op) >= len + 32) {
            /* a near match repeats its first `off` bytes: 8 bytes by byte, then 8 at a time
             * from a whole number of periods (8 to 14 bytes) back, all final already */
            size_t period = off * ((8 + off - 1) / off);
            for (size_t i = 0; i < 8; i++)
                op[i] = m[i];
            for (size_t i = 8; i < len; i += 8)
                memcpy(op + i, op + i - period, 8);
        } else {
            for (size_t i = 0; i < len; i++)
                op[i] = m[i];
        }
        op += len;
    }
    *pos = (size_t)(op - dst);
    return NULL;
}

/* An LZ4 frame src[0:n] decoded into dst[0:cap]; *len is its size. NULL or what is wrong
 * (LZ4_TOO_BIG when it does not fit). Bytes after the frame's end mark are ignored. */
const char *lz4_frame(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *len)
{
    if (n < 7 || rd32(src) != 0x184D2204u)
        return "not an LZ4 frame (no magic number)";
    unsigned flg = src[4], bd = src[5];
    if ((flg >> 6) != 1 || (flg & 0x02) || (bd & 0x8F) || ((bd >> 4) & 7) < 4)
        return "an LZ4 frame descriptor with an unknown version or reserved bits";
    if (flg & 0x01)
        return "an LZ4 frame that needs a dictionary";
    int linked = !(flg & 0x20), block_sum = (flg & 0x10) != 0, sized = (flg & 0x08) != 0;
    int content_sum = (flg & 0x04) != 0;
    size_t head = 6 + (sized ? 8 : 0);
    if (n < head + 1)
        return "an LZ4 frame descriptor cut short";
    if (((xxh32(src + 4, head - 4) >> 8) & 0xFF) != src[head])
        return "an LZ4 frame descriptor checksum that does not match";
    uint64_t content = 0;
    if (sized) {
        memcpy(&content, src + 6, 8);
        if (content > cap)
            return LZ4_TOO_BIG;
    }
    size_t block_max = (size_t)1 << (8 + 2 * ((bd >> 4) & 7));
    const uint8_t *ip = src + head + 1, *iend = src + n;
    size_t pos = 0;
    for (;;) {
        if (iend - ip < 4)
            return "an LZ4 frame without its end mark (cut short)";
        uint32_t word = rd32(ip);
        ip += 4;
        if (word == 0)
            break;
        size_t size = word & 0x7FFFFFFFu;
        if (size > block_max)
            return "an LZ4 block larger than the frame's block size";
        if (size > (size_t)(iend - ip) || (block_sum && (size_t)(iend - ip) - size < 4))
            return "an LZ4 block runs past the packet";
        if (block_sum && xxh32(ip, size) != rd32(ip + size))
            return "an LZ4 block checksum that does not match";
        if (word & 0x80000000u) { /* stored, not compressed */
            if (size > cap - pos)
                return LZ4_TOO_BIG;
            memcpy(dst + pos, ip, size);
            pos += size;
        } else {
            size_t start = pos;
            const char *err = lz4_block(ip, size, dst, &pos, cap, linked ? 0 : pos);
            if (err != NULL)
                return err;
            if (pos - start > block_max)
                return "an LZ4 block that decodes past the frame's block size";
        }
        ip += size + (block_sum ? 4 : 0);
    }
    if (content_sum && (iend - ip < 4 || xxh32(dst, pos) != rd32(ip)))
        return "an LZ4 frame content checksum that does not match";
    if (sized && content != pos)
        return "an LZ4 frame whose size is not the one its header states";
    *len = pos;
    return NULL;
}
