/* AEDAT4 event packets (akida_rt/stream/aedat4_file.py states the file layout): an LZ4 frame
 * (or the plain bytes) of a size-prefixed EventPacket flatbuffer, decoded into a buffer the
 * reader keeps, then its 16-byte events converted into EVENT_DTYPE in the reader's chunk.
 *
 * LZ4 (lz4/doc/lz4_Frame_format.md, lz4_Block_format.md): every length, offset and
 * checksum of the frame is checked against the bytes at hand and the output's room. */
#include "kernels.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

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
static const char TOO_BIG[] = "too big";

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
            return TOO_BIG;
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
            return TOO_BIG;
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
 * (TOO_BIG when it does not fit). Bytes after the frame's end mark are ignored. */
static const char *lz4_frame(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *len)
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
            return TOO_BIG;
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
                return TOO_BIG;
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

/* ---------------------------------------------------------------- the EventPacket flatbuffer */
/* The events of a size-prefixed EventPacket flatbuffer buf[0:n]: their byte offset in buf and
 * their count. NULL or what is wrong. */
static const char *event_packet(const uint8_t *buf, size_t n, size_t *at, size_t *count)
{
    if (n < 12)
        return "a packet too short for a flatbuffer";
    size_t size = rd32(buf);
    if (size > n - 4 || size < 8)
        return "a flatbuffer size prefix past the packet";
    const uint8_t *fb = buf + 4;
    if (memcmp(fb + 4, "EVTS", 4) != 0)
        return "not an event packet (flatbuffer identifier is not EVTS)";
    uint64_t root = rd32(fb);
    if (root > size - 4)
        return "a flatbuffer root past the packet";
    int64_t vtable = (int64_t)root - (int32_t)rd32(fb + root);
    if (vtable < 0 || (uint64_t)vtable > size - 4)
        return "a flatbuffer vtable past the packet";
    size_t vsize = rd16(fb + vtable), tsize = rd16(fb + vtable + 2);
    if (vsize < 4 || (vsize & 1) || (uint64_t)vtable + vsize > size || root + tsize > size)
        return "a flatbuffer vtable or table past the packet";
    size_t field = vsize >= 6 ? rd16(fb + vtable + 4) : 0;
    *count = 0, *at = 0;
    if (field == 0)
        return NULL; /* no elements: an empty packet */
    if (field + 4 > tsize)
        return "a flatbuffer field past its table";
    uint64_t vec = root + field + (uint64_t)rd32(fb + root + field);
    if (vec + 4 > size)
        return "a flatbuffer vector past the packet";
    uint64_t events = rd32(fb + vec);
    if (events * EVENT_SIZE > size - vec - 4)
        return "a flatbuffer vector whose events run past the packet";
    *count = (size_t)events, *at = (size_t)(4 + vec + 4);
    return NULL;
}

/* `count` dv events at `in` written to `dst` as EVENT_DTYPE (x and y as uint16, p as
 * p != 0, the padding zeroed); *prev the time before, then the last; 1 if a time goes back. */
static int convert(const uint8_t *in, Py_ssize_t count, event_t *dst, int64_t *last)
{
    int64_t prev = *last;
    int back = 0;
#ifdef __SSE2__
    /* the same layout but for p and the padding: each byte's minimum with 0xFF (t, x, y
     * as they are), 1 (p != 0) or 0 (padding) */
    const __m128i keep = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 0, 0, 0);
    for (Py_ssize_t i = 0; i < count; i++, in += EVENT_SIZE) {
        int64_t t;
        memcpy(&t, in, 8);
        _mm_storeu_si128((__m128i *)&dst[i], _mm_min_epu8(_mm_loadu_si128((const __m128i *)in), keep));
        back |= t < prev;
        prev = t;
    }
#else
    for (Py_ssize_t i = 0; i < count; i++, in += EVENT_SIZE) {
        int64_t t;
        int16_t x, y;
        memcpy(&t, in, 8);
        memcpy(&x, in + 8, 2);
        memcpy(&y, in + 10, 2);
        dst[i] = (event_t){t, (uint16_t)x, (uint16_t)y, in[12] != 0};
        back |= t < prev;
        prev = t;
    }
#endif
    *last = prev;
    return back;
}

/* aedat4_unpack(packet, lz4, scratch) -> (offset, count): the packet's events are `count`
 * 16-byte dv events at `offset` of scratch (lz4 true: the LZ4 frame decoded there) or of the
 * packet itself. ValueError naming what is wrong. */
PyObject *k_aedat4_unpack(PyObject *self, PyObject *args)
{
    Py_buffer packet, scratch;
    int lz4;
    if (!PyArg_ParseTuple(args, "y*pw*", &packet, &lz4, &scratch))
        return NULL;
    const char *err = NULL;
    size_t at = 0, count = 0, len = (size_t)packet.len;
    const uint8_t *src = (const uint8_t *)packet.buf;
    PyThreadState *gil = packet.len > GIL_FREE_ABOVE ? PyEval_SaveThread() : NULL;
    if (lz4) {
        err = lz4_frame(src, len, (uint8_t *)scratch.buf, (size_t)scratch.len, &len);
        src = (const uint8_t *)scratch.buf;
    }
    if (err == NULL)
        err = event_packet(src, len, &at, &count);
    if (gil != NULL)
        PyEval_RestoreThread(gil);
    Py_ssize_t room = scratch.len;
    PyBuffer_Release(&packet);
    PyBuffer_Release(&scratch);
    if (err == TOO_BIG) {
        PyErr_Format(PyExc_ValueError, "it decompresses to more than %zd MiB", room >> 20);
        return NULL;
    }
    if (err != NULL) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    return Py_BuildValue("(nn)", (Py_ssize_t)at, (Py_ssize_t)count);
}

