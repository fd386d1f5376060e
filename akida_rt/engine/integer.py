"""The integer engine: executes Akida layers bit-exactly on the host CPU.

Activations travel between layers as float32 arrays holding small integers, so every
convolution is one BLAS product; the accumulator dtype (float32 or float64) is chosen per
layer from a bound on |accumulator| so that every partial sum is exact (docs/semantics.md).
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import numpy as np

from akida_rt.engine import blas
from akida_rt.errors import ModelError
from akida_rt.format.layer_params import LayerType, Padding, Pooling, pooled_size, same_padding
from akida_rt.format.layers import Layer
from akida_rt.native import _kernels

F32_EXACT = 2**24
F64_EXACT = 2**53
I64_LIMIT = 2**62
# Samples run through all layers together: their largest work buffer (_buffer_bytes, in
# float64 terms) stays about this size, so the im2col patches and activations one layer
# writes are still in this core's cache when its product and the next layer read them.
# Digits CNN at batch 100, one thread, interleaved in one run (benchmarks/engine_batch.py):
# runs of 6 to 14 samples took 10.7-11.0 ms of CPU, 21 samples 11.3, all 100 at once 20.1
# on a loaded machine (another process evicts a big buffer from the shared L3).
CHUNK_BYTES = 3 << 20


@dataclass
class LayerStats:
    """Event counts of one layer, summed over the frames it processed."""

    frames: int = 0
    input_events: int = 0
    output_events: int = 0
    synops: int = 0
    macs: int = 0
    # host time spent in this layer (software backend), ns; not compared: it is not a count
    time_ns: int = field(default=0, compare=False)

    @classmethod
    def of(cls, row: np.ndarray) -> LayerStats:
        """From one row of an Engine's counts (in the field order)."""
        return cls(*(int(v) for v in row))

    def as_dict(self) -> dict[str, float]:
        return {
            "frames": self.frames,
            "input_events": self.input_events,
            "output_events": self.output_events,
            "synops": self.synops,
            "macs": self.macs,
            "time_ms": self.time_ns / 1e6,
        }


def max_input_value(layer: Layer) -> int:
    return int(2**layer.input_bits - 1)


def accumulator_bound(layer: Layer) -> tuple[int, int]:
    """(bound on |accumulator| per output position, bound on |depthwise partial sum|)."""
    x = max_input_value(layer)
    bias = int(np.abs(layer.get_variable("bias").astype(np.int64)).max(initial=0))
    w = np.abs(layer.get_variable("weights").astype(np.int64))
    if layer.layer_type is LayerType.SeparableConv2D:
        dw = w.sum(axis=(0, 1))[:, 0] * x  # per input channel
        pw = np.abs(layer.get_variable("pointwise").astype(np.int64))[0, 0]
        return int((dw[:, None] * pw).sum(axis=0).max(initial=0)) + bias, int(dw.max(initial=0))
    per_filter = w.reshape(-1, w.shape[-1]).sum(axis=0) * x
    return int(per_filter.max(initial=0)) + bias, 0


def _accumulator_dtype(bound: int, where: str) -> type[np.floating]:
    if bound < F32_EXACT:
        return np.float32
    if bound < F64_EXACT:
        return np.float64
    raise ModelError(f"{where}: accumulator bound {bound} exceeds 2^53; reduce fan-in or bits")


@dataclass
class CompiledLayer:
    """A layer with its weights laid out for BLAS and its activation constants."""

    layer: Layer
    dtype: type[np.floating]
    matrix: np.ndarray  # (K, F) for conv/dense, (C, F) pointwise for separable
    depthwise: np.ndarray | None
    bias: np.ndarray | None  # repeated across one output row: (ow * F,)
    act_scale: np.ndarray | None = None  # float64 act_scale * 2^-shift (exact), per row
    act_offset: np.ndarray | None = None
    act_int: tuple[np.ndarray, np.ndarray] | None = None  # int64 fallback
    act_top: float = 0.0  # the largest activation level
    pad: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    pool_pad: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    out_hw: tuple[int, int] = (1, 1)  # convolution output (before pooling)
    pool_hw: tuple[int, int] = (1, 1)  # max pooling output
    macs: int = 0  # per sample
    fan_out: int = 0  # synapses an input event reaches
    # whether rule 2b's clip of each position can change a value: not when the accumulator
    # bound already lies inside the potential_bits range (the clip was 2% of a run)
    saturates: bool = True


