"""akida_rt layers as BrainChip v1 layers (akd1000.decode.V1Layer): the parameters and
variables akida would hold for them, solved from akida_rt's integer rule set.

The one place the v1 form of a layer is computed: the AKD1000 compiler
(mapping/akd1000_compiler.py) compiles these, and `akida export` (tools/metatf_export.py)
sets them on akida's layers. A layer v1 cannot compute exactly is refused with the reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from akida_rt.akd1000.decode import V1Layer
from akida_rt.engine.integer import accumulator_bound
from akida_rt.errors import ConversionError
from akida_rt.format import v1_rules
from akida_rt.format.layer_params import LayerType, Padding, Pooling, pooled_size
from akida_rt.format.layers import Layer

INT32 = np.iinfo(np.int32)
V1_KINDS = {
    LayerType.InputData: "InputData",
    LayerType.InputConv2D: "InputConvolutional",
    LayerType.Conv2D: "Convolutional",
    LayerType.SeparableConv2D: "SeparableConvolutional",
    LayerType.FullyConnected: "FullyConnected",
}


def where_of(layer: Layer) -> str:
    return f"layer '{layer.name}' ({layer.type_name})"


def v1_layer(layer: Layer, is_last: bool) -> V1Layer:
    """`layer` (its input shape set) as akida's v1 layer: what tools.metatf.describe gives
    for the layer metatf_export makes of it (input_bits unset, as describe leaves them).

    Raises:
        ConversionError: v1 cannot represent the layer; the message names it and why.
    """
    where = where_of(layer)
    kind = V1_KINDS.get(layer.layer_type)
    if kind is None:
        raise ConversionError(f"{where}: no v1 layer of this type")
    if layer.input_shape is None:
        raise ConversionError(f"{where}: no input shape; validate the model first")
    h, w, c = (int(d) for d in layer.input_shape)
    shape = (h, w, c)
    if kind == "InputData":
        check_input_bits(layer, where)
        return V1Layer(kind, shape, input_bits=layer.input_bits)
    check_pooling(layer, where)
    check_saturation(layer, where)
    variables = v1_variables(layer, where, is_last)
    act_bits = layer.activation_bits if layer.activation else 1
    common: dict[str, Any] = dict(weights_bits=layer.weight_bits, activation=bool(layer.activation),
                  act_bits=act_bits, variables=variables)  # fmt: skip
    if kind == "FullyConnected":
        return V1Layer(kind, shape, layer.filters, **common)
    pool, size, pool_stride = "none", 1, 1
    if layer.pooling is Pooling.Max:
        pool, size, pool_stride = "max", layer.pool_size, layer.pool_stride
    elif layer.pooling is Pooling.GlobalAvg:
        pool = "average"
    padding = "same" if layer.padding is Padding.Same else "valid"
    padding_value = layer.padding_value if kind == "InputConvolutional" else 0
    return V1Layer(kind, shape, layer.filters, layer.kernel_size, layer.stride,
                   padding, padding_value, pool, size, pool_stride, **common)  # fmt: skip


def check_input_bits(layer: Layer, where: str) -> None:
    if layer.input_bits not in (1, 2, 4, 8):
        raise ConversionError(f"{where}: {layer.input_bits}-bit inputs; v1 takes 1, 2, 4, 8")


def check_pooling(layer: Layer, where: str) -> None:
    """v1 max pooling uses the convolution's padding."""
    if layer.pooling is not Pooling.Max or layer.pool_padding is layer.padding:
        return
    if not _same_pooling(layer):
        raise ConversionError(
            f"{where}: pooling padding {layer.pool_padding.name} differs from the "
            f"convolution's {layer.padding.name}; v1 pools with the convolution's padding"
        )


def _same_pooling(layer: Layer) -> bool:
    """True when max pooling reads the same windows under Same and Valid padding (same
    output size, nothing padded before the first window), as 2x2/2 on even sizes."""
    k, s = layer.pool_size, layer.pool_stride
    for n in layer.conv_output_hw():
        valid, same = pooled_size(n, k, s, Padding.Valid), pooled_size(n, k, s, Padding.Same)
        if valid[0] != same[0] or same[1] != 0:
            return False
    return True


def check_saturation(layer: Layer, where: str) -> None:
    """akida saturates FullyConnected and pooled potentials to 20 bits and nothing else
    (v1_rules.saturates): a layer that saturates otherwise is exported only when its
    potentials cannot reach 20 bits, where the two agree."""
    pooled = layer.pooling is not Pooling.NoPooling
    size = layer.pool_size if layer.pooling is Pooling.Max else 0
    v1 = v1_rules.POTENTIAL_BITS if v1_rules.saturates(layer.layer_type.value, pooled, size) else 0
    if layer.potential_bits == v1:
        return
    bound = accumulator_bound(layer)[0]
    if layer.pooling is Pooling.GlobalAvg:
        bound *= math.prod(layer.conv_output_hw())
    if bound >= 2 ** (v1_rules.POTENTIAL_BITS - 1):
        have = f"{layer.potential_bits}-bit" if layer.potential_bits else "unsaturated"
        want = f"{v1}-bit" if v1 else "unsaturated"
        raise ConversionError(
            f"{where}: {have} potentials up to {bound:,}, where v1 has {want} ones; "
            "the exported model would differ"
        )


