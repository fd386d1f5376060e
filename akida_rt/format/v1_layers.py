"""BrainChip v1 layer descriptions (akida_rt.akd1000.decode.V1Layer) as akida_rt layers.

One path from v1 terms (akida's layer parameters and variables) to akida_rt's rule set:
the MetaTF importer (tools/metatf.py) describes each akida layer as a V1Layer, the
AKD1000 program decoder produces them from program binaries; both end here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from akida_rt.akd1000.decode import DecodedProgram, IoInfo, V1Layer, decode_mesh
from akida_rt.akd1000.np_state import MeshState
from akida_rt.errors import ModelError
from akida_rt.format import v1_rules
from akida_rt.format.layer_kinds import (
    Conv2D,
    FullyConnected,
    InputConv2D,
    InputData,
    SeparableConv2D,
)
from akida_rt.format.layer_params import Padding, Pooling
from akida_rt.format.layers import Layer

V1_PADDINGS = {"same": Padding.Same, "valid": Padding.Valid}


def from_v1(v: V1Layer, name: str, is_last: bool) -> Layer:
    """The akida_rt layer computing what v1 layer `v` computes.

    Raises:
        ModelError: the layer's activation has no akida_rt form (act_step too small or
            too large); the message names the layer.
    """
    where = f"layer '{name}' ({v.kind})"
    if v.kind == "InputData":
        return InputData(name, v.input_shape, input_bits=v.input_bits)
    if v.kind == "FullyConnected":
        out: Layer = FullyConnected(name, v.filters, weight_bits=v.weights_bits)
        out.set_variable("weights", v1_rules.fc_weights(v.variables["weights"], v.input_shape))
    else:
        out = _conv(v, name)
    if v1_rules.saturates(
        v.kind, v.pool in ("max", "average"), v.pool_size if v.pool == "max" else 0
    ):
        out.potential_bits = v1_rules.POTENTIAL_BITS
    out.activation = bool(v.activation)
    threshold, act_step = v.variables.get("threshold"), v.variables.get("act_step")
    if out.activation:
        if threshold is None or act_step is None:
            raise ModelError(f"{where}: no threshold or act_step")
        out.activation_bits = v.act_bits
        scale, offset, shift = v1_rules.activation_params(threshold, act_step, v.act_bits, where)
        out.act_shift = shift
        out.set_variable("act_scale", scale)
        out.set_variable("act_offset", offset)
    elif is_last and threshold is not None and act_step is not None:
        scale_f, offset_f = v1_rules.output_dequantization(threshold, act_step)
        out.set_variable("output_scale", scale_f)
        out.set_variable("output_offset", offset_f)
    return out


def _conv(v: V1Layer, name: str) -> Layer:
    padding = V1_PADDINGS[v.padding]
    pool: dict = {"pooling": Pooling.NoPooling}
    if v.pool == "max":
        pool = {
            "pooling": Pooling.Max,
            "pool_size": v.pool_size,
            "pool_stride": v.pool_stride,
            "pool_padding": padding,
        }
    elif v.pool == "average":
        pool = {"pooling": Pooling.GlobalAvg}
    common = dict(stride=v.stride, padding=padding, weight_bits=v.weights_bits, **pool)
    weights = v.variables["weights"]
    if v.kind == "InputConvolutional":
        layer: Layer = InputConv2D(name, v.input_shape, v.filters, v.kernel,
                                   padding_value=v.padding_value, **common)  # fmt: skip
        layer.set_variable("weights", weights)
        return layer
    if v.kind == "Convolutional":
        layer = Conv2D(name, v.filters, v.kernel, **common)
    else:
        layer = SeparableConv2D(name, v.filters, v.kernel, **common)
        layer.set_variable("pointwise", v.variables["weights_pw"])
    layer.set_variable("weights", v1_rules.rotate_kernel(weights))
    return layer


def layers_of(
    decoded: DecodedProgram | Sequence[V1Layer], names: Sequence[str] = ()
) -> list[Layer]:
    """akida_rt layers of decoded v1 layers (named `names`, else layer_0, layer_1, ...),
    each with its input shape set."""
    v1 = decoded.layers if isinstance(decoded, DecodedProgram) else list(decoded)
    out = []
    for i, v in enumerate(v1):
        layer = from_v1(v, names[i] if i < len(names) else f"layer_{i}", i == len(v1) - 1)
        if layer.input_shape is None:
            layer.input_shape = v.input_shape
        out.append(layer)
    return out


@dataclass
class MeshLayers:
    """What NP state computes, for a simulated chip (firmware_sim's MeshProgram)."""

    layers: list[Layer]
    input_kind: str
    output_kind: str
    np_counts: dict[str, tuple[str, int]]
    learning: Any = None
    decoded: DecodedProgram | None = None


def mesh_layers(state: MeshState, io: IoInfo) -> MeshLayers:
    """The akida_rt layers NP state holds (named layer_0, layer_1, ...).

    Raises:
        ProgramFormatError: the NP state does not decode (the message says where).
        ModelError: a decoded activation has no akida_rt form.
    """
    decoded = decode_mesh(state, io)
    layers = layers_of(decoded)
    return MeshLayers(layers, decoded.input_kind, decoded.output_kind, decoded.np_counts(),
                      decoded.learning, decoded)  # fmt: skip
