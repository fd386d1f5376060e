"""Per-NP images of a sequence program: the weights each NP holds, packed, and its config.

The device-memory program image carries, for every NP a layer is placed on, its own copy
of the weights it holds (sized as its SRAM lays them out, np_memory.py) and a
configuration block; the simulated firmware rebuilds the layers' kernels from them.
"""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np

from akida_rt.format.layers import Layer, LayerType
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping import np_memory
from akida_rt.mapping.hardware import NpType, spec_by_name
from akida_rt.mapping.mapper import Placement

# Bytes of an NP's configuration block (registers: geometry, thresholds, routing).
# Fitted, not derived: BrainChip's program minus every NP's packed weights leaves
# 330 to 6,900 bytes per NP on the digits CNN, DS-CNN and AkidaNet 0.5 224; one
# constant puts the image within 15% of akida's program size on all three
# (docs/clock-and-power-model.md). Only a small header of the block is meaningful.
NP_CONFIG_BYTES = 512
_CONFIG_HEADER = struct.Struct("<4sHHiiii")  # magic, layer index, pass, col, row, id, tile
_CONFIG_MAGIC = b"NPCF"


def filter_slices(layer: Layer, np_type: str, nps: int, input_bytes_per_np: int) -> list[slice]:
    """The filters each of a layer's `nps` NPs holds, in NP order.

    A convolution on tiles x groups NPs: NP i holds filter group i % groups of tile
    i // groups (groups of ceil(filters / groups), the last takes the rest); every
    other layer holds all its filters on its one NP (or HRC)."""
    f = layer.filters
    if np_type in (NpType.HRC.value, NpType.FNP2.value, NpType.FNP3.value) or nps <= 1:
        return [slice(0, f)] * max(1, nps)
    tiling = np_memory.tiling(layer, input_bytes_per_np)
    tiles = tiling.tiles if tiling is not None and nps % tiling.tiles == 0 else 1
    sizes = np_memory.filter_split(f, nps // tiles)
    starts = itertools.accumulate(sizes[:-1], initial=0)
    return [slice(start, start + n) for start, n in zip(starts, sizes, strict=True)] * tiles


def weight_size(layer: Layer, np_type: str, filters: int) -> int:
    """Bytes of the packed weights of one NP holding `filters` of the layer's filters."""
    if layer.layer_type is LayerType.FullyConnected:
        return np_memory.fc_weight_bytes(layer)  # an FNP holds all the units
    if np_type == NpType.HRC.value or layer.layer_type is LayerType.InputConv2D:
        ks = layer.kernel_shape()
        assert ks is not None
        return math.ceil(ks[0] * ks[1] * ks[2] * filters * layer.weight_bits / 8)
    return np_memory.weight_bytes(layer, filters)


def _np_values(layer: Layer, part: slice) -> np.ndarray:
    """The weight values one NP holds: its filters' kernels (a separable layer's NPs each
    hold the whole depthwise kernel and their filters' pointwise weights)."""
    w = layer.variables["weights"]
    if layer.layer_type is LayerType.SeparableConv2D:
        return np.concatenate([w.ravel(), layer.variables["pointwise"][..., part].ravel()])
    return w[..., part].ravel()


def pack(values: np.ndarray, bits: int, size: int) -> bytes:
    """`values` as `bits`-bit two's complement fields (1-bit: 0/1), little-endian bit
    order, zero-padded to `size` bytes."""
    u = values.astype(np.int64) & ((1 << bits) - 1)
    fields = ((u[:, None] >> np.arange(bits)) & 1).astype(np.uint8)
    packed = np.packbits(fields.ravel(), bitorder="little").tobytes()
    if len(packed) > size:
        raise ValueError(f"{values.size} {bits}-bit weights exceed {size} bytes")
    return packed + bytes(size - len(packed))


def unpack(data: bytes, bits: int, count: int) -> np.ndarray:
    """The first `count` `bits`-bit values of `data` (inverse of pack), as int64."""
    flat = np.frombuffer(data, np.uint8)
    fields = np.unpackbits(flat, count=count * bits, bitorder="little").reshape(count, bits)
    u = (fields.astype(np.int64) << np.arange(bits)).sum(axis=1)
    if bits > 1:
        u -= (u >= 1 << (bits - 1)) * (1 << bits)
    return u


def np_images(
    layer: Layer, index: int, placement: Placement, device: str, out: pb.SequenceProgram
) -> None:
    """Append one NpImage per NP of `placement` (a layer with weights) to `out`."""
    spec = spec_by_name(device)
    nps = placement.nps or []
    parts = filter_slices(layer, placement.np_type, len(nps), spec.np_input_bytes)
    groups = len(set((p.start, p.stop) for p in parts))
    for i, (ident, part) in enumerate(zip(nps, parts, strict=True)):
        nf = part.stop - part.start
        config = _CONFIG_HEADER.pack(
            _CONFIG_MAGIC, index, placement.pass_index, ident.col, ident.row, ident.id, i // groups
        )
        out.images.add(
            layer=layer.name,
            np=pb.NpId(col=ident.col, row=ident.row, id=ident.id),
            pass_index=placement.pass_index,
            first_filter=part.start,
            filters=nf,
            config=config + bytes(NP_CONFIG_BYTES - len(config)),
            weights=pack(
                _np_values(layer, part),
                layer.weight_bits,
                weight_size(layer, placement.np_type, nf),
            ),
        )


def kernels_from_images(msg: pb.Layer, images: list[pb.NpImage]) -> dict[str, np.ndarray]:
    """A layer's kernels ('weights', and 'pointwise' for separable) rebuilt from its NPs'
    images. Raises ValueError when the images disagree with the layer or each other."""
    if not images:
        raise ValueError("no NP image")
    shape = tuple(msg.weights.shape)
    f = msg.filters
    separable = msg.kind == pb.SEPARABLE_CONV2D
    pw_shape = tuple(msg.pointwise.shape) if separable else ()
    seen: dict[tuple[int, int], bytes] = {}
    weights = np.zeros(shape, np.int8)
    pointwise = np.zeros(pw_shape, np.int8) if separable else None
    covered = np.zeros(f, bool)
    for img in images:
        a, nf = img.first_filter, img.filters
        if not (a >= 0 and nf > 0 and a + nf <= f):
            raise ValueError(f"filters {a}..{a + nf} outside 0..{f}")
        if len(img.config) != NP_CONFIG_BYTES:
            raise ValueError(f"config block of {len(img.config)} bytes, not {NP_CONFIG_BYTES}")
        key = (a, nf)
        if key in seen:
            if seen[key] != img.weights:
                raise ValueError(f"two NPs hold filters {a}..{a + nf} with different weights")
            continue
        seen[key] = img.weights
        dw = int(np.prod(shape)) if separable else 0
        per_filter = int(np.prod(pw_shape[:-1])) if separable else int(np.prod(shape[:-1]))
        count = dw + per_filter * nf
        if len(img.weights) * 8 < count * msg.weight_bits:
            raise ValueError(f"{len(img.weights)} weight bytes for {count} weights")
        values = unpack(img.weights, msg.weight_bits, count).astype(np.int8)
        if separable:
            assert pointwise is not None
            if seen and len(seen) > 1 and not np.array_equal(weights, values[:dw].reshape(shape)):
                raise ValueError("NPs hold different depthwise kernels")
            weights[...] = values[:dw].reshape(shape)
            pointwise[..., a : a + nf] = values[dw:].reshape(*pw_shape[:-1], nf)
        else:
            weights[..., a : a + nf] = values.reshape(*shape[:-1], nf)
        covered[a : a + nf] = True
    if not covered.all():
        raise ValueError(f"filters {np.flatnonzero(~covered).tolist()[:8]} are on no NP")
    return (
        {"weights": weights} if pointwise is None else {"weights": weights, "pointwise": pointwise}
    )