/* aedat4_events(src, offset, count, out, at, last_t) -> the last t, or None: the `count` dv
 * events at src[offset:] (int64 t, int16 x, int16 y, bool p, 3 bytes padding) written to
 * out[at:at + count] as EVENT_DTYPE (x and y as uint16, p as p != 0); None when a time goes
 * back (from last_t, or from the event before). */
PyObject *k_aedat4_events(PyObject *self, PyObject *args)
{
    Py_buffer src;
    Py_ssize_t offset, count, at;
    long long last;
    PyObject *oo;
    if (!PyArg_ParseTuple(args, "y*nnOnL", &src, &offset, &count, &oo, &at, &last))
        return NULL;
    PyArrayObject *out = k_events(oo, 1, "out");
    if (out == NULL || offset < 0 || count < 0 || offset > src.len ||
        count > (src.len - offset) / EVENT_SIZE || at < 0 || at > PyArray_SIZE(out) ||
        count > PyArray_SIZE(out) - at) {
        PyBuffer_Release(&src);
        if (out != NULL)
            PyErr_SetString(PyExc_ValueError, "aedat4_events: offset, count or at out of range");
        return NULL;
    }
    const uint8_t *in = (const uint8_t *)src.buf + offset;
    event_t *dst = (event_t *)PyArray_DATA(out) + at;
    int64_t prev = last;
    int back;
    PyThreadState *gil = count > GIL_FREE_ABOVE ? PyEval_SaveThread() : NULL;
    back = convert(in, count, dst, &prev);
    if (gil != NULL)
        PyEval_RestoreThread(gil);
    PyBuffer_Release(&src);
    if (back)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(prev);
}

/* aedat4_walk(buf, lo, hi, stream_id, kind, scratch, out, at, last_t) -> (lo, at, last_t,
 * packets, events, stop, pending offset, pending count): the complete packets of buf[lo:hi]
 * one after another (kind 0: plain, 1: LZ4, 2: neither, left to the reader), those of
 * `stream_id` decoded and their events converted into out[at:]. Stops (stop) when buf has
 * no complete packet at lo (0), when out is full (1: a packet cut by the chunk's end leaves
 * `pending count` events at `pending offset` of scratch, or of buf when plain), or at a
 * packet the reader must see (2: a size past 1 GiB, a packet that does not decode or is
 * not LZ4, a time that goes back; nothing of it is taken, lo stays at its header). */
PyObject *k_aedat4_walk(PyObject *self, PyObject *args)
{
    Py_buffer buf, scratch;
    Py_ssize_t lo, hi, at;
    int stream, kind;
    long long last_t;
    PyObject *oo;
    if (!PyArg_ParseTuple(args, "y*nniiw*OnL", &buf, &lo, &hi, &stream, &kind, &scratch, &oo,
                          &at, &last_t))
        return NULL;
    PyArrayObject *out = k_events(oo, 1, "out");
    if (out == NULL || lo < 0 || hi < lo || hi > buf.len || at < 0 || at > PyArray_SIZE(out)) {
        PyBuffer_Release(&buf);
        PyBuffer_Release(&scratch);
        if (out != NULL)
            PyErr_SetString(PyExc_ValueError, "aedat4_walk: lo, hi or at out of range");
        return NULL;
    }
    const uint8_t *b = (const uint8_t *)buf.buf;
    event_t *ev = (event_t *)PyArray_DATA(out);
    const Py_ssize_t cap = PyArray_SIZE(out);
    Py_ssize_t packets = 0, events = 0, pending_at = 0, pending = 0;
    int64_t last = last_t;
    int stop;
    PyThreadState *gil = hi - lo > GIL_FREE_ABOVE ? PyEval_SaveThread() : NULL;
    for (;;) {
        if (at == cap) {
            stop = 1;
            break;
        }
        if (hi - lo < 8) {
            stop = 0;
            break;
        }
        int32_t id = (int32_t)rd32(b + lo), size = (int32_t)rd32(b + lo + 4);
        if (size < 0 || size > (1 << 30)) {
            stop = 2;
            break;
        }
        if (hi - lo - 8 < size) {
            stop = 0;
            break;
        }
        if (id != stream) {
            lo += 8 + (Py_ssize_t)size, packets++;
            continue;
        }
        const uint8_t *src = b + lo + 8;
        size_t len = (size_t)size, offset, count;
        const char *err = kind == 0 || kind == 1 ? NULL : "not plain or LZ4";
        if (kind == 1) {
            err = lz4_frame(src, len, (uint8_t *)scratch.buf, (size_t)scratch.len, &len);
            src = (const uint8_t *)scratch.buf;
        }
        if (err == NULL)
            err = event_packet(src, len, &offset, &count);
        if (err != NULL) {
            stop = 2;
            break;
        }
        Py_ssize_t take = (Py_ssize_t)count < cap - at ? (Py_ssize_t)count : cap - at;
        int64_t before = last;
        if (convert(src + offset, take, ev + at, &last)) {
            last = before;
            stop = 2;
            break;
        }
        at += take, lo += 8 + (Py_ssize_t)size, packets++, events += (Py_ssize_t)count;
        if (take < (Py_ssize_t)count) {
            pending_at = (Py_ssize_t)(src - (kind == 1 ? (const uint8_t *)scratch.buf : b)) +
                         (Py_ssize_t)offset + take * EVENT_SIZE;
            pending = (Py_ssize_t)count - take;
            stop = 1;
            break;
        }
    }
    if (gil != NULL)
        PyEval_RestoreThread(gil);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&scratch);
    return Py_BuildValue("(nnLnninn)", lo, at, (long long)last, packets, events, stop, pending_at,
                         pending);
}
