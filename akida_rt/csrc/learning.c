/* The edge-learning step (akida_rt/engine/learning_rule.py states the rule and keeps its
 * pieces; docs/semantics.md, section 8): one pass over the binary weights per sample. */
#include "kernels.h"
#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

typedef struct {
    uint64_t key;
    int64_t index;
} ranked_t;

static int by_rank(const void *a, const void *b)
{
    const ranked_t *p = a, *q = b;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    return p->index < q->index ? -1 : p->index > q->index;
}

/* Set column `unit` of weights to `value` at `count` of the m candidate inputs: all of
 * them when count >= m, else those of lowest priority (ties: lower index). */
static void pick_and_set(uint8_t *weights, int64_t units, int64_t unit, const int64_t *cand,
                         int64_t m, int64_t count, uint64_t salt, int64_t stream,
                         ranked_t *scratch, uint8_t value)
{
    if (count <= 0)
        return;
    if (count >= m) {
        for (int64_t i = 0; i < m; i++)
            weights[cand[i] * units + unit] = value;
        return;
    }
    for (int64_t i = 0; i < m; i++) {
        uint64_t index = (uint64_t)cand[i] * 2 + (uint64_t)stream;
        scratch[i] = (ranked_t){mix64((index * GOLDEN) ^ salt), cand[i]};
    }
    qsort(scratch, (size_t)m, sizeof *scratch, by_rank);
    for (int64_t i = 0; i < count; i++)
        weights[scratch[i].index * units + unit] = value;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

PyObject *k_learn(PyObject *self, PyObject *args)
{
    PyObject *wo, *po, *so, *lo, *oo;
    long long num_weights, num_classes, min_swaps, decay_swaps, bar;
    if (!PyArg_ParseTuple(args, "OOOOO(LLLLL)", &wo, &po, &so, &lo, &oo, &num_weights,
                          &num_classes, &min_swaps, &decay_swaps, &bar))
        return NULL;
    PyArrayObject *w = k_array(wo, NPY_UINT8, 2, 1, "weights");
    PyArrayObject *p = k_array(po, NPY_INT32, 1, 1, "swaps");
    PyArrayObject *s = k_array(so, NPY_UINT8, 2, 0, "spikes");
    PyArrayObject *l = k_array(lo, NPY_INT64, 1, 0, "labels");
    PyArrayObject *o = k_array(oo, NPY_INT64, 2, 1, "out");
    if (w == NULL || p == NULL || s == NULL || l == NULL || o == NULL)
        return NULL;
    int64_t k = PyArray_DIM(w, 0), units = PyArray_DIM(w, 1), n = PyArray_DIM(s, 0);
    if (PyArray_SIZE(p) != units || PyArray_DIM(s, 1) != k || PyArray_SIZE(l) != n ||
        PyArray_DIM(o, 0) != n || PyArray_DIM(o, 1) != units) {
        PyErr_SetString(PyExc_ValueError, "learn: weights, swaps, spikes, labels and out "
                                          "disagree in shape");
        return NULL;
    }
    if (num_classes < 0 || num_weights < 0 || num_weights > (1 << 24) || min_swaps < 0 ||
        min_swaps > num_weights || decay_swaps < 0 || decay_swaps > num_weights || bar < 0 ||
        bar > num_weights) {
        PyErr_SetString(PyExc_ValueError, "learn: num_classes, num_weights, min_swaps, "
                                          "decay_swaps or the competition bar out of range");
        return NULL;
    }
    uint8_t *weights = (uint8_t *)PyArray_DATA(w);
    int32_t *swaps = (int32_t *)PyArray_DATA(p);
    const uint8_t *spikes = (const uint8_t *)PyArray_DATA(s);
    const int64_t *labels = (const int64_t *)PyArray_DATA(l);
    int64_t *out = (int64_t *)PyArray_DATA(o);
    int64_t *conn = malloc(sizeof(int64_t) * (size_t)(units ? units : 1));
    int64_t *adds = malloc(sizeof(int64_t) * (size_t)(k ? k : 1));
    int64_t *drops = malloc(sizeof(int64_t) * (size_t)(k ? k : 1));
    ranked_t *scratch = malloc(sizeof(ranked_t) * (size_t)(k ? k : 1));
    if (!conn || !adds || !drops || !scratch) {
        free(conn), free(adds), free(drops), free(scratch);
        return PyErr_NoMemory();
    }
    const char *error = NULL;
    for (int64_t i = 0; i < n && error == NULL; i++) {
        const uint8_t *active = spikes + i * k;
        int64_t *pot = out + i * units;
        memset(pot, 0, sizeof(int64_t) * (size_t)units);
        memset(conn, 0, sizeof(int64_t) * (size_t)units);
        for (int64_t r = 0; r < k; r++) {
            const uint8_t *row = weights + r * units;
            for (int64_t u = 0; u < units; u++)
                conn[u] += row[u];
            if (active[r])
                for (int64_t u = 0; u < units; u++)
                    pot[u] += row[u];
        }
        /* the neurons allowed to learn: all, or the label's group */
        int64_t g0 = 0, g1 = units;
        if (num_classes) {
            int64_t per = units / num_classes, label = labels[i];
            if (label < 0 || label >= num_classes) {
                error = "learn: a label is outside the learned classes";
                break;
            }
            g0 = label * per, g1 = g0 + per;
        }
        int64_t best = -1, fresh = -1;
        for (int64_t u = g0; u < g1; u++) {
            if (conn[u] > 0) {
                if (best < 0 || pot[u] > pot[best])
                    best = u;
            } else if (fresh < 0) {
                fresh = u;
            }
        }
        int64_t winner = best >= 0 && (fresh < 0 || pot[best] > bar) ? best : fresh;
        if (winner < 0) {
            error = "learn: the label's neuron group is empty";
            break;
        }
        int64_t level = swaps[winner];
        if (level < 0 || level > num_weights) {
            error = "learn: swaps outside 0..num_weights";
            break;
        }
        /* the salt: what the chip holds (the winner, its connections, the spikes) */
        uint64_t salt = mix64((uint64_t)winner + 1);
        int64_t nadds = 0, ndrops = 0;
        for (int64_t r = 0; r < k; r++) {
            int on = weights[r * units + winner] != 0;
            if (active[r])
                salt += mix64((uint64_t)r * 2 + 2);
            if (on)
                salt += mix64((uint64_t)r * 2 + 3);
            if (active[r] && !on)
                adds[nadds++] = r;
            else if (on && !active[r])
                drops[ndrops++] = r;
        }
        salt = mix64(salt);
        int64_t free_slots = num_weights - conn[winner];
        int64_t moves = min64(level, nadds);
        int64_t fill = min64(moves, free_slots > 0 ? free_slots : 0);
        int64_t nswaps = min64(moves - fill, ndrops);
        pick_and_set(weights, units, winner, adds, nadds, fill + nswaps, salt, 0, scratch, 1);
        pick_and_set(weights, units, winner, drops, ndrops, nswaps, salt, 1, scratch, 0);
        /* down by the step, to the floor (up to it, as BrainChip's rule, when below) */
        int64_t lowered = level - decay_swaps;
        swaps[winner] = (int32_t)(lowered > min_swaps ? lowered : min_swaps);
    }
    free(conn), free(adds), free(drops), free(scratch);
    if (error != NULL) {
        PyErr_SetString(PyExc_ValueError, error);
        return NULL;
    }
    Py_RETURN_NONE;
}
