"""A plain int64 reference of the integer semantics in docs/semantics.md, written
independently of akida_rt.engine.integer (loops over kernel offsets and int64 einsum)."""

from __future__ import annotations

import numpy as np

from akida_rt.format.layer_params import LayerType, Padding, Pooling
from akida_rt.format.layers import Layer


def _pads(size: int, k: int, s: int, padding: Padding) -> tuple[int, int, int]:
    if padding is Padding.Valid:
        return (size - k) // s + 1, 0, 0
    out = (size + s - 1) // s
    total = max(0, (out - 1) * s + k - size)
    return out, total // 2, total - total // 2


def reference_layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.int64)
    t = layer.layer_type
    if t is LayerType.InputData:
        return x
    n = x.shape[0]
    w = layer.get_variable("weights").astype(np.int64)
    if t is LayerType.FullyConnected:
        acc = (x.reshape(n, -1) @ w.reshape(-1, w.shape[-1])).reshape(n, 1, 1, -1)
    else:
        k, s = layer.kernel_size, layer.stride
        oh, pt, pb = _pads(x.shape[1], k, s, layer.padding)
        ow, pl, pr = _pads(x.shape[2], k, s, layer.padding)
        xp = np.full(
            (n, x.shape[1] + pt + pb, x.shape[2] + pl + pr, x.shape[3]),
            layer.padding_value,
            np.int64,
        )
        xp[:, pt : pt + x.shape[1], pl : pl + x.shape[2]] = x
        if t is LayerType.SeparableConv2D:
            d = np.zeros((n, oh, ow, x.shape[3]), np.int64)
        else:
            acc = np.zeros((n, oh, ow, w.shape[-1]), np.int64)
        for i in range(k):
            for j in range(k):
                patch = xp[:, i : i + s * oh : s, j : j + s * ow : s, :][:, :oh, :ow]
                if t is LayerType.SeparableConv2D:
                    d += patch * w[i, j, :, 0]
                else:
                    acc += np.einsum("nhwc,cf->nhwf", patch, w[i, j])
        if t is LayerType.SeparableConv2D:
            pw = layer.get_variable("pointwise").astype(np.int64)[0, 0]
            acc = np.einsum("nhwc,cf->nhwf", d, pw)
    acc = acc + layer.get_variable("bias").astype(np.int64)
    if layer.pooling is Pooling.GlobalAvg:
        acc = acc.sum(axis=(1, 2), keepdims=True)
    if layer.activation:
        scale = layer.get_variable("act_scale").astype(object)
        offset = layer.get_variable("act_offset").astype(object)
        v = acc.astype(object) * scale + offset  # Python ints: no overflow at all
        v = np.vectorize(lambda e: e >> layer.act_shift, otypes=[object])(v)
        out = np.clip(v.astype(np.int64), 0, 2**layer.activation_bits - 1)
    else:
        out = acc
    if layer.pooling is Pooling.Max:
        out = _max_pool(out, layer.pool_size, layer.pool_stride, layer.pool_padding)
    return out


def _max_pool(y: np.ndarray, k: int, s: int, padding: Padding) -> np.ndarray:
    """Max over every k x k window (padding cells excluded), one output cell at a time."""
    oh, pt, _ = _pads(y.shape[1], k, s, padding)
    ow, pl, _ = _pads(y.shape[2], k, s, padding)
    out = np.zeros((y.shape[0], oh, ow, y.shape[3]), np.int64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = max(i * s - pt, 0), max(j * s - pl, 0)
            r1, c1 = min(i * s - pt + k, y.shape[1]), min(j * s - pl + k, y.shape[2])
            out[:, i, j] = y[:, r0:r1, c0:c1].max(axis=(1, 2))
    return out


def reference_forward(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    y = x.astype(np.int64)
    for layer in layers:
        y = reference_layer(layer, y)
    return y
