/* Prophesee EVT 2.0 / EVT 3.0 decoding and event framing (akida_rt/stream/evt2.py,
 * evt3.py and framing.py state the formats and the rules; these loops follow them). */
#include "kernels.h"

/* A new 1-D array of n EVENT_DTYPE events (the dtype object comes from Python). */
static PyArrayObject *new_events(PyObject *dtype, npy_intp n)
{
    if (!PyArray_DescrCheck(dtype) || PyDataType_ELSIZE((PyArray_Descr *)dtype) != EVENT_SIZE) {
        PyErr_SetString(PyExc_TypeError, "event_dtype: expected a 16-byte numpy dtype");
        return NULL;
    }
    Py_INCREF(dtype); /* stolen by NewFromDescr */
    return (PyArrayObject *)PyArray_NewFromDescr(&PyArray_Type, (PyArray_Descr *)dtype, 1, &n,
                                                 NULL, NULL, 0, NULL);
}

/* Where decoded events go, and what the reader's checks would say of them: a time that
 * goes back (from the reader's last), a pixel outside the sensor (when its size is
 * known). Offsets (each event's word's byte offset) only when asked for. */
typedef struct {
    event_t *out;
    int64_t *off;
    npy_intp k;
    int64_t prev;
    uint32_t width, height;
    int bad;
} sink_t;

static inline void emit(sink_t *s, int64_t t, uint16_t x, uint16_t y, uint32_t p, int64_t at)
{
    s->out[s->k] = (event_t){t, x, y, p};
    if (s->off != NULL)
        s->off[s->k] = at;
    s->k++;
    s->bad |= (t < s->prev) | (x >= s->width) | (y >= s->height);
    s->prev = t;
}

typedef struct {
    PyArrayObject *words;
    int64_t *state;
    PyObject *dtype;
    long long first, width, height, last;
    int offsets;
} decode_args_t;

/* The common arguments of both decoders; 0 with an exception set when they are bad. */
static int decode_args(PyObject *args, int typenum, npy_intp state_len, decode_args_t *a)
{
    PyObject *wo, *so;
    if (!PyArg_ParseTuple(args, "OOOLLLLp", &wo, &so, &a->dtype, &a->first, &a->width,
                          &a->height, &a->last, &a->offsets))
        return 0;
    PyArrayObject **words = &a->words;
    long long *first = &a->first;
    if ((*words = k_array(wo, typenum, 1, 0, "words")) == NULL)
        return 0;
    PyArrayObject *s = k_array(so, NPY_INT64, 1, 1, "state");
    if (s == NULL)
        return 0;
    if (PyArray_SIZE(s) != state_len) {
        PyErr_Format(PyExc_ValueError, "state: expected %zd values", (Py_ssize_t)state_len);
        return 0;
    }
    npy_intp n = PyArray_SIZE(*words), size = PyArray_ITEMSIZE(*words);
    /* every word may yield 12 events (EVT3 VECT_12); offsets must fit an int64 */
    if (*first < 0 || n > NPY_MAX_INTP / 16 || *first > INT64_MAX - (int64_t)n * size) {
        PyErr_SetString(PyExc_ValueError, "first_offset or the word count is out of range");
        return 0;
    }
    if (a->width < 0 || a->height < 0) {
        PyErr_SetString(PyExc_ValueError, "the sensor size must not be negative");
        return 0;
    }
    a->state = (int64_t *)PyArray_DATA(s);
    return 1;
}

/* The events' array, their offsets' (when asked for) and the sink that fills them. */
static int decode_out(decode_args_t *a, npy_intp count, PyArrayObject **ev,
                      PyArrayObject **offsets, sink_t *sink)
{
    *offsets = NULL;
    if ((*ev = new_events(a->dtype, count)) == NULL)
        return 0;
    if (a->offsets) {
        *offsets = (PyArrayObject *)PyArray_SimpleNew(1, &count, NPY_INT64);
        if (*offsets == NULL) {
            Py_DECREF(*ev);
            return 0;
        }
    }
    int sized = a->width > 0 && a->height > 0;
    *sink = (sink_t){(event_t *)PyArray_DATA(*ev),
                     *offsets ? (int64_t *)PyArray_DATA(*offsets) : NULL, 0, a->last,
                     sized && a->width < 65536 ? (uint32_t)a->width : 65536,
                     sized && a->height < 65536 ? (uint32_t)a->height : 65536, 0};
    return 1;
}

