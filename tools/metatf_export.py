"""Export akida_rt models as BrainChip MetaTF v1 models (`akida.Model`, `.fbz`): the
inverse of tools/metatf.py, bit-exact, and BrainChip's AKD1000 program binaries of them.

With tools/metatf.py the only modules that import BrainChip's `akida` package (the
[metatf] extra). Each layer's v1 parameters are solved from akida_rt's integer rule set
(akida_rt.mapping.v1_export, which akida_rt's own AKD1000 compiler uses too); a layer v1
cannot compute exactly is refused with the reason.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from akida_rt.errors import ConversionError
from akida_rt.format import program as fmt
from akida_rt.format import v1_rules
from akida_rt.format.layer_params import LayerType, Padding, Pooling
from akida_rt.format.layers import Layer
from akida_rt.learning.edge import plasticity_of
from akida_rt.mapping.v1_export import (
    check_input_bits,
    check_pooling,
    check_saturation,
    v1_variables,
)
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
            check_saturation(layer, where)
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
        check_input_bits(layer, where)
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
        check_pooling(layer, where)
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


def _set_variables(dst: Any, layer: Layer, where: str, is_last: bool) -> None:
    for key, value in v1_variables(layer, where, is_last).items():
        _set(dst, key, value, where)


def _set(dst: Any, key: str, value: np.ndarray, where: str) -> None:
    try:
        dst.set_variable(key, value)
    except (RuntimeError, ValueError) as exc:
        raise ConversionError(f"{where}: akida refuses its {key} ({exc})") from None


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
