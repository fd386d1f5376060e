"""Export akida_rt models as BrainChip MetaTF v1 models (`akida.Model`, `.fbz`): the
inverse of tools/metatf.py, bit-exact, and BrainChip's AKD1000 program binaries of them.

With tools/metatf.py the only modules that import BrainChip's `akida` package (the
[metatf] extra). Each layer's v1 parameters are solved from akida_rt's integer rule set
(akida_rt.v1_rules); a layer v1 cannot compute exactly is refused with the reason.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from akida_rt.engine.integer import accumulator_bound
from akida_rt.errors import ConversionError
from akida_rt.format import program as fmt
from akida_rt.format import v1_rules
from akida_rt.format.layer_params import LayerType, Padding, Pooling, pooled_size
from akida_rt.format.layers import Layer
from akida_rt.learning.edge import plasticity_of
from akida_rt.model.model import Model

log = logging.getLogger(__name__)

INT32 = np.iinfo(np.int32)
MAP_MODES = ("AllNps", "Minimal", "HwPr")


def _akida() -> Any:
    try:
        import akida
    except ModuleNotFoundError:
        raise ConversionError(
            "exporting to MetaTF needs BrainChip's akida package: pip install 'akida-rt[metatf]'"
        ) from None
    return akida


def export_model(model: Model, with_variables: bool = True) -> Any:
    """The v1 `akida.Model` whose `forward` equals `model.forward` exactly.

    Args:
        model: an akida_rt model of v1 layers (InputData or InputConv2D first).
        with_variables: False builds the architecture only (akida's default variables).

    Raises:
        ConversionError: a layer v1 cannot represent; the message names it and why.
    """
    akida = _akida()
    model.validate()
    out = akida.Model()
    layers = model.layers
    for i, layer in enumerate(layers):
        where = f"layer '{layer.name}' ({layer.type_name})"
        out.add(_v1_layer(akida, layer, where))
        if with_variables and layer.layer_type is not LayerType.InputData:
            _check_saturation(layer, where)
            _set_variables(out.layers[-1], layer, where, is_last=i == len(layers) - 1)
    if model.learning is not None and model.learning.enabled:
        cfg = model.learning
        out.compile(
            akida.AkidaUnsupervised(
                num_weights=cfg.num_weights,
                num_classes=cfg.num_classes,
                initial_plasticity=v1_rules.learning_fraction(cfg.initial_plasticity),
                learning_competition=v1_rules.learning_fraction(cfg.learning_competition),
                min_plasticity=v1_rules.learning_fraction(cfg.min_plasticity),
                plasticity_decay=v1_rules.learning_fraction(cfg.plasticity_decay),
            )
        )
        if with_variables:
            _set_learning_state(out.layers[-1], layers[-1], cfg)
    return out


def _set_learning_state(dst: Any, layer: Layer, cfg: Any) -> None:
    """After akida's compile (which draws new connections): the learned connections and
    each neuron's thswap from its plasticity (v1_rules.swaps_of_plasticity) and akida's
    threshold_learning where the import carried it (a fit in akida_rt clears it: then
    compile's values stay; docs/semantics.md, section 8)."""
    where = f"layer '{layer.name}' (learning)"
    _set_variables(dst, layer, where, is_last=True)
    plasticity = plasticity_of(cfg, layer.filters)
    _set(dst, "thswap", v1_rules.swaps_of_plasticity(plasticity, cfg.num_weights), where)
    if cfg.HasField("v1_learning_gate"):
        gate = fmt.decode_tensor(cfg.v1_learning_gate, "learning v1 gate", ndim=1)
        _set(dst, "threshold_learning", gate.astype(np.int32), where)


def _check_saturation(layer: Layer, where: str) -> None:
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


def export_file(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> Any:
    """Export the program file `source` (.akp) as the MetaTF model file `output` (.fbz)."""
    model = Model(source)
    out = export_model(model)
    try:
        out.save(str(output))
    except (RuntimeError, ValueError) as exc:
        raise ConversionError(f"cannot write {output}: {exc}") from None
    return out


def _v1_layer(akida: Any, layer: Layer, where: str) -> Any:
    t = layer.layer_type
    name = layer.name
    if t is LayerType.InputData:
        if layer.input_bits not in (1, 2, 4, 8):
            raise ConversionError(f"{where}: {layer.input_bits}-bit inputs; v1 takes 1, 2, 4, 8")
        return akida.InputData(
            input_shape=layer.input_shape, input_bits=layer.input_bits, name=name
        )
    act: dict[str, Any] = {"activation": layer.activation}
    if layer.activation:
        act["act_bits"] = layer.activation_bits
    if t is LayerType.FullyConnected:
        return akida.FullyConnected(
            units=layer.filters, name=name, weights_bits=layer.weight_bits, **act
        )
    pad = akida.Padding.Same if layer.padding is Padding.Same else akida.Padding.Valid
    pool: dict[str, Any] = {}
    if layer.pooling is Pooling.Max:
        if layer.pool_padding is not layer.padding and not _same_pooling(layer):
            raise ConversionError(
                f"{where}: pooling padding {layer.pool_padding.name} differs from the "
                f"convolution's {layer.padding.name}; v1 pools with the convolution's padding"
            )
        pool = dict(
            pool_type=akida.PoolType.Max,
            pool_size=(layer.pool_size,) * 2,
            pool_stride=(layer.pool_stride,) * 2,
        )
    elif layer.pooling is Pooling.GlobalAvg:
        pool = dict(pool_type=akida.PoolType.Average)
    common = dict(
        kernel_size=(layer.kernel_size,) * 2,
        filters=layer.filters,
        name=name,
        kernel_stride=(layer.stride,) * 2,
        padding=pad,
        weights_bits=layer.weight_bits,
        **pool,
        **act,
    )
    try:
        if t is LayerType.InputConv2D:
            return akida.InputConvolutional(
                input_shape=layer.input_shape, padding_value=layer.padding_value, **common
            )
        if t is LayerType.Conv2D:
            return akida.Convolutional(**common)
        if t is LayerType.SeparableConv2D:
            return akida.SeparableConvolutional(**common)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConversionError(f"{where}: akida refuses it as a v1 layer ({exc})") from None
    raise ConversionError(f"{where}: no v1 layer of this type")


def _same_pooling(layer: Layer) -> bool:
    """True when max pooling reads the same windows under Same and Valid padding (same
    output size, nothing padded before the first window), as 2x2/2 on even sizes."""
    k, s = layer.pool_size, layer.pool_stride
    for n in layer.conv_output_hw():
        valid, same = pooled_size(n, k, s, Padding.Valid), pooled_size(n, k, s, Padding.Same)
        if valid[0] != same[0] or same[1] != 0:
            return False
    return True


def _set_variables(dst: Any, layer: Layer, where: str, is_last: bool) -> None:
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
    _set(dst, "weights", weights.astype(np.int8), where)
    if t is LayerType.SeparableConv2D:
        _set(dst, "weights_pw", layer.get_variable("pointwise").astype(np.int8), where)
    if layer.activation:
        threshold, act_step = activation_v1(layer, where)
    elif is_last:
        threshold, act_step = dequantization_v1(layer, where)
    else:
        raise ConversionError(f"{where}: v1 layers without activation must be the last layer")
    _set(dst, "threshold", threshold, where)
    _set(dst, "act_step", act_step, where)


def _set(dst: Any, key: str, value: np.ndarray, where: str) -> None:
    try:
        dst.set_variable(key, value)
    except (RuntimeError, ValueError) as exc:
        raise ConversionError(f"{where}: akida refuses its {key} ({exc})") from None


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


def program_binaries(model: Any, mode: str = "AllNps", hw_only: bool = False) -> list[bytes | None]:
    """Map `model` (akida_rt Model or akida.Model) on BrainChip's virtual AKD1000 and return
    each sequence's program binary (`model.sequences[i].program`), in sequence order; None
    for a sequence BrainChip runs in software (hw_only=True refuses those instead).

    Raises:
        ConversionError: akida is absent, the model has no v1 form, or BrainChip's
            compiler cannot map it (its reason).
    """
    akida = _akida()
    if mode not in MAP_MODES:
        raise ConversionError(f"map mode {mode!r}; use one of {', '.join(MAP_MODES)}")
    src = model if isinstance(model, akida.Model) else export_model(model)
    try:
        src.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode), hw_only=hw_only)
    except RuntimeError as exc:
        raise ConversionError(
            f"BrainChip's compiler cannot map the model on AKD1000: {exc}"
        ) from None
    out: list[bytes | None] = []
    for seq in src.sequences:
        hardware = str(seq.backend).rsplit(".", 1)[-1] == "Hardware"
        out.append(bytes(seq.program) if hardware and seq.program is not None else None)
    log.info("AKD1000 programs: %s bytes", [None if p is None else len(p) for p in out])
    return out
