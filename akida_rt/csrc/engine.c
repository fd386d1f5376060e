/* The integer engine's element-wise steps (akida_rt/engine/integer.py): activation, max
 * pooling and event counting, one loop each where numpy makes several passes. */
#include "kernels.h"
#include <math.h>
#include <string.h>

static int float_array(PyArrayObject *a, const char *what)
{
    int t = PyArray_TYPE(a);
    if (t != NPY_FLOAT32 && t != NPY_FLOAT64) {
        PyErr_Format(PyExc_TypeError, "%s: expected float32 or float64", what);
        return 0;
    }
    return 1;
}

/* levels = floor(float32(clip(acc * scale + offset, 0, top))), scale and offset repeating
 * along the last `r` values; the same operations, in the same order and precision, as
 * the numpy form (float64 product and sum, the clip, a cast to float32, its floor), in a
 * loop the compiler vectorizes. */
#define ACTIVATE(T)                                                                         \
    do {                                                                                    \
        const T *a = (const T *)PyArray_DATA(acc);                                          \
        for (npy_intp i = 0; i < size; i += r) {                                            \
            for (npy_intp j = 0; j < r; j++) {                                              \
                double v = (double)a[i + j] * sc[j];                                        \
                v += of[j];                                                                 \
                v = v > 0.0 ? v : 0.0;                                                      \
                v = v < top ? v : top;                                                      \
                /* the floor of a float in 0..top < 2^31 is its truncation */               \
                float level = (float)(int32_t)(float)v;                                     \
                y[i + j] = level;                                                           \
                nonzero += level != 0.0f;                                                   \
            }                                                                               \
        }                                                                                   \
    } while (0)

PyObject *k_activate(PyObject *self, PyObject *args)
{
    PyObject *ao, *so, *oo;
    double top;
    if (!PyArg_ParseTuple(args, "OOOd", &ao, &so, &oo, &top))
        return NULL;
    PyArrayObject *acc = k_array(ao, NPY_NOTYPE, -1, 0, "acc");
    PyArrayObject *scale = k_array(so, NPY_FLOAT64, 1, 0, "scale");
    PyArrayObject *offset = k_array(oo, NPY_FLOAT64, 1, 0, "offset");
    if (acc == NULL || scale == NULL || offset == NULL || !float_array(acc, "acc"))
        return NULL;
    npy_intp size = PyArray_SIZE(acc), r = PyArray_SIZE(scale);
    if (!(top >= 0.0 && top < 2147483648.0)) {
        PyErr_SetString(PyExc_ValueError, "activate: top must be in 0..2^31-1");
        return NULL;
    }
    if (r == 0 || PyArray_SIZE(offset) != r || size % r != 0) {
        PyErr_SetString(PyExc_ValueError, "activate: scale and offset must divide acc's rows");
        return NULL;
    }
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(acc),
                                                            PyArray_DIMS(acc), NPY_FLOAT32);
    if (out == NULL)
        return NULL;
    const double *sc = (const double *)PyArray_DATA(scale);
    const double *of = (const double *)PyArray_DATA(offset);
    float *y = (float *)PyArray_DATA(out);
    npy_intp nonzero = 0;
    int f32 = PyArray_TYPE(acc) == NPY_FLOAT32;
    WITHOUT_GIL_IF(size > GIL_FREE_ABOVE, if (f32) ACTIVATE(float); else ACTIVATE(double));
    return Py_BuildValue("(Nn)", (PyObject *)out, (Py_ssize_t)nonzero);
}

/* out[n, i, j, c] = the max of acc[n, i*s - top + u, j*s - left + v, c] over the k x k
 * window's positions inside acc (padding never wins; a window of padding only is -inf).
 * Of equal values (+0 and -0) the last column's, then its last row's, wins, as in numpy's
 * np.maximum over rows, then over columns. */
