"""The Akida layers a grouped Keras model converts to (hyper-parameters only, no variables):
what the converter emits and what the checker maps and counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from akida_rt.tools.graph import Block, Graph

from akida_rt.format.layer_kinds import (
    Conv2D,
    FullyConnected,
    InputConv2D,
    InputData,
    SeparableConv2D,
)
from akida_rt.format.layer_params import Padding, Pooling
from akida_rt.format.layers import Layer


@dataclass
class Bits:
    """Bit widths assumed for layers that are not quantized yet (stage "float")."""

    weights: int = 4
    activations: int = 4
    input_weights: int = 8


def block_bits(block: Block, first: bool, default: Bits) -> tuple[int, int | None]:
    """(weight bits, activation bits or None) of a block, from its quantizers or defaults."""
    cfg = block.main.config
    wbits = int(cfg.get("weight_bits") or (default.input_weights if first else default.weights))
    act = block.activation
    if act is None:
        return wbits, None
    return wbits, int(act.config.get("bits") or default.activations)


def padding_of(cfg: dict[str, Any]) -> Padding:
    return Padding.Same if str(cfg.get("padding", "valid")).lower() == "same" else Padding.Valid


def _pooling(block: Block) -> Pooling:
    if block.pool is None:
        return Pooling.NoPooling
    return Pooling.GlobalAvg if block.pool.kind == "gap" else Pooling.Max


def _pool_padding(block: Block) -> Padding:
    pool = block.pool
    return Padding.Valid if pool is None or pool.kind != "maxpool" else padding_of(pool.config)


def pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    t = tuple(v)
    return int(t[0]), int(t[-1])


def akida_layer(block: Block, index: int, input_shape: tuple[int, ...], default: Bits) -> Layer:
    """The Akida layer (without variables) that a block converts to."""
    cfg, name = block.main.config, block.main.name
    wbits, abits = block_bits(block, index == 0, default)
    act, act_bits = abits is not None, abits or 4
    kind = block.main.kind
    if kind == "dense":
        units = int(cfg["units"])
        return FullyConnected(
            name, units, weight_bits=wbits, activation=act, activation_bits=act_bits
        )
    k = pair(cfg.get("kernel_size", 1))[0]
    filters = int(cfg["filters"])
    padding, pooling = padding_of(cfg), _pooling(block)
    if kind == "conv" and index == 0:
        shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
        stride = pair(cfg.get("strides", 1))[0]
        return InputConv2D(
            name, shape, filters, k, stride=stride, padding=padding, pooling=pooling,
            weight_bits=wbits, activation=act, activation_bits=act_bits,
            pool_padding=_pool_padding(block),
        )  # fmt: skip
    cls = SeparableConv2D if kind == "separable" else Conv2D
    return cls(
        name, filters, k, padding=padding, pooling=pooling, weight_bits=wbits,
        activation=act, activation_bits=act_bits, pool_padding=_pool_padding(block),
    )  # fmt: skip


def build_layers(graph: Graph, default: Bits) -> list[Layer]:
    """The chain of Akida layers (hyper-parameters only) for a grouped model."""
    layers: list[Layer] = []
    shape = graph.input_shape
    if graph.blocks and graph.blocks[0].main.kind != "conv":
        if len(shape) == 1:
            shape = (1, 1, shape[0])
        layers.append(InputData("input", (int(shape[0]), int(shape[1]), int(shape[2])), 8))
    for i, block in enumerate(graph.blocks):
        layers.append(akida_layer(block, i, shape, default))
    return layers