def v1_variables(layer: Layer, where: str, is_last: bool) -> dict[str, np.ndarray]:
    """akida's weights, weights_pw, threshold and act_step of `layer`."""
    t = layer.layer_type
    weights = layer.get_variable("weights")
    if t is LayerType.FullyConnected:
        assert layer.input_shape is not None
        h, w, c = layer.input_shape
        units = weights.shape[-1]
        cwh = weights.reshape(h, w, c, units).transpose(2, 1, 0, 3)
        weights = cwh.reshape(1, 1, h * w * c, units)
    elif t in (LayerType.Conv2D, LayerType.SeparableConv2D):
        weights = v1_rules.rotate_kernel(weights)
    out = {"weights": np.ascontiguousarray(weights.astype(np.int8))}
    if t is LayerType.SeparableConv2D:
        out["weights_pw"] = layer.get_variable("pointwise").astype(np.int8)
    if layer.activation:
        threshold, act_step = activation_v1(layer, where)
    elif is_last:
        threshold, act_step = dequantization_v1(layer, where)
    else:
        raise ConversionError(f"{where}: v1 layers without activation must be the last layer")
    out["threshold"], out["act_step"] = threshold, act_step
    return out


def activation_v1(layer: Layer, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(threshold int32, act_step float32) giving exactly the layer's activation in v1.

    The layer's levels are clip(floor((p a + b) / 2^k), 0, top); v1's are
    clip(ceil(16 (p - threshold) / S), 0, top) with S = floor(16 act_step) 2^(4 - bits).
    Both step up at integer potentials; level j starts at q_j + 1 with q_j computed from
    (a, b, k). v1 needs q_j = floor(threshold + (j - 1) S / 16) for every j: threshold
    = q_1 and S inside the intersection of one interval per level. Where the layer came
    from v1 (akida import), the S it was imported with is taken, so import(export(m))
    gives back the same variables.
    """
    bits, top = layer.activation_bits, 2**layer.activation_bits - 1
    scale = layer.get_variable("act_scale").astype(object)
    offset = layer.get_variable("act_offset").astype(object)
    k = layer.act_shift
    unit = 1 << (4 - bits) if bits <= 4 else None
    if unit is None:
        raise ConversionError(f"{where}: {bits}-bit activations; v1 has 1, 2 or 4")
    thresholds, steps = [], []
    for ch, (a, b) in enumerate(zip(scale, offset, strict=True)):
        # q_j: the largest potential still below level j (floor((j 2^k - b) / a) rounded up - 1).
        q = [-((b - (j << k)) // a) - 1 for j in range(1, top + 1)]
        lo, hi = 1, None
        for j in range(2, top + 1):
            d = q[j - 1] - q[0]
            lo = max(lo, -(-16 * d // (j - 1)))
            top_s = -(-16 * (d + 1) // (j - 1)) - 1
            hi = top_s if hi is None else min(hi, top_s)
        s = _pick_step(lo, hi, unit, a, k)
        if s is None:
            raise ConversionError(
                f"{where}: channel {ch}'s activation has no v1 equivalent (v1 steps are "
                f"multiples of 1/16 from an integer threshold); re-quantize the model for v1"
            )
        th = q[0]
        if not INT32.min <= th <= INT32.max:
            raise ConversionError(f"{where}: channel {ch}'s threshold {th} is outside int32")
        thresholds.append(th)
        steps.append((s // unit) / 16)
    return np.array(thresholds, np.int32), np.array(steps, np.float32)


def _pick_step(lo: int, hi: int | None, unit: int, a: int, k: int) -> int | None:
    """The v1 divisor S in [lo, hi], a multiple of `unit`: the one activation_params maps
    to the multiplier `a` when there is one, else the one nearest the layer's own step."""
    if hi is None:  # one level only: any S; the layer's own step keeps import(export) close
        near = max(unit, round(16 * (1 << k) / a / unit) * unit)
        lo, hi = near, near
    first = -(-lo // unit) * unit
    if first > hi:
        return None
    if a % 16 == 0:
        base = -(-(1 << k) // (a // 16))
        base -= base % unit
        for s in (base - unit, base, base + unit):
            if s > 0 and first <= s <= hi and 16 * -(-(1 << k) // s) == a:
                return s
    near = min(max(round(16 * (1 << k) / a / unit) * unit, first), hi - hi % unit)
    return near


def dequantization_v1(layer: Layer, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, act_step) of a last layer without activation from its output_scale and
    output_offset (predict = (p - threshold) / act_step); forward does not use them."""
    scale = layer.variables.get("output_scale")
    if scale is None:
        n = layer.filters
        return np.zeros(n, np.int32), np.ones(n, np.float32)
    offset = layer.get_variable("output_offset")
    step = (1.0 / np.asarray(scale, np.float64)).astype(np.float32)
    threshold = np.round(-np.asarray(offset, np.float64) * step.astype(np.float64))
    if np.any(np.abs(threshold) > INT32.max):
        raise ConversionError(f"{where}: output offset too large for a v1 threshold")
    return threshold.astype(np.int32), step