def compile_layer(layer: Layer) -> CompiledLayer:
    """Prepare one validated layer for execution."""
    where = f"layer '{layer.name}'"
    if layer.layer_type is LayerType.InputData:
        return CompiledLayer(layer, np.float32, np.zeros((0, 0), np.float32), None, None)
    bound, dw_bound = accumulator_bound(layer)
    dtype = _accumulator_dtype(max(bound, dw_bound), where)
    w = layer.get_variable("weights")
    depthwise = None
    if layer.layer_type is LayerType.SeparableConv2D:
        depthwise = w[:, :, :, 0].astype(dtype)  # (k, k, C)
        matrix = layer.get_variable("pointwise")[0, 0].astype(dtype)  # (C, F)
    elif layer.layer_type is LayerType.FullyConnected:
        matrix = w.reshape(-1, w.shape[-1]).astype(dtype)
    else:
        # im2col below yields patches ordered (kh, kw, C), the HWCF kernel's own order.
        matrix = np.ascontiguousarray(w.reshape(-1, w.shape[-1]), dtype)
    assert layer.input_shape is not None
    h, wd, _ = layer.input_shape
    pad = ((0, 0), (0, 0))
    if layer.padding is Padding.Same and layer.layer_type is not LayerType.FullyConnected:
        k, s = layer.kernel_size, layer.stride
        _, t, b = same_padding(h, k, s)
        _, left, right = same_padding(wd, k, s)
        pad = ((t, b), (left, right))
    positions = 1
    oh, ow = layer.conv_output_hw()
    if layer.pooling is Pooling.GlobalAvg:
        positions = oh * ow
    # Per-channel constants repeat across a whole output row, so that numpy's inner loops
    # run ow * F long instead of F (3-4x fewer loop turns on 16-32 filter layers).
    bias_v = layer.get_variable("bias")
    bias = np.tile(bias_v.astype(dtype), ow) if np.any(bias_v) else None
    compiled = CompiledLayer(layer, dtype, matrix, depthwise, bias, pad=pad, out_hw=(oh, ow))
    if layer.pooling is Pooling.Max:
        k, s, how = layer.pool_size, layer.pool_stride, layer.pool_padding
        _, pt, pb = pooled_size(oh, k, s, how)
        _, pl, pr = pooled_size(ow, k, s, how)
        compiled.pool_pad = ((pt, pb), (pl, pr))
        compiled.pool_hw = layer.output_shape[:2]
    compiled.macs = _macs(layer, 1)
    bits = layer.potential_bits
    compiled.saturates = bool(bits) and bound > 2 ** (bits - 1) - 1
    compiled.fan_out = layer.fan_out
    if layer.activation:
        compiled.act_top = float(2**layer.activation_bits - 1)
        scale = layer.get_variable("act_scale").astype(np.int64)
        offset = layer.get_variable("act_offset").astype(np.int64)
        # Python ints: np.abs(-2**63) overflows int64 to a negative bound.
        largest_offset = max(-int(offset.min(initial=0)), int(offset.max(initial=0)))
        top = bound * positions * int(scale.max()) + largest_offset
        if top < F64_EXACT:
            step = 2.0 ** (-layer.act_shift)
            row = layer.output_shape[1]  # activations follow pooling
            compiled.act_scale = np.tile(scale.astype(np.float64) * step, row)
            compiled.act_offset = np.tile(offset.astype(np.float64) * step, row)
        elif top < I64_LIMIT:
            compiled.act_int = (scale, offset)
        else:
            raise ModelError(f"{where}: act_scale too large; |acc*scale+offset| may exceed 2^62")
    return compiled


