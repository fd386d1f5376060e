"""AKD1000 program binaries of a mapped model, compiled by akida_rt itself: each hardware
sequence's layers in v1 form (v1_export), our mapper's NP slots (np_slots), compile_sequence.

No BrainChip software is involved: the binaries equal those BrainChip's compiler writes
for the same model (tests/test_akd1000_own_compiler.py compares them with akida's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from akida_rt.akd1000.decode import V1Layer
from akida_rt.akd1000.np_learning import learning_for
from akida_rt.akd1000.sequence_compile import HRC_INPUT_BITS, compile_sequence, sequence_layers
from akida_rt.errors import AkidaError, MappingError
from akida_rt.format import program as fmt
from akida_rt.format import v1_rules
from akida_rt.format.layers import Layer, LayerType
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend, SequencePlan
from akida_rt.mapping.np_slots import placement_for
from akida_rt.mapping.v1_export import v1_layer

log = logging.getLogger(__name__)

AKD1000 = "AKD1000"
LEARNING_SETTINGS = ("initial_plasticity", "learning_competition", "min_plasticity",
                     "plasticity_decay")  # fmt: skip


def needs_binaries(spec: DeviceSpec) -> bool:
    """True for a device whose hardware sequences run as AKD1000 program binaries."""
    return spec.name == AKD1000


def compile_binaries(
    plans: Sequence[SequencePlan],
    layers: Sequence[Layer],
    spec: DeviceSpec,
    learning: tuple[pb.LearningConfig, np.ndarray] | None = None,
) -> list[bytes | None]:
    """The program binary of each of `plans` (None for software sequences).

    Args:
        plans: our mapper's sequences of `layers` (the model's, in order).
        learning: (the enabled learning configuration, the learning layer's per-neuron
            plasticity) when the model's last layer learns on the chip.

    Raises:
        MappingError: a sequence akida_rt cannot compile; one line naming the sequence or
            layer and why.
    """
    by_name = {layer.name: layer for layer in layers}
    last = layers[-1].name if layers else ""
    first = layers[0] if layers else None
    bits = first.input_bits if first is not None and first.layer_type is LayerType.InputData else 0
    out: list[bytes | None] = []
    after_cnp = False
    for plan in plans:
        own = [by_name[n] for n in plan.layers if by_name[n].layer_type is not LayerType.InputData]
        v1 = [_v1(layer, layer.name == last) for layer in own]
        if plan.backend is not Backend.Hardware:
            out.append(None)
        else:
            learns = learning is not None and bool(own) and own[-1].name == last
            if learns:
                assert learning is not None
                v1[-1] = _learning_variables(v1[-1], *learning)
            out.append(_compile(plan, v1, bits, layers, spec, learning if learns else None,
                                after_cnp))  # fmt: skip
        if v1:
            bits = v1[-1].act_bits
            after_cnp = v1[-1].kind in ("Convolutional", "SeparableConvolutional")
    return out


def _v1(layer: Layer, is_last: bool) -> V1Layer:
    try:
        return v1_layer(layer, is_last)
    except AkidaError as exc:
        raise MappingError(f"cannot compile for AKD1000: {exc}") from None


def _compile(
    plan: SequencePlan,
    v1: list[V1Layer],
    bits: int,
    layers: Sequence[Layer],
    spec: DeviceSpec,
    learning: tuple[pb.LearningConfig, np.ndarray] | None,
    after_cnp: bool,
) -> bytes:
    if plan.passes != 1:
        span = f"'{plan.layers[0]}'..'{plan.layers[-1]}'" if plan.layers else "no layers"
        raise MappingError(
            f"sequence {plan.name} (layers {span}) runs in {plan.passes} passes (HwPr); "
            "akida_rt compiles AKD1000 programs of one pass: map in AllNps or Minimal"
        )
    placement = placement_for(plan, layers, spec)
    held = sequence_layers(v1, bits if v1[0].kind != "InputConvolutional" else HRC_INPUT_BITS)
    settings = None
    if learning is not None:
        slots = placement[max(placement)]
        if len(slots) != 1 or slots[0].fnp2:
            where = "an FNP2" if slots[0].fnp2 else f"{len(slots)} NPs"
            raise MappingError(
                f"learning layer '{plan.layers[-1]}' is placed on {where}: the AKD1000 learns "
                "on one FNP3; map in Minimal (fewer NPs before it) or give it fewer units"
            )
        cfg = learning[0]
        values = {k: v1_rules.learning_fraction(getattr(cfg, k)) for k in LEARNING_SETTINGS}
        settings = learning_for(cfg.num_weights, max(1, cfg.num_classes), v1[-1].filters,
                                **values)  # fmt: skip
    try:
        binary = compile_sequence(held, placement, settings, after_cnp)
    except MappingError as exc:
        raise MappingError(f"{plan.name}: cannot compile for AKD1000: {exc}") from None
    log.debug("%s: %d layers compiled to %d bytes", plan.name, len(v1), len(binary))
    return binary


def _learning_variables(v: V1Layer, cfg: pb.LearningConfig, plasticity: np.ndarray) -> V1Layer:
    """The learning layer with akida's learning variables: thswap from the plasticity,
    threshold_learning as imported (akida's compile leaves 0)."""
    units = v.filters
    gate = np.zeros(units, np.int32)
    if cfg.HasField("v1_learning_gate"):
        gate = fmt.decode_tensor(cfg.v1_learning_gate, "learning v1 gate", ndim=1)
    variables: dict[str, Any] = dict(v.variables)
    variables["thswap"] = v1_rules.swaps_of_plasticity(plasticity, cfg.num_weights)
    variables["threshold_learning"] = np.asarray(gate, np.int32)
    return V1Layer(**{**v.__dict__, "variables": variables})
