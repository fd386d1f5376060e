"""What one convolution needs of an AKD1000 NP's memories: input tiles and weight rows.

Rules observed on BrainChip's mapper (akida 2.19.3, `akida.AKD1000()`), pure arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from akida_rt.format.layers import Layer, LayerType, Pooling

MAX_TILE_COLUMNS = 32  # an NP's input tile spans at most 32 positions of the first axis
FILTER_BLOCK = 8  # weights are laid out for blocks of 8 filters
ONE_CHANNEL_ANY_SPLIT = 16  # a one-channel Conv2D with at most this many filters splits freely


@dataclass(frozen=True)
class Tiling:
    """How a layer's input map is cut over NPs: `nx` x `ny` tiles."""

    nx: int
    ny: int

    @property
    def tiles(self) -> int:
        return self.nx * self.ny


def _chunk(size: int, parts: int, step: int) -> int | None:
    """Tile length when `size` is cut in `parts`, rounded up to `step`; None if a part
    would be empty."""
    c = math.ceil(math.ceil(size / parts) / step) * step
    return c if (parts - 1) * c < size else None


def tile_cuts(size: int, parts: int, step: int) -> list[tuple[int, int]]:
    """(first position, positions) of each of `parts` tiles of a `size`-long axis, cut as
    tiling() cuts it."""
    length = _chunk(size, parts, step) or size
    return [(t * length, min(length, size - t * length)) for t in range(parts)]


def tiling(layer: Layer, input_bytes_per_np: int) -> Tiling | None:
    """The fewest tiles whose input (with the kernel's halo on each cut side) fits one NP.

    Tiles are cut evenly (the last one takes the rest), rounded to the stride times the
    max-pooling stride; the first axis takes at most MAX_TILE_COLUMNS per tile (halo
    not counted); among equal counts the fewest cuts of the second axis win. An NP
    stores each channel of an input row in whole bytes (CNP ROW_BYTES): akida 2.19.3
    cuts 33x100x64 4-bit in 4 stripes (3 would need 7-byte rows of 13 columns, 44,800
    bytes) and 48x200x64 in 3x3, not 2x4 (25 columns: 13-byte rows). None: no tiling
    fits.
    """
    assert layer.input_shape is not None
    x, y, c = layer.input_shape
    halo = (layer.kernel_size - 1) // 2
    step = layer.stride * (layer.pool_stride if layer.pooling is Pooling.Max else 1)
    best: Tiling | None = None
    for ny in range(1, y + 1):
        if best is not None and ny > best.tiles:
            break
        cy = _chunk(y, ny, step)
        if cy is None:
            continue
        rows = cy + halo * min(ny - 1, 2)
        for nx in range(1, x + 1):
            if best is not None and nx * ny >= best.tiles:
                break
            cx = _chunk(x, nx, step)
            if cx is None or cx > MAX_TILE_COLUMNS:
                continue
            cols = cx + halo * min(nx - 1, 2)
            if math.ceil(cols * layer.input_bits / 8) * c * rows <= input_bytes_per_np:
                best = Tiling(nx, ny)
                break
    return best


def weight_bytes(layer: Layer, filters: int) -> int:
    """Weight SRAM bytes of a Conv2D/SeparableConv2D NP holding `filters` filters.

    Convolutions store, per input channel, rows of 800 bits (4-bit weights) or 400 bits
    (1-2 bits) holding blocks of 8 filters' k x k kernels; separable layers, per channel,
    one 50-bit word of depthwise kernel and 50-bit words holding 48 bits of pointwise
    weights of the full blocks of 8 filters (three 4-bit blocks per two words), plus one
    word of its own for a last, partial block (akida 2.19.3, Minimal on 7x7x1024 4-bit:
    64 and 72 filters fit one NP, 65 to 71 do not; 2-bit: 136 and 144 fit, 129-135 and
    137-143 do not).
    """
    assert layer.input_shape is not None
    c = layer.input_shape[2]
    blocks = -(-filters // FILTER_BLOCK)
    k2, bits = layer.kernel_size**2, layer.weight_bits
    if layer.layer_type is LayerType.SeparableConv2D:
        dw_words = -(-(k2 * bits) // 50)
        full, partial = divmod(filters, FILTER_BLOCK)
        pw_words = -(-(full * FILTER_BLOCK * bits) // 48) + (1 if partial else 0)
        return math.ceil(c * (dw_words + pw_words) * 50 / 8)
    row_bits = 800 if bits > 2 else 400
    rows = -(-(blocks * FILTER_BLOCK * k2 * bits) // row_bits)
    return c * rows * row_bits // 8


def filter_groups(layer: Layer, weight_bytes_per_np: int) -> int | None:
    """The fewest groups the filters split into so each NP's weights fit (None: even one
    filter does not fit)."""
    f = layer.filters
    if weight_bytes(layer, 1) > weight_bytes_per_np:
        return None
    for g in range(1, f + 1):
        if weight_bytes(layer, -(-f // g)) <= weight_bytes_per_np:
            return g
    return f


def filter_split(filters: int, groups: int) -> list[int]:
    """Filters on each of `groups` NPs: ceil(filters / groups) each while they last, the
    last NP holding the rest (akida's split; NPs past the filters hold none)."""
    per = -(-filters // groups)
    return [min(per, max(0, filters - g * per)) for g in range(groups)]


def one_channel_split_ok(layer: Layer, groups: int) -> bool:
    """BrainChip's rule for a Conv2D whose input has one channel ("With one input channel,
    the number of neurons per NP / 8 must be even"): above ONE_CHANNEL_ANY_SPLIT filters,
    every NP holds an even number of FILTER_BLOCK-filter blocks.

    Observed on akida 2.19.3 for every filter count 1..64 and NP count: any split of up to
    16 filters maps; 17 never does; 24 maps as 12 + 12 but not on one NP (3 blocks) nor as
    8 x 3. Kernel size, stride, weight and input bits and pooling do not matter; separable
    layers and inputs of 2 or more channels are exempt.
    """
    assert layer.input_shape is not None
    if layer.layer_type is not LayerType.Conv2D or layer.input_shape[2] != 1:
        return True
    if layer.filters <= ONE_CHANNEL_ANY_SPLIT:
        return True
    return all(-(-n // FILTER_BLOCK) % 2 == 0 for n in filter_split(layer.filters, groups))


FNP_BITS = {1: 1, 2: 2, 4: 6}  # bits an FNP stores per weight, by weight bits


def fc_weight_bytes(layer: Layer) -> int:
    """Weight bytes of a FullyConnected layer on an FNP: per neuron, its inputs' weights
    (4-bit weights take 6 bits) plus 128 bits, rounded up to 64 bits."""
    assert layer.input_shape is not None
    x, y, c = layer.input_shape
    bits = FNP_BITS.get(layer.weight_bits, 8) * x * y * c + 128
    return layer.filters * (-(-bits // 64) * 8)