/* (events, offsets or None, unknown words, index of the first, clean): clean when no word
 * is unknown, no time goes back and every event is inside the sensor. */
static PyObject *decoded(PyArrayObject *ev, PyArrayObject *offsets, npy_intp unknown,
                         npy_intp first_unknown, const sink_t *sink)
{
    PyObject *off = offsets ? (PyObject *)offsets : Py_NewRef(Py_None);
    return Py_BuildValue("(NNnnO)", (PyObject *)ev, off, (Py_ssize_t)unknown,
                         (Py_ssize_t)first_unknown,
                         unknown == 0 && !sink->bad ? Py_True : Py_False);
}

/* Types 0x0 CD_OFF, 0x1 CD_ON, 0x8 TIME_HIGH, 0xA EXT_TRIGGER, 0xE OTHERS, 0xF CONTINUED */
#define EVT2_KNOWN ((1u << 0x0) | (1u << 0x1) | (1u << 0x8) | (1u << 0xA) | (1u << 0xE) | (1u << 0xF))

PyObject *k_evt2_decode(PyObject *self, PyObject *args)
{
    decode_args_t a;
    if (!decode_args(args, NPY_UINT32, 1, &a))
        return NULL;
    PyArrayObject *w = a.words;
    int64_t *state = a.state;
    const int64_t first = a.first;
    const uint32_t *words = (const uint32_t *)PyArray_DATA(w);
    npy_intp n = PyArray_SIZE(w), count = 0, unknown = 0, first_unknown = -1;
    for (npy_intp start = 0; start < n; start += 1 << 20) {
        npy_intp end = n - start < 1 << 20 ? n : start + (1 << 20);
        uint32_t cd = 0, known = 0; /* a loop the compiler vectorizes */
        for (npy_intp i = start; i < end; i++) {
            uint32_t kind = words[i] >> 28;
            cd += kind <= 1;
            known += (uint32_t)(kind <= 1) + (kind == 0x8) + (kind == 0xA) + (kind >= 0xE);
        }
        count += cd, unknown += (end - start) - known;
    }
    for (npy_intp i = 0; unknown && i < n; i++) {
        if (!((EVT2_KNOWN >> (words[i] >> 28)) & 1u)) {
            first_unknown = i;
            break;
        }
    }
    PyArrayObject *ev, *offsets;
    sink_t sink;
    if (!decode_out(&a, count, &ev, &offsets, &sink))
        return NULL;
    uint64_t high = (uint64_t)state[0];
    PyThreadState *gil = n > GIL_FREE_ABOVE ? PyEval_SaveThread() : NULL;
    if (sink.off != NULL) {
        for (npy_intp i = 0; i < n; i++) {
            uint32_t v = words[i], kind = v >> 28;
            if (kind <= 1)
                emit(&sink, (int64_t)((high << 6) | ((v >> 22) & 0x3F)),
                     (uint16_t)((v >> 11) & 0x7FF), (uint16_t)(v & 0x7FF), kind,
                     first + 4 * (int64_t)i);
            else if (kind == 0x8)
                high = v & 0x0FFFFFFF;
        }
    } else { /* the same without offsets, in locals: the reader's usual call */
        event_t *out = sink.out;
        npy_intp k = 0;
        int64_t prev = sink.prev;
        uint32_t max_x = 0, max_y = 0;
        int back = 0;
        for (npy_intp i = 0; i < n; i++) {
            uint32_t v = words[i], kind = v >> 28;
            if (kind <= 1) {
                int64_t t = (int64_t)((high << 6) | ((v >> 22) & 0x3F));
                uint32_t x = (v >> 11) & 0x7FF, y = v & 0x7FF;
                out[k++] = (event_t){t, (uint16_t)x, (uint16_t)y, kind};
                back |= t < prev;
                prev = t;
                max_x = x > max_x ? x : max_x;
                max_y = y > max_y ? y : max_y;
            } else if (kind == 0x8) {
                high = v & 0x0FFFFFFF;
            }
        }
        sink.k = k;
        sink.bad = back | (k > 0 && (max_x >= sink.width || max_y >= sink.height));
    }
    if (gil != NULL)
        PyEval_RestoreThread(gil);
    state[0] = (int64_t)high;
    return decoded(ev, offsets, unknown, first_unknown, &sink);
}

