"""The vocabulary of Akida 1.0 layers: layer types, padding and pooling modes, bit widths,
per-channel variables, limits, and the size arithmetic of convolution and pooling axes."""

from __future__ import annotations

import enum

import numpy as np


class LayerType(enum.Enum):
    InputData = "InputData"
    InputConv2D = "InputConv2D"
    Conv2D = "Conv2D"
    SeparableConv2D = "SeparableConv2D"
    FullyConnected = "FullyConnected"


class Padding(enum.Enum):
    Valid = "valid"
    Same = "same"


class Pooling(enum.Enum):
    NoPooling = "none"
    Max = "max"  # pool_size x pool_size windows, pool_stride apart (default 2x2, stride 2)
    GlobalAvg = "global_avg"


WEIGHT_BITS = (1, 2, 4, 8)
ACTIVATION_BITS = (1, 2, 4)
INPUT_BITS = (1, 2, 4, 8)
SHORT_NAMES = {
    LayerType.InputData: "InputData",
    LayerType.InputConv2D: "InputConv.",
    LayerType.Conv2D: "Conv.",
    LayerType.SeparableConv2D: "Sep.Conv.",
    LayerType.FullyConnected: "Fully.",
}
# Per-channel variables and the dtype they are stored with.
CHANNEL_VARIABLES = {
    "bias": np.int32,
    "act_scale": np.int64,
    "act_offset": np.int64,
    "output_scale": np.float64,
    "output_offset": np.float64,
}
MAX_ACT_SHIFT = 62
MIN_POTENTIAL_BITS = 8
MAX_NAME_CHARS = 256
# Bound on the elements of one sample's largest engine buffer in any layer (input map,
# patches or outputs): beyond it a model could not run on the host, let alone on a device.
MAX_WORK_ELEMENTS = 1 << 28


def weight_range(bits: int) -> tuple[int, int]:
    """Inclusive integer range of a weight of `bits` bits (1-bit weights are binary 0/1)."""
    if bits == 1:
        return 0, 1
    top = 2 ** (bits - 1) - 1
    return -top, top


def pooled_size(size: int, pool: int, stride: int, padding: Padding) -> tuple[int, int, int]:
    """Output size and (before, after) padding of a max-pooling axis."""
    if padding is Padding.Same:
        return same_padding(size, pool, stride)
    return (size - pool) // stride + 1, 0, 0


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (before, after) zero padding of a 'same' convolution axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2
