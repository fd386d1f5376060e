/* AEDAT4 event packets (akida_rt/stream/aedat4_file.py states the file layout): an LZ4 frame
 * (or the plain bytes) of a size-prefixed EventPacket flatbuffer, decoded into a buffer the
 * reader keeps (lz4.c), then its 16-byte events converted into EVENT_DTYPE in the reader's
 * chunk; every offset and length of the flatbuffer is checked against the packet. */
#include "kernels.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
    if (err == LZ4_TOO_BIG) {
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