/* Reserved: 0x1, 0x9, 0xB, 0xC, 0xD */
#define EVT3_UNKNOWN ((1u << 0x1) | (1u << 0x9) | (1u << 0xB) | (1u << 0xC) | (1u << 0xD))
#define HIGH_RANGE 4096

/* The mask of the payload bits that are events, by word type: VECT_12 its 12 mask bits,
 * VECT_8 its low 8. */
static const uint16_t vector_mask[16] = {[0x4] = 0xFFF, [0x5] = 0xFF};

/* Events and unknown words among n EVT3 words, in a loop the compiler vectorizes (compares
 * and a SWAR bit count: x86-64's baseline has no popcnt). */
static void evt3_count(const uint16_t *words, npy_intp n, npy_intp *count, npy_intp *unknown)
{
    npy_intp events = 0, bad = 0;
    for (npy_intp start = 0; start < n; start += 1 << 16) {
        npy_intp end = n - start < 1 << 16 ? n : start + (1 << 16);
        uint32_t e = 0, b = 0; /* at most 13 x 2^16 */
        for (npy_intp i = start; i < end; i++) {
            uint32_t v = words[i], kind = v >> 12;
            uint32_t x = v & ((0xFFFu & -(uint32_t)(kind == 0x4)) |
                              (0xFFu & -(uint32_t)(kind == 0x5)));
            x = x - ((x >> 1) & 0x5555);
            x = (x & 0x3333) + ((x >> 2) & 0x3333);
            x = (x + (x >> 4)) & 0x0F0F;
            e += ((x + (x >> 8)) & 0x1F) + (kind == 0x2);
            b += (uint32_t)(kind == 0x1) + (kind == 0x9) + (kind == 0xB) + (kind == 0xC) + (kind == 0xD);
        }
        events += e, bad += b;
    }
    *count = events, *unknown = bad;
}

PyObject *k_evt3_decode(PyObject *self, PyObject *args)
{
    decode_args_t a;
    if (!decode_args(args, NPY_UINT16, 6, &a))
        return NULL;
    const uint16_t *words = (const uint16_t *)PyArray_DATA(a.words);
    int64_t *state = a.state;
    npy_intp n = PyArray_SIZE(a.words), count = 0, unknown = 0, first_unknown = -1;
    evt3_count(words, n, &count, &unknown);
    for (npy_intp i = 0; unknown && i < n; i++) {
        if ((EVT3_UNKNOWN >> (words[i] >> 12)) & 1u) {
            first_unknown = i;
            break;
        }
    }
    PyArrayObject *ev, *offsets;
    sink_t sink;
    if (!decode_out(&a, count, &ev, &offsets, &sink))
        return NULL;
    /* the decoder's state: y, time low, time high, wraps, vector base x, vector polarity;
     * unsigned arithmetic wraps as numpy's int64 does */
    uint64_t y = (uint64_t)state[0], low = (uint64_t)state[1], high = (uint64_t)state[2];
    uint64_t loops = (uint64_t)state[3], base = (uint64_t)state[4], pol = (uint64_t)state[5];
    uint64_t t = ((loops * HIGH_RANGE + high) << 12) | low;
    PyThreadState *gil = n > GIL_FREE_ABOVE ? PyEval_SaveThread() : NULL;
    for (npy_intp i = 0; i < n; i++) {
        unsigned v = words[i], kind = v >> 12, payload = v & 0xFFFu;
        int64_t at = a.first + 2 * (int64_t)i;
        switch (kind) {
        case 0x0: /* EVT_ADDR_Y */
            y = payload & 0x7FF;
            break;
        case 0x2: /* EVT_ADDR_X: one event */
            emit(&sink, (int64_t)t, (uint16_t)(payload & 0x7FF), (uint16_t)y, payload >> 11, at);
            break;
        case 0x3: /* VECT_BASE_X */
            base = payload & 0x7FF;
            pol = payload >> 11;
            break;
        case 0x4: /* VECT_12, VECT_8: an event at base + i for each set bit i of the mask */
        case 0x5:
            for (unsigned mask = payload & vector_mask[kind]; mask; mask &= mask - 1) {
                unsigned bit = (unsigned)__builtin_ctz(mask);
                emit(&sink, (int64_t)t, (uint16_t)(base + bit), (uint16_t)y, (uint32_t)pol, at);
            }
            base += kind == 0x4 ? 12 : 8;
            break;
        case 0x6: /* EVT_TIME_LOW */
            low = payload;
            t = ((loops * HIGH_RANGE + high) << 12) | low;
            break;
        case 0x8: /* EVT_TIME_HIGH: a fall of half the range or more is a wrap */
            loops += (int64_t)high - (int64_t)payload >= HIGH_RANGE / 2;
            high = payload;
            t = ((loops * HIGH_RANGE + high) << 12) | low;
            break;
        default:
            break;
        }
    }
    if (gil != NULL)
        PyEval_RestoreThread(gil);
    state[0] = (int64_t)y, state[1] = (int64_t)low, state[2] = (int64_t)high;
    state[3] = (int64_t)loops, state[4] = (int64_t)base, state[5] = (int64_t)pol;
    return decoded(ev, offsets, unknown, first_unknown, &sink);
}