#define MAX_POOL(T)                                                                         \
    do {                                                                                    \
        const T *a = (const T *)PyArray_DATA(acc);                                          \
        T *o = (T *)PyArray_DATA(out);                                                      \
        for (npy_intp b = 0; b < n; b++) {                                                  \
            for (npy_intp i = 0; i < oh; i++) {                                             \
                npy_intp r0 = i * s - pt, r1 = r0 + k;                                      \
                r0 = r0 < 0 ? 0 : r0, r1 = r1 > h ? h : r1;                                 \
                for (npy_intp j = 0; j < ow; j++, o += c) {                                 \
                    npy_intp c0 = j * s - pl, c1 = c0 + k;                                  \
                    c0 = c0 < 0 ? 0 : c0, c1 = c1 > w ? w : c1;                             \
                    for (npy_intp ch = 0; ch < c; ch++)                                     \
                        o[ch] = (T)-INFINITY;                                               \
                    for (npy_intp cc = c0; cc < c1; cc++) {                                 \
                        for (npy_intp rr = r0; rr < r1; rr++) {                             \
                            const T *in = a + ((b * h + rr) * w + cc) * c;                  \
                            for (npy_intp ch = 0; ch < c; ch++)                             \
                                o[ch] = o[ch] > in[ch] ? o[ch] : in[ch];                    \
                        }                                                                   \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    } while (0)

PyObject *k_max_pool(PyObject *self, PyObject *args)
{
    PyObject *ao;
    Py_ssize_t k, s, pt, pl, oh, ow;
    if (!PyArg_ParseTuple(args, "Onnnnnn", &ao, &k, &s, &pt, &pl, &oh, &ow))
        return NULL;
    PyArrayObject *acc = k_array(ao, NPY_NOTYPE, 4, 0, "acc");
    if (acc == NULL || !float_array(acc, "acc"))
        return NULL;
    npy_intp n = PyArray_DIM(acc, 0), h = PyArray_DIM(acc, 1), w = PyArray_DIM(acc, 2);
    npy_intp c = PyArray_DIM(acc, 3);
    /* bounds keep i*s - pt + k and friends far from overflow */
    if (k < 1 || s < 1 || pt < 0 || pl < 0 || oh < 0 || ow < 0 || k > 1 << 20 ||
        s > 1 << 20 || pt > 1 << 20 || pl > 1 << 20 || oh > 1 << 20 || ow > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "max_pool: bad pool size, stride, padding or output");
        return NULL;
    }
    npy_intp dims[4] = {n, oh, ow, c};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(4, dims, PyArray_TYPE(acc));
    if (out == NULL)
        return NULL;
    int f32 = PyArray_TYPE(acc) == NPY_FLOAT32;
    WITHOUT_GIL_IF(PyArray_SIZE(acc) > GIL_FREE_ABOVE,
                   if (f32) MAX_POOL(float); else MAX_POOL(double));
    return (PyObject *)out;
}

/* *a *= b, unless that overflows */
static int mul_ok(npy_intp *a, npy_intp b)
{
    if (b != 0 && *a > NPY_MAX_INTP / b)
        return 0;
    *a *= b;
    return 1;
}

/* The patches of a convolution (N * oh * ow, k * k * C), in the kernel's (kh, kw, C)
 * order, from NHWC x with `pad_value` around it (pad_top and pad_left before, as much as
 * the windows need after): one pass, where numpy pads a copy, then copies its windows. */
#define IM2COL(T)                                                                           \
    do {                                                                                    \
        const T *a = (const T *)PyArray_DATA(x);                                            \
        T *o = (T *)PyArray_DATA(out), pad = (T)pad_value;                                  \
        for (npy_intp b = 0; b < n; b++)                                                    \
            for (npy_intp i = 0; i < oh; i++)                                               \
                for (npy_intp j = 0; j < ow; j++)                                           \
                    for (npy_intp u = 0; u < k; u++, o += k * c) {                          \
                        npy_intp row = i * s - pt + u, col = j * s - pl;                    \
                        npy_intp lo = col < 0 ? -col : 0, hi = w - col < k ? w - col : k;   \
                        if (row < 0 || row >= h || hi <= lo)                                \
                            lo = hi = 0;                                                    \
                        for (npy_intp e = 0; e < lo * c; e++)                               \
                            o[e] = pad;                                                     \
                        if (hi > lo)                                                        \
                            memcpy(o + lo * c, a + ((b * h + row) * w + col + lo) * c,      \
                                   (size_t)((hi - lo) * c) * sizeof(T));                    \
                        for (npy_intp e = (hi > lo ? hi : 0) * c; e < k * c; e++)           \
                            o[e] = pad;                                                     \
                    }                                                                       \
    } while (0)

PyObject *k_im2col(PyObject *self, PyObject *args)
{
    PyObject *xo;
    Py_ssize_t k, s, pt, pl, oh, ow;
    double pad_value;
    if (!PyArg_ParseTuple(args, "Onnnnnnd", &xo, &k, &s, &pt, &pl, &oh, &ow, &pad_value))
        return NULL;
    PyArrayObject *x = k_array(xo, NPY_NOTYPE, 4, 0, "x");
    if (x == NULL || !float_array(x, "x"))
        return NULL;
    npy_intp n = PyArray_DIM(x, 0), h = PyArray_DIM(x, 1), w = PyArray_DIM(x, 2);
    npy_intp c = PyArray_DIM(x, 3);
    if (k < 1 || s < 1 || pt < 0 || pl < 0 || oh < 0 || ow < 0 || k > 1 << 10 ||
        s > 1 << 20 || pt > 1 << 20 || pl > 1 << 20 || oh > 1 << 20 || ow > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "im2col: bad kernel, stride, padding or output");
        return NULL;
    }
    npy_intp rows = n, cols = k * k, total;
    if (!mul_ok(&rows, oh) || !mul_ok(&rows, ow) || !mul_ok(&cols, c) ||
        !mul_ok((total = rows, &total), cols)) {
        PyErr_SetString(PyExc_ValueError, "im2col: the patches would not fit in memory");
        return NULL;
    }
    npy_intp dims[2] = {rows, cols};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, dims, PyArray_TYPE(x));
    if (out == NULL)
        return NULL;
    int f32 = PyArray_TYPE(x) == NPY_FLOAT32;
    WITHOUT_GIL_IF(total > GIL_FREE_ABOVE, if (f32) IM2COL(float); else IM2COL(double));
    return (PyObject *)out;
}

PyObject *k_count_nonzero(PyObject *self, PyObject *args)
{
    PyObject *xo;
    if (!PyArg_ParseTuple(args, "O", &xo))
        return NULL;
    PyArrayObject *x = k_array(xo, NPY_NOTYPE, -1, 0, "x");
    if (x == NULL || !float_array(x, "x"))
        return NULL;
    npy_intp size = PyArray_SIZE(x), nonzero = 0;
    if (PyArray_TYPE(x) == NPY_FLOAT32) {
        const float *v = (const float *)PyArray_DATA(x);
        for (npy_intp i = 0; i < size; i++)
            nonzero += v[i] != 0.0f;
    } else {
        const double *v = (const double *)PyArray_DATA(x);
        for (npy_intp i = 0; i < size; i++)
            nonzero += v[i] != 0.0;
    }
    return PyLong_FromSsize_t(nonzero);
}