def _conv(c: CompiledLayer, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Convolution accumulators (N, oh, ow, F) and, for separable layers, depthwise events."""
    layer = c.layer
    n = x.shape[0]
    (t, b), (lft, r) = c.pad
    k, s = layer.kernel_size, layer.stride
    oh, ow = c.out_hw
    dw_events = 0
    if c.depthwise is not None:
        if t or b or lft or r:  # np.pad costs ~50 us a call, np.full 1.7, np.zeros 0.6
            h, w = x.shape[1:3]
            padded = np.zeros((n, h + t + b, w + lft + r, x.shape[3]), x.dtype)
            if layer.padding_value:
                padded.fill(layer.padding_value)
            padded[:, t : t + h, lft : lft + w] = x
            x = padded
        acc = np.zeros((n, oh, ow, x.shape[3]), c.dtype)
        for i in range(k):
            for j in range(k):
                win = x[:, i : i + (oh - 1) * s + 1 : s, j : j + (ow - 1) * s + 1 : s, :]
                acc += win * c.depthwise[i, j]
        dw_events = events(acc)
        flat = acc.reshape(-1, acc.shape[3])
    elif k == 1 and s == 1 and not (t or b or lft or r):
        flat = x.reshape(-1, x.shape[3])
    else:
        # the padded windows as (N * oh * ow, kh * kw * C) rows, in the HWCF kernel's order
        # (akida_rt.native._kernels.im2col: one pass, where numpy copied twice)
        x = np.ascontiguousarray(x)
        flat = _kernels.im2col(x, k, s, t, lft, oh, ow, float(layer.padding_value))
    out = flat @ c.matrix
    return out.reshape(n, oh, ow, -1), dw_events


def _max_pool(c: CompiledLayer, acc: np.ndarray) -> np.ndarray:
    """Max over pool_size windows pool_stride apart; padded positions never win
    (akida_rt.native._kernels.max_pool)."""
    layer = c.layer
    (t, _), (lft, _) = c.pool_pad
    oh, ow = c.pool_hw
    return _kernels.max_pool(acc, layer.pool_size, layer.pool_stride, t, lft, oh, ow)


def _activate(c: CompiledLayer, acc: np.ndarray) -> tuple[np.ndarray, int]:
    """The activation levels (float32) and how many are non-zero: floor(clip(acc *
    act_scale + act_offset, 0, top)), in float64 (akida_rt.native._kernels.activate: one pass
    where numpy makes five)."""
    top = c.act_top
    if c.act_scale is not None:
        assert c.act_offset is not None
        return _kernels.activate(acc, c.act_scale, c.act_offset, top)
    assert c.act_int is not None
    scale, offset = c.act_int
    iv = acc.astype(np.int64) * scale + offset
    iv >>= c.layer.act_shift
    y = np.clip(iv, 0, int(top)).astype(np.float32)
    return y, events(y)


def _macs(layer: Layer, n: int) -> int:
    kh, kw, cin, f = layer.kernel_shape() or (1, 1, 1, 1)
    oh, ow = layer.conv_output_hw()
    if layer.layer_type is LayerType.SeparableConv2D:
        return n * oh * ow * cin * (kh * kw + layer.filters)
    return n * oh * ow * kh * kw * cin * f


def _buffer_bytes(layer: Layer) -> int:
    """Bytes of the largest work buffer (im2col or float64 activation) of one sample."""
    h, w = layer.conv_output_hw()
    return h * w * max(layer.fan_in, layer.output_channels) * 8


def potentials(c: CompiledLayer, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Accumulators after bias and global pooling (before activation and max pooling)."""
    layer = c.layer
    xin = x if x.dtype == c.dtype else x.astype(c.dtype)
    dw_events = 0
    if layer.layer_type is LayerType.FullyConnected:
        acc = (xin.reshape(x.shape[0], -1) @ c.matrix).reshape(x.shape[0], 1, 1, -1)
    else:
        acc, dw_events = _conv(c, xin)
    if c.bias is not None:
        rows = acc.reshape(-1, c.bias.shape[0])
        rows += c.bias
    bits = layer.potential_bits
    if layer.pooling is Pooling.GlobalAvg:
        acc = (
            _saturating_sum(acc, bits)
            if bits
            else acc.sum(axis=(1, 2), keepdims=True, dtype=np.float64)
        )
    elif bits and c.saturates:  # rule 2b: every position saturates
        acc.clip(-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1, out=acc)
    return acc, dw_events


def _saturating_sum(acc: np.ndarray, bits: int) -> np.ndarray:
    """Rule 2b's global sum: positions added in row-major order, each addition clamped to
    the signed `bits` range (float64 holds every partial sum exactly)."""
    lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    total = np.zeros((acc.shape[0], 1, 1, acc.shape[3]), np.float64)
    for i in range(acc.shape[1]):
        for j in range(acc.shape[2]):
            total += acc[:, i : i + 1, j : j + 1]
            total.clip(lo, hi, out=total)
    return total


def events(x: np.ndarray) -> int:
    """The non-zero values of x (floats by akida_rt.native._kernels.count_nonzero: numpy's
    count_nonzero on float32 is scalar code)."""
    if x.dtype.kind in "biu":
        return int(np.count_nonzero(x))
    return _kernels.count_nonzero(np.ascontiguousarray(x))


def run_layer(
    c: CompiledLayer, x: np.ndarray, in_events: int
) -> tuple[np.ndarray, tuple[int, int, int, int, int]]:
    """Run one compiled layer on float32 NHWC integer values with `in_events` non-zero
    ones (the previous layer's output events): (outputs, their counts in LayerStats'
    field order)."""
    layer = c.layer
    n = x.shape[0]
    if layer.layer_type is LayerType.InputData:
        return x, (n, in_events, in_events, 0, 0)
    acc, dw_events = potentials(c, x)
    # SynOps: every input event reaches fan_out synapses; in a separable layer every
    # non-zero depthwise result then reaches the pointwise filters.
    synops = in_events * c.fan_out + dw_events * layer.filters
    if layer.pooling is Pooling.Max:
        # Pooling the potentials first equals pooling the activations (the activation is
        # non-decreasing in acc) and leaves fewer values to activate.
        acc = _max_pool(c, acc)
    if layer.activation:
        y, out_events = _activate(c, acc)
    else:
        y, out_events = acc, events(acc)
    return y, (n, in_events, out_events, synops, c.macs * n)


@functools.cache
def _helper() -> ThreadPoolExecutor:
    """The thread that runs half of a big batch on a spare core (blas.spare_core)."""
    return ThreadPoolExecutor(1, thread_name_prefix="akida-engine")


# A forked child has no helper thread, only the executor that held it: it makes its own.
os.register_at_fork(after_in_child=_helper.cache_clear)


class Engine:
    """Executes a validated chain of layers; compiled once, reused per batch."""

    def __init__(self, layers: list[Layer]) -> None:
        self.compiled = [compile_layer(layer) for layer in layers]
        self.versions = [layer.version for layer in layers]
        self.counts = np.zeros((len(layers), len(fields(LayerStats))), np.int64)
        self.macs_per_sample = sum(_macs(layer, 1) for layer in layers)
        self.chunk = max(1, CHUNK_BYTES // max(map(_buffer_bytes, layers)))  # samples a run

    def update(self, layers: list[Layer]) -> None:
        """Recompile the layers changed since they were compiled (the same layers, in the
        same order; an edge-learning fit changes the last one's weights) and reset the
        counts, as a new engine would."""
        assert [c.layer for c in self.compiled] == layers
        for i, layer in enumerate(layers):
            if layer.version != self.versions[i]:
                self.compiled[i], self.versions[i] = compile_layer(layer), layer.version
        self.macs_per_sample = sum(_macs(layer, 1) for layer in layers)
        self.chunk = max(1, CHUNK_BYTES // max(map(_buffer_bytes, layers)))
        self.counts[:] = 0

    def run(self, x: np.ndarray, stop: int | None = None) -> np.ndarray:
        """Run uint8 NHWC (or float32 integer values) through the layers (up to `stop`,
        a slice end), about `chunk` samples at a time, half of a big batch on a spare core.

        Returns float32 integer values (activations) or, for a final layer without
        activation, the raw potentials (float32 or float64, integer valued).
        """
        compiled = self.compiled[:stop]
        n = x.shape[0]
        with blas.one_thread():
            if n > 1 and blas.spare_core(self.macs_per_sample * n):
                half = _helper().submit(_run_chunks, compiled, x[: n // 2], self.chunk)
                rest = _run_chunks(compiled, x[n // 2 :], self.chunk)
                parts = half.result() + rest
            else:
                parts = _run_chunks(compiled, x, self.chunk)
        for _, counts in parts:
            if counts:  # run(x, stop=0) runs no layer
                self.counts[: len(counts)] += counts
        outputs = [y for y, _ in parts]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def stats(self) -> list[LayerStats]:
        """Each layer's counts since the engine was built or reset."""
        return [LayerStats.of(row) for row in self.counts]

    def reset_stats(self) -> None:
        self.counts[:] = 0


def _run_chunks(
    compiled: list[CompiledLayer], x: np.ndarray, chunk: int
) -> list[tuple[np.ndarray, list[tuple[int, int, int, int, int, int]]]]:
    """_run on x in runs of equal size, at most `chunk` samples each (100 samples, chunk
    21: five runs of 20, not four of 21 and one of 16)."""
    runs = max(1, -(-x.shape[0] // chunk))
    size = max(1, -(-x.shape[0] // runs))
    return [_run(compiled, x[i : i + size]) for i in range(0, max(x.shape[0], 1), size)]


def _run(
    compiled: list[CompiledLayer], x: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int, int]]]:
    """Outputs of `compiled` on x, with each layer's counts (added by the caller, once)."""
    in_events = events(x)  # on the uint8 input, before it becomes float32
    y = x.astype(np.float32) if x.dtype != np.float32 else x
    counts = []
    for c in compiled:
        start = time.perf_counter_ns()
        y, row = run_layer(c, y, in_events)
        counts.append((*row, time.perf_counter_ns() - start))
        in_events = row[2]
    return y, counts