/* frame_counts(held, events, bounds, table, sensor_w, sensor_h, split, pixels): frame f
 * counts the events bounds[f]:bounds[f+1] of held + events (one sequence, not copied)
 * per pixel, clipped to 255. A coordinate past the sensor is clipped to the table's last
 * column or row; a table entry (+ polarity when split) of `pixels` or more is outside
 * the frame and not counted. */
PyObject *k_frame_counts(PyObject *self, PyObject *args)
{
    PyObject *ho, *eo, *bo, *to;
    long long sw, sh, pixels;
    int split;
    if (!PyArg_ParseTuple(args, "OOOOLLpL", &ho, &eo, &bo, &to, &sw, &sh, &split, &pixels))
        return NULL;
    PyArrayObject *held = k_events(ho, 0, "held"), *ev = k_events(eo, 0, "events");
    PyArrayObject *bounds = k_array(bo, NPY_INT64, 1, 0, "bounds");
    PyArrayObject *table = k_array(to, NPY_INT32, 1, 0, "table");
    if (held == NULL || ev == NULL || bounds == NULL || table == NULL)
        return NULL;
    npy_intp nh = PyArray_SIZE(held), total = nh + PyArray_SIZE(ev);
    npy_intp frames = PyArray_SIZE(bounds) - 1;
    if (sw < 0 || sh < 0 || sw > 65535 || sh > 65535 || pixels < 0 || pixels > INT32_MAX ||
        PyArray_SIZE(table) != (npy_intp)((sw + 1) * (sh + 1))) {
        PyErr_SetString(PyExc_ValueError, "frame_counts: the sensor, table or pixels disagree");
        return NULL;
    }
    const int64_t *b = (const int64_t *)PyArray_DATA(bounds);
    if (frames < 0 || b[0] < 0 || b[frames] > total) {
        PyErr_SetString(PyExc_ValueError, "frame_counts: bounds outside the events");
        return NULL;
    }
    for (npy_intp f = 0; f < frames; f++) {
        if (b[f + 1] < b[f]) {
            PyErr_SetString(PyExc_ValueError, "frame_counts: bounds must not decrease");
            return NULL;
        }
    }
    npy_intp dims[2] = {frames, (npy_intp)pixels};
    PyArrayObject *out = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_UINT8, 0);
    if (out == NULL)
        return NULL;
    const event_t *parts[2] = {(const event_t *)PyArray_DATA(held),
                               (const event_t *)PyArray_DATA(ev)};
    const int32_t *tab = (const int32_t *)PyArray_DATA(table);
    uint8_t *counts = (uint8_t *)PyArray_DATA(out);
    const uint64_t width = (uint64_t)sw + 1, limit = (uint64_t)pixels;
    PyThreadState *gil = b[frames] - b[0] > GIL_FREE_ABOVE ? PyEval_SaveThread() : NULL;
    for (npy_intp f = 0; f < frames; f++, counts += pixels) {
        for (npy_intp j = b[f]; j < b[f + 1]; j++) {
            const event_t *e = j < nh ? &parts[0][j] : &parts[1][j - nh];
            uint64_t x = e->x < sw ? e->x : (uint64_t)sw, y = e->y < sh ? e->y : (uint64_t)sh;
            int64_t slot = tab[y * width + x];
            if (split)
                slot += (e->p & 0xFF) != 0;
            if (slot >= 0 && (uint64_t)slot < limit)
                counts[slot] += counts[slot] != 255;
        }
    }
    if (gil != NULL)
        PyEval_RestoreThread(gil);
    return (PyObject *)out;
}
