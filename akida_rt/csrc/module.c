/* akida_rt.native._kernels: the module table and the argument checks every kernel uses. */
#define KERNELS_MODULE
#include "kernels.h"

PyArrayObject *k_array(PyObject *obj, int typenum, int ndim, int writable, const char *what)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy array, got %s", what,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (typenum != NPY_NOTYPE && PyArray_TYPE(a) != typenum) {
        PyErr_Format(PyExc_TypeError, "%s: expected numpy type number %d, got %d", what,
                     typenum, PyArray_TYPE(a));
        return NULL;
    }
    if (ndim >= 0 && PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d dimensions, got %d", what, ndim,
                     PyArray_NDIM(a));
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous aligned array", what);
        return NULL;
    }
    if (writable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: the array is read-only", what);
        return NULL;
    }
    return a;
}

PyArrayObject *k_events(PyObject *obj, int writable, const char *what)
{
    PyArrayObject *a = k_array(obj, NPY_VOID, 1, writable, what);
    if (a != NULL && PyArray_ITEMSIZE(a) != EVENT_SIZE) {
        PyErr_Format(PyExc_TypeError, "%s: expected %d-byte events, got %d-byte items", what,
                     EVENT_SIZE, (int)PyArray_ITEMSIZE(a));
        return NULL;
    }
    return a;
}

static PyMethodDef methods[] = {
    {"evt2_decode", k_evt2_decode, METH_VARARGS,
     "evt2_decode(words <u4, state int64[1], event_dtype, first_offset, width, height, "
     "last_t, offsets) -> (events, byte offsets or None, unknown words, index of the first, "
     "clean)"},
    {"evt3_decode", k_evt3_decode, METH_VARARGS,
     "evt3_decode(words <u2, state int64[6], event_dtype, first_offset, width, height, "
     "last_t, offsets) -> (events, byte offsets or None, unknown words, index of the first, "
     "clean)"},
    {"aedat4_unpack", k_aedat4_unpack, METH_VARARGS,
     "aedat4_unpack(packet, lz4, scratch) -> (offset, count) of the packet's 16-byte dv events "
     "in scratch (lz4: the LZ4 frame decoded there) or in the packet"},
    {"aedat4_events", k_aedat4_events, METH_VARARGS,
     "aedat4_events(src, offset, count, out, at, last_t) -> the last t, or None when a time "
     "goes back: dv events src[offset:] written to out[at:at + count] as EVENT_DTYPE"},
    {"aedat4_walk", k_aedat4_walk, METH_VARARGS,
     "aedat4_walk(buf, lo, hi, stream_id, kind, scratch, out, at, last_t) -> (lo, at, last_t, "
     "packets, events, stop, pending offset, pending count): the complete packets of "
     "buf[lo:hi] decoded into out[at:] until out is full or a packet needs the reader"},
    {"frame_counts", k_frame_counts, METH_VARARGS,
     "frame_counts(held, events, bounds int64, table int32, sensor_w, sensor_h, split, "
     "pixels) -> uint8 (frames, pixels)"},
    {"activate", k_activate, METH_VARARGS,
     "activate(acc f4|f8, scale f8[r], offset f8[r], top) -> (float32 levels, non-zero)"},
    {"max_pool", k_max_pool, METH_VARARGS,
     "max_pool(acc f4|f8 NHWC, k, s, pad_top, pad_left, oh, ow) -> pooled NHWC"},
    {"im2col", k_im2col, METH_VARARGS,
     "im2col(x f4|f8 NHWC, k, s, pad_top, pad_left, oh, ow, pad_value) -> patches "
     "(N*oh*ow, k*k*C)"},
    {"count_nonzero", k_count_nonzero, METH_VARARGS,
     "count_nonzero(x f4|f8) -> the number of non-zero values"},
    {"learn", k_learn, METH_VARARGS,
     "learn(weights u1 (K,U), swaps i4 (U), spikes u1 (N,K), labels i8 (N), out i8 (N,U), "
     "(num_weights, num_classes, min_swaps, decay_swaps, bar)) -> None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "akida_rt.native._kernels",
    "The loops numpy cannot make fast; see akida_rt/csrc/ and docs/architecture.md.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__kernels(void)
{
    import_array();
    return PyModule_Create(&module);
}
