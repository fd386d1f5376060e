"""BrainChip Akida 1.0 (v1) conventions written in akida_rt's one integer rule set.

Pure numpy, no `akida` import: the importer (akida_rt.tools.metatf) reads a v1 model and
uses these functions to store it as akida_rt layers; docs/semantics.md, "BrainChip v1".
"""

from __future__ import annotations

import math

import numpy as np

from akida_rt.errors import ModelError
from akida_rt.format.layers import MAX_ACT_SHIFT, Layer, LayerType, Padding, Pooling

STEP_FRACTION_BITS = 4  # v1 keeps act_step with 4 fractional bits


def step_divisor(act_step: np.ndarray, bits: int) -> np.ndarray:
    """S = floor(16 * act_step) * 2^(4 - bits): the integer divisor of the v1 activation."""
    step = np.asarray(act_step, np.float32).astype(np.float64)
    return np.floor(step * 2**STEP_FRACTION_BITS).astype(np.int64) << (4 - bits)


def activation_params(
    threshold: np.ndarray, act_step: np.ndarray, bits: int, where: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(act_scale, act_offset, act_shift) giving exactly the v1 activation

        level = clip(ceil(16 * (p - threshold) / S), 0, 2^bits - 1)

    as akida_rt's `clip(floor((p * act_scale + act_offset) / 2^act_shift), 0, 2^bits - 1)`.

    With n = 16 p - 16 threshold + S - 1, the v1 level is floor(n / S). Division by S is
    multiplication by m = ceil(2^k / S) then a shift by k: the result is exact for every
    0 <= n < S (2^bits + 1) once 2^k >= S^2 (2^bits + 1), and above that range both sides
    reach the top level (the product never undershoots), below it both are <= 0.
    """
    s = step_divisor(act_step, bits)
    if np.any(s < 1):
        raise ModelError(f"{where}: act_step below 1/16 is 0 at v1's 4 fractional bits")
    top = 2**bits - 1
    shift = max(math.ceil(math.log2(int(s.max()) ** 2 * (top + 2))), 0)
    if shift > MAX_ACT_SHIFT:
        raise ModelError(f"{where}: act_step {float(np.max(act_step))} is too large to represent")
    m = np.array([-(-(1 << shift) // int(v)) for v in s], dtype=object)
    th = np.asarray(threshold).astype(np.int64).astype(object)
    scale = 16 * m
    offset = (s.astype(object) - 1 - 16 * th) * m
    return scale.astype(np.int64), offset.astype(np.int64), shift


def output_dequantization(threshold: np.ndarray, act_step: np.ndarray) -> tuple[np.ndarray, ...]:
    """(output_scale, output_offset) so predict() = (p - threshold) / act_step."""
    step = np.asarray(act_step, np.float32).astype(np.float64)
    return 1.0 / step, -np.asarray(threshold, np.float64) / step


def quantize_input(x: np.ndarray, scales: np.ndarray, zero_points: np.ndarray) -> np.ndarray:
    """What an unsigned 8-bit v1 `Quantizer` makes of float32 inputs (akida 2.19.3):
    the float32 product x * scale rounded half away from zero, plus the zero point,
    clipped to 0..255 (uint8 inputs pass through unchanged)."""
    prod = np.asarray(x, np.float32) * np.asarray(scales, np.float32)
    whole = np.trunc(prod)
    rounded = whole + np.sign(prod) * (np.abs(prod - whole) >= 0.5)  # the difference is exact
    out = rounded.astype(np.float64) + np.asarray(zero_points, np.float64)
    return np.clip(out, 0, 255).astype(np.uint8)


def learning_fraction(value: float) -> float:
    """The double a float32 learning parameter stands for: its shortest decimal (0.3, not
    0.30000001192092896). akida keeps AkidaUnsupervised's fractions as doubles and its
    compiler rounds their products with num_weights (ceil(0.3 x 20) is 6, ceil of the
    float32's is 7), so what is exported and what the rule computes both use this."""
    return float(str(np.float32(value)))


def plasticity_of_swaps(swaps: np.ndarray, num_weights: int) -> np.ndarray:
    """Per-neuron float32 plasticity P whose learning budget ceil(float32(P * num_weights))
    (docs/semantics.md, 8.4) is `swaps` (akida's `thswap`, what the AKD1000's learning
    FNP3 holds): the connections a learning neuron may still move (akida 2.19.3:
    num_weights after compile, 0.75 num_weights after one step with decay 0.25)."""
    nw = max(int(num_weights), 1)
    k = np.clip(np.asarray(swaps, np.int64), 0, nw)
    p = (k / nw).astype(np.float32)
    # float32 rounding may put the product one ulp past k: one ulp down puts it below
    return np.where(np.ceil(p * np.float32(nw)) > k, np.nextafter(p, np.float32(0)), p)


def swaps_of_plasticity(plasticity: np.ndarray, num_weights: int) -> np.ndarray:
    """akida's `thswap` of our plasticity: the learning budget (the inverse of
    plasticity_of_swaps, for an exporter)."""
    p = np.asarray(plasticity, np.float32)
    return np.ceil(p * np.float32(num_weights)).astype(np.int32)


def rotate_kernel(weights: np.ndarray) -> np.ndarray:
    """v1 Convolutional/SeparableConvolutional kernels are stored rotated by 180 degrees."""
    return np.ascontiguousarray(weights[::-1, ::-1])


def fc_weights(weights: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """v1 FullyConnected weights (flattened in C, W, H order) in akida_rt's H, W, C order."""
    h, w, c = input_shape
    units = weights.shape[-1]
    cwh = weights.reshape(c, w, h, units)
    return np.ascontiguousarray(cwh.transpose(2, 1, 0, 3).reshape(1, 1, h * w * c, units))


MAX_ACT_STEP = 65535.0  # akida refuses (or moves to software) a larger act_step
STEP_UNIT = 1.0 / 2**STEP_FRACTION_BITS


def v1_activation(
    act_scale: np.ndarray,
    act_offset: np.ndarray,
    act_shift: int,
    bias: np.ndarray,
    bits: int,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The v1 (threshold, act_step) nearest to `clip(floor(((p + bias) a + b) / 2^k))`.

    That activation steps every s = 2^k / a of potential from t = -bias - b / a: level 1
    starts at p >= t + s. v1 starts level 1 at p > threshold, so threshold = ceil(t + s) - 1
    is exact for the first level; its step S / 16 (S = floor(16 act_step) 2^(4 - bits)) is s
    rounded to v1's granularity, which moves the higher levels' edges by at most half of
    it per level. A channel whose weights were zeroed (constant output) keeps its level.
    """
    unit = 2 ** (STEP_FRACTION_BITS - bits)
    a = np.asarray(act_scale, np.float64)
    s = 2.0**act_shift / a
    t = -np.asarray(bias, np.float64) - np.asarray(act_offset, np.float64) / a
    steps = np.maximum(np.rint(16 * s / unit), 1.0)  # floor(16 act_step)
    threshold = np.ceil(t + s) - 1
    big = steps / 16 > MAX_ACT_STEP
    if np.any(big):
        # A channel this flat never leaves the level its potential 0 gives (a constant
        # channel's weights are zeroed): keep that level with a unit step.
        levels = np.clip(np.floor((np.asarray(bias, np.float64) * a + act_offset) / 2.0**act_shift),
                         0, 2**bits - 1)  # fmt: skip
        steps[big] = 16.0
        threshold[big] = -levels[big] * unit
    if np.any(np.abs(threshold) >= 2**31):
        ch = int(np.argmax(np.abs(threshold)))
        raise ModelError(f"{where}: channel {ch}'s v1 threshold {threshold[ch]:.0f} exceeds int32")
    return threshold.astype(np.int64), (steps / 16).astype(np.float32)


def to_v1_form(layer: Layer, is_last: bool) -> None:
    """Rewrite a layer in the v1 form AKD1000 programs carry (docs/semantics.md, 7): no
    bias; an activation from an integer threshold and an act_step in 1/16 steps (levels may
    move by v1's rounding); a last layer without activation returns its raw potentials, the
    bias going into predict's offset. Max pooling takes the convolution's padding where
    that pools the same windows; potentials saturate where AKD1000's do. Weights are
    unchanged."""
    where = f"layer '{layer.name}'"
    if layer.layer_type is LayerType.InputData:
        return
    _v1_pool_padding(layer, where)
    kind = "FullyConnected" if layer.layer_type is LayerType.FullyConnected else "conv"
    pooled = layer.pooling is not Pooling.NoPooling
    size = layer.pool_size if layer.pooling is Pooling.Max else 0
    if saturates(kind, pooled, size):
        layer.potential_bits = POTENTIAL_BITS
    bias = layer.get_variable("bias").astype(np.int64)
    if layer.activation:
        threshold, act_step = v1_activation(
            layer.get_variable("act_scale"), layer.get_variable("act_offset"), layer.act_shift,
            bias, layer.activation_bits, where,
        )  # fmt: skip
        scale, offset, shift = activation_params(threshold, act_step, layer.activation_bits, where)
        layer.act_shift = shift
        layer.set_variable("act_scale", scale)
        layer.set_variable("act_offset", offset)
    elif is_last:
        # The chip returns the raw potentials p; predict's dequantization runs on the host,
        # so it keeps its float offset, now with the bias in it: (p + bias) A + B.
        a = layer.get_variable("output_scale").astype(np.float64)
        layer.set_variable("output_offset", layer.get_variable("output_offset") + bias * a)
    layer.set_variable("bias", np.zeros_like(bias, dtype=np.int32))


def _v1_pool_padding(layer: Layer, where: str) -> None:
    """v1 max-pools with the convolution's padding. Where the other padding gives the same
    windows (a map that the pool tiles exactly), take the convolution's; else refuse."""
    if layer.pooling is not Pooling.Max or layer.pool_padding is layer.padding:
        return
    h, w = layer.conv_output_hw()
    k, s = layer.pool_size, layer.pool_stride
    if k == s and h % s == 0 and w % s == 0:
        layer.pool_padding = Padding(layer.padding)
        return
    raise ModelError(
        f"{where}: max pooling with {layer.pool_padding.value} padding after a "
        f"{layer.padding.value}-padded convolution of a {h}x{w} map; v1 pools with the "
        f"convolution's padding: use padding='{layer.padding.value}' in the MaxPooling2D"
    )


# AKD1000 NP registers (akida 2.19.3 refuses to map a layer whose values do not fit).
THRESHOLD_BITS = 20  # signed
STEP_BITS = 20  # unsigned, act_step with STEP_FRACTION_BITS fractional bits
POTENTIAL_BITS = 20  # signed: FullyConnected and pooled potentials saturate to it
HRC_THRESHOLD_BITS = 24  # signed: the HRC's thresholds are wider
HRC_STEP_BITS = 24  # unsigned, as STEP_BITS: an act_step up to 1048575.9375


def saturates(kind: str, pooled: bool, pool_size: int) -> bool:
    """Whether akida 2.19.3 saturates a v1 layer's potentials to POTENTIAL_BITS.

    Measured with one-layer probes against akida's forward: FullyConnected sums and the
    potentials of layers with 2x2 max pooling or global average pooling saturate (a
    global average saturates each position, then the sum); convolutions without pooling
    or with 1x1 pooling do not (up to 6.8 M on a separable layer)."""
    return kind == "FullyConnected" or (pooled and pool_size != 1)


def activation_registers(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, floor(16 act_step)) per channel of an activated layer, as v1 holds
    them: the threshold is the largest potential that stays at level 0; the step is
    recovered exactly from activation_params' encoding, else from act_scale."""
    a = [int(v) for v in layer.get_variable("act_scale")]
    b = [int(v) for v in layer.get_variable("act_offset")]
    k, bits = layer.act_shift, layer.activation_bits
    thresholds, steps = [], []
    for scale, offset in zip(a, b, strict=True):
        thresholds.append(-((offset - (1 << k)) // scale) - 1)  # ceil((2^k - b) / a) - 1
        s = None
        if scale % 16 == 0:
            m = scale // 16
            cand = -(-(1 << k) // m)
            if -(-(1 << k) // cand) == m:
                s = cand
        if s is None:
            s = ((1 << k) * 16) // scale
        steps.append(s >> (STEP_FRACTION_BITS - bits) if bits <= STEP_FRACTION_BITS else s)
    return np.array(thresholds, dtype=object), np.array(steps, dtype=object)


def hrc_step_violation(layer: Layer) -> str:
    """Why an activated InputConvolutional cannot run on the HRC ('' when it can): akida
    2.19.3 runs it in software (refuses it with hw_only) when floor(16 act_step) does
    not fit the HRC's 24 bits, an act_step of 1048576 or more."""
    if layer.layer_type is not LayerType.InputConv2D or not layer.activation:
        return ""
    _, steps = activation_registers(layer)
    top = (1 << HRC_STEP_BITS) - 1
    for ch, st in enumerate(steps):
        if st > top:
            return f"channel {ch}'s act_step {st / 16:g} is over 1048575 (the HRC's {HRC_STEP_BITS}-bit register)"
    return ""


def register_violation(layer: Layer) -> str:
    """Why a layer placed on an NP or the HRC does not fit AKD1000's registers ('' when
    it does): akida 2.19.3 refuses to map (in every mode, hw_only or not) a
    Convolutional, SeparableConvolutional or activated FullyConnected layer on an NP
    whose threshold does not fit 20 signed bits or whose act_step is 65536 or more (a
    CNP checks the step of a last layer without activation too, read from output_scale
    = 1/act_step), and an activated InputConvolutional on the HRC whose threshold does
    not fit 24 signed bits (its act_step: hrc_step_violation); a layer in software is
    not checked."""
    t = layer.layer_type
    if t is LayerType.InputConv2D and layer.activation:
        lo, hi = -(1 << (HRC_THRESHOLD_BITS - 1)), (1 << (HRC_THRESHOLD_BITS - 1)) - 1
        for ch, th in enumerate(activation_registers(layer)[0]):
            if not lo <= th <= hi:
                return f"channel {ch}'s threshold {th} does not fit the HRC's {HRC_THRESHOLD_BITS}-bit signed register"
        return ""
    if t not in (LayerType.Conv2D, LayerType.SeparableConv2D, LayerType.FullyConnected):
        return ""
    lo, hi = -(1 << (THRESHOLD_BITS - 1)), (1 << (THRESHOLD_BITS - 1)) - 1
    top_step = (1 << STEP_BITS) - 1
    if layer.activation:
        thresholds, steps = activation_registers(layer)
        for ch, th in enumerate(thresholds):
            if not lo <= th <= hi:
                return f"channel {ch}'s threshold {th} does not fit a {THRESHOLD_BITS}-bit signed register"
        for ch, st in enumerate(steps):
            if st > top_step:
                return f"channel {ch}'s act_step {st / 16:g} is over 65535 (a {STEP_BITS}-bit register, 4 fractional bits)"
        return ""
    if t is LayerType.FullyConnected:
        return ""
    scale = np.asarray(layer.get_variable("output_scale"), np.float64)
    with np.errstate(divide="ignore"):
        act_step = (1.0 / scale).astype(np.float32).astype(np.float64)
    bad = np.flatnonzero(np.floor(act_step * 16) > top_step)
    if bad.size:
        ch = int(bad[0])
        return (
            f"channel {ch}'s act_step {act_step[ch]:g} is over 65535 (a {STEP_BITS}-bit register)"
        )
    return ""
