"""BrainChip's published Akida 1.0 (AKD1000) hardware constraints, as data and one check.

Source: BrainChip, "Akida 1.0 Hardware constraints" (akida_examples user guide). The
mapper (akida_rt.mapping.mapper) and the toolchain checker refuse a layer that breaks one,
naming the rule and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from akida_rt.format.layers import Layer, LayerType, Padding, Pooling

INPUT_WIDTH = (5, 256)  # InputConv2D: input width; height at least 5
INPUT_MIN_HEIGHT = 5
INPUT_CHANNELS = (1, 3)
KERNELS = {
    LayerType.InputConv2D: (3, 5, 7),
    LayerType.Conv2D: (1, 3, 5, 7),
    LayerType.SeparableConv2D: (3, 5, 7),
}
STRIDES = {
    LayerType.InputConv2D: (1, 2, 3),
    LayerType.Conv2D: (1, 2),
    LayerType.SeparableConv2D: (1, 2),
}
# InputConv2D: most filters per kernel size, for 1- and 3-channel inputs.
MAX_INPUT_FILTERS = {1: {3: 512, 5: 192, 7: 96}, 3: {3: 192, 5: 64, 7: 32}}
MAX_POOL = 2  # max pooling 1x1 or 2x2 (InputConv2D also 1x2 / 2x1)
GLOBAL_AVG_MAX_WIDTH = 32
FC_MAX_INPUTS = 57_334  # FullyConnected: W x H x C of its input
WEIGHT_BITS = {
    LayerType.InputConv2D: (1, 2, 4, 8),
    LayerType.Conv2D: (1, 2, 4),
    LayerType.SeparableConv2D: (2, 4),
    LayerType.FullyConnected: (1, 2, 4),
}
SOURCE = "Akida 1.0 hardware constraints"


@dataclass(frozen=True)
class Violation:
    """A broken rule: what it is, the layer's value and the limit."""

    rule: str
    value: str
    limit: str

    def __str__(self) -> str:
        return f"{self.rule} is {self.value}; {SOURCE} allow {self.limit}"


def _choices(values: tuple[object, ...], unit: str = "") -> str:
    return ", ".join(f"{v}{unit}" for v in values)


def check_layer(layer: Layer) -> Violation | None:
    """The first Akida 1.0 rule `layer` breaks, or None."""
    t = layer.layer_type
    if t is LayerType.InputData:
        return None
    assert layer.input_shape is not None
    h, w, c = layer.input_shape
    if t is LayerType.FullyConnected:
        if h * w * c > FC_MAX_INPUTS:
            return Violation("FullyConnected input size W x H x C", f"{h * w * c:,}",
                             f"at most {FC_MAX_INPUTS:,}")  # fmt: skip
        return _bits(layer)
    k, s = layer.kernel_size, layer.stride
    if t is LayerType.InputConv2D:
        if not INPUT_WIDTH[0] <= w <= INPUT_WIDTH[1]:
            return Violation("input width", str(w), f"{INPUT_WIDTH[0]} to {INPUT_WIDTH[1]}")
        if h < INPUT_MIN_HEIGHT:
            return Violation("input height", str(h), f"at least {INPUT_MIN_HEIGHT}")
        if c not in INPUT_CHANNELS:
            return Violation("input channels", str(c), "1 or 3")
    if k not in KERNELS[t]:
        return Violation(f"{t.value} kernel size", f"{k}x{k}",
                         _choices(tuple(f"{v}x{v}" for v in KERNELS[t])))  # fmt: skip
    if s not in STRIDES[t]:
        return Violation(f"{t.value} stride", str(s), _choices(STRIDES[t]))
    if t is LayerType.InputConv2D:
        most = MAX_INPUT_FILTERS[c][k]
        if layer.output_channels > most:
            return Violation(f"filters of a {k}x{k} input convolution on {c} channel(s)",
                             str(layer.output_channels), f"at most {most}")  # fmt: skip
    elif layer.padding is not Padding.Same:
        return Violation(f"{t.value} padding", layer.padding.value, "same")
    if layer.pooling is Pooling.Max and layer.pool_size > MAX_POOL:
        size = f"{layer.pool_size}x{layer.pool_size}"
        return Violation("max pooling size", size, "1x1 or 2x2")
    if layer.pooling is Pooling.GlobalAvg and t is not LayerType.InputConv2D:
        width = _conv_width(layer)
        if width > GLOBAL_AVG_MAX_WIDTH:
            return Violation("global average pooling width", str(width),
                             f"1 to {GLOBAL_AVG_MAX_WIDTH}")  # fmt: skip
    return _bits(layer)


def _conv_width(layer: Layer) -> int:
    assert layer.input_shape is not None
    w = layer.input_shape[1]
    return -(-w // layer.stride)  # 'same' padding


def _bits(layer: Layer) -> Violation | None:
    allowed = WEIGHT_BITS[layer.layer_type]
    if layer.weight_bits not in allowed:
        return Violation(f"{layer.layer_type.value} weight bits", str(layer.weight_bits),
                         _choices(allowed))  # fmt: skip
    return None
