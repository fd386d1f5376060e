/* akida_rt.native._kernels: the loops numpy cannot make fast (event decoding and framing, AEDAT4 packets, the
 * engine's element-wise steps, the edge-learning step). Shared declarations.
 *
 * Every kernel checks its arguments' types, shapes, contiguity and writability, and every
 * index it derives from file or client bytes, before it touches memory; a bad argument is
 * a Python exception, never a read or write out of bounds. */
#ifndef AKIDA_RT_KERNELS_H
#define AKIDA_RT_KERNELS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL akida_rt_kernels_ARRAY_API
#ifndef KERNELS_MODULE
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "akida_rt.native._kernels reads little-endian event words and writes EVENT_DTYPE in place"
#endif

/* akida_rt.stream.events.EVENT_DTYPE (align=True): t <i8 at 0, x <u2 at 8, y <u2 at 10,
 * p u1 at 12, 3 padding bytes (written as zero with p). */
typedef struct {
    int64_t t;
    uint16_t x, y;
    uint32_t p;
} event_t;

#define EVENT_SIZE 16

/* Run `stmt` without the GIL when the work is big (numpy does the same), so that the
 * engine's helper thread and a stream's reader thread overlap with this one; `stmt`
 * touches only arrays the caller holds and calls no Python API. */
#define GIL_FREE_ABOVE (1 << 14)
#define WITHOUT_GIL_IF(big, stmt)                                                           \
    do {                                                                                    \
        if (big) {                                                                          \
            Py_BEGIN_ALLOW_THREADS stmt;                                                    \
            Py_END_ALLOW_THREADS                                                            \
        } else {                                                                            \
            stmt;                                                                           \
        }                                                                                   \
    } while (0)

/* A C-contiguous, aligned array of `typenum` (NPY_NOTYPE: any) with `ndim` dimensions
 * (-1: any), writable when asked; NULL with TypeError/ValueError naming `what`. */
PyArrayObject *k_array(PyObject *obj, int typenum, int ndim, int writable, const char *what);
/* An EVENT_DTYPE-sized structured array (1-D, void, 16-byte items). */
PyArrayObject *k_events(PyObject *obj, int writable, const char *what);

PyObject *k_evt2_decode(PyObject *self, PyObject *args);
PyObject *k_evt3_decode(PyObject *self, PyObject *args);
/* Little-endian reads at any alignment. */
static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* An LZ4 frame src[0:n] decoded into dst[0:cap] (lz4.c); *len is its size. NULL or what is
 * wrong: LZ4_TOO_BIG when it does not fit. */
const char *lz4_frame(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *len);
extern const char LZ4_TOO_BIG[];

PyObject *k_aedat4_unpack(PyObject *self, PyObject *args);
PyObject *k_aedat4_events(PyObject *self, PyObject *args);
PyObject *k_aedat4_walk(PyObject *self, PyObject *args);
PyObject *k_frame_counts(PyObject *self, PyObject *args);
PyObject *k_activate(PyObject *self, PyObject *args);
PyObject *k_max_pool(PyObject *self, PyObject *args);
PyObject *k_im2col(PyObject *self, PyObject *args);
PyObject *k_count_nonzero(PyObject *self, PyObject *args);
PyObject *k_learn(PyObject *self, PyObject *args);

#endif
