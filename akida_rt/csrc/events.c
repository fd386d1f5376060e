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

/* The common arguments of both decoders; 0 with an exception set when they are bad. */
static int decode_args(PyObject *args, int typenum, npy_intp state_len, const char *name,
                       PyArrayObject **words, int64_t **state, PyObject **dtype,
                       long long *first)
{
    PyObject *wo, *so;
    if (!PyArg_ParseTuple(args, "OOOL", &wo, &so, dtype, first))
        return 0;
    if ((*words = k_array(wo, typenum, 1, 0, name)) == NULL)
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
    *state = (int64_t *)PyArray_DATA(s);
    return 1;
}

static PyObject *decoded(PyArrayObject *ev, PyArrayObject *offsets, npy_intp unknown,
                         npy_intp first_unknown)
{
    return Py_BuildValue("(NNnn)", (PyObject *)ev, (PyObject *)offsets, (Py_ssize_t)unknown,
                         (Py_ssize_t)first_unknown);
}

/* Types 0x0 CD_OFF, 0x1 CD_ON, 0x8 TIME_HIGH, 0xA EXT_TRIGGER, 0xE OTHERS, 0xF CONTINUED */
#define EVT2_KNOWN ((1u << 0x0) | (1u << 0x1) | (1u << 0x8) | (1u << 0xA) | (1u << 0xE) | (1u << 0xF))

PyObject *k_evt2_decode(PyObject *self, PyObject *args)
{
    PyArrayObject *w;
    int64_t *state;
    PyObject *dtype;
    long long first;
    if (!decode_args(args, NPY_UINT32, 1, "words", &w, &state, &dtype, &first))
        return NULL;
    const uint32_t *words = (const uint32_t *)PyArray_DATA(w);
    npy_intp n = PyArray_SIZE(w), count = 0, unknown = 0, first_unknown = -1;
    for (npy_intp i = 0; i < n; i++) {
        uint32_t kind = words[i] >> 28;
        count += kind <= 1;
        if (!((EVT2_KNOWN >> kind) & 1u)) {
            if (unknown++ == 0)
                first_unknown = i;
        }
    }
    PyArrayObject *ev = new_events(dtype, count);
    if (ev == NULL)
        return NULL;
    PyArrayObject *offsets = (PyArrayObject *)PyArray_SimpleNew(1, &count, NPY_INT64);
    if (offsets == NULL) {
        Py_DECREF(ev);
        return NULL;
    }
    event_t *out = (event_t *)PyArray_DATA(ev);
    int64_t *off = (int64_t *)PyArray_DATA(offsets);
    uint64_t high = (uint64_t)state[0];
    npy_intp k = 0;
    for (npy_intp i = 0; i < n; i++) {
        uint32_t v = words[i], kind = v >> 28;
        if (kind <= 1) {
            out[k].t = (int64_t)((high << 6) | ((v >> 22) & 0x3F));
            out[k].x = (uint16_t)((v >> 11) & 0x7FF);
            out[k].y = (uint16_t)(v & 0x7FF);
            out[k].p = kind;
            off[k++] = (int64_t)first + 4 * (int64_t)i;
        } else if (kind == 0x8) {
            high = v & 0x0FFFFFFF;
        }
    }
    state[0] = (int64_t)high;
    return decoded(ev, offsets, unknown, first_unknown);
}

/* Reserved: 0x1, 0x9, 0xB, 0xC, 0xD */
#define EVT3_UNKNOWN ((1u << 0x1) | (1u << 0x9) | (1u << 0xB) | (1u << 0xC) | (1u << 0xD))
#define HIGH_RANGE 4096

PyObject *k_evt3_decode(PyObject *self, PyObject *args)
{
    PyArrayObject *w;
    int64_t *state;
    PyObject *dtype;
    long long first;
    if (!decode_args(args, NPY_UINT16, 6, "words", &w, &state, &dtype, &first))
        return NULL;
    const uint16_t *words = (const uint16_t *)PyArray_DATA(w);
    npy_intp n = PyArray_SIZE(w), count = 0, unknown = 0, first_unknown = -1;
    for (npy_intp i = 0; i < n; i++) {
        unsigned kind = words[i] >> 12;
        switch (kind) {
        case 0x2: count += 1; break;
        case 0x4: count += __builtin_popcount(words[i] & 0xFFFu); break;
        case 0x5: count += __builtin_popcount(words[i] & 0xFFu); break;
        default:
            if ((EVT3_UNKNOWN >> kind) & 1u) {
                if (unknown++ == 0)
                    first_unknown = i;
            }
        }
    }
    PyArrayObject *ev = new_events(dtype, count);
    if (ev == NULL)
        return NULL;
    PyArrayObject *offsets = (PyArrayObject *)PyArray_SimpleNew(1, &count, NPY_INT64);
    if (offsets == NULL) {
        Py_DECREF(ev);
        return NULL;
    }
    event_t *out = (event_t *)PyArray_DATA(ev);
    int64_t *off = (int64_t *)PyArray_DATA(offsets);
    /* the decoder's state: y, time low, time high, wraps, vector base x, vector polarity;
     * unsigned arithmetic wraps as numpy's int64 does */
    uint64_t y = (uint64_t)state[0], low = (uint64_t)state[1], high = (uint64_t)state[2];
    uint64_t loops = (uint64_t)state[3], base = (uint64_t)state[4], pol = (uint64_t)state[5];
    uint64_t t = ((loops * HIGH_RANGE + high) << 12) | low;
    npy_intp k = 0;
    for (npy_intp i = 0; i < n; i++) {
        unsigned v = words[i], payload = v & 0xFFFu, mask;
        int64_t at = (int64_t)first + 2 * (int64_t)i;
        switch (v >> 12) {
        case 0x0: /* EVT_ADDR_Y */
            y = payload & 0x7FF;
            break;
        case 0x2: /* EVT_ADDR_X: one event */
            out[k] = (event_t){(int64_t)t, (uint16_t)(payload & 0x7FF), (uint16_t)y, payload >> 11};
            off[k++] = at;
            break;
        case 0x3: /* VECT_BASE_X */
            base = payload & 0x7FF;
            pol = payload >> 11;
            break;
        case 0x4: /* VECT_12 */
        case 0x5: /* VECT_8 */
            mask = (v >> 12) == 0x4 ? payload : payload & 0xFFu;
            while (mask) {
                unsigned bit = (unsigned)__builtin_ctz(mask);
                out[k] = (event_t){(int64_t)t, (uint16_t)(base + bit), (uint16_t)y, (uint32_t)pol};
                off[k++] = at;
                mask &= mask - 1;
            }
            base += (v >> 12) == 0x4 ? 12 : 8;
            break;
        case 0x6: /* EVT_TIME_LOW */
            low = payload;
            t = ((loops * HIGH_RANGE + high) << 12) | low;
            break;
        case 0x8: /* EVT_TIME_HIGH: a fall of half the range or more is a wrap */
            if ((int64_t)high - (int64_t)payload >= HIGH_RANGE / 2)
                loops++;
            high = payload;
            t = ((loops * HIGH_RANGE + high) << 12) | low;
            break;
        default:
            break;
        }
    }
    state[0] = (int64_t)y, state[1] = (int64_t)low, state[2] = (int64_t)high;
    state[3] = (int64_t)loops, state[4] = (int64_t)base, state[5] = (int64_t)pol;
    return decoded(ev, offsets, unknown, first_unknown);
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
    return (PyObject *)out;
}
