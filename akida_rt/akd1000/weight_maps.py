"""The weight layouts of AKD1000 NP memories, per layer kind: CNP filter SRAM (convolution,
depthwise, pointwise), FNP weight memory (FullyConnected) and HRC SRAM (InputConv2D).

Each function returns a sram_layout.Layout in BrainChip's weight order (akida's
`get_variable` shape: (kx, ky, C, F) kernels, (1, 1, inputs, units) FullyConnected), so
`gather` gives akida's array and `scatter` writes it back. The rules were measured one
weight at a time (docs/program-binary.md, "Weights").
"""

from __future__ import annotations

import math

import numpy as np

from akida_rt.akd1000.sram_layout import HALF, PAYLOAD_BITS, Code, Layout
from akida_rt.errors import ProgramFormatError

GROUP = 8  # CNP 4-bit kernels: filters interleaved in groups of 8 per kernel row
# CNP 4-bit convolution: payload offsets of the kernel-row slots of one filter-SRAM row.
# Rows of 4 or 12 bits never straddle the two payload halves; longer rows do.
CONV4_SLOTS = {
    1: tuple(4 * i for i in range(12)) + tuple(HALF + 4 * i for i in range(12)),
    3: (0, 12, 24, 36, 50, 62, 74, 86),
    5: (0, 20, 40, 60, 80),
    7: (0, 28, 56),
}
CONV4_PADDED_ROWS = (7,)  # kernel sizes whose group rows start on a new filter-SRAM row
# CNP 1- and 2-bit convolution: bits per weight plane of one kernel (k*k rounded up).
PLANE_BITS = {1: 1, 3: 10, 5: 25, 7: 50}
PLANE_BITS_1BIT = {1: 2, 3: 10, 5: 25, 7: 50}
PW_HALF_BITS = 48  # pointwise weights use 48 bits of each 50-bit payload half
HRC_CHUNK = 9  # HRC SRAM: weights per 3-word slot
HRC_BANKS = 3
FNP_META_WORDS = 4


def _conv4(k: int, c: int, nf: int, channel_blocks: int) -> Layout:
    slots = CONV4_SLOTS.get(k)
    if slots is None:
        raise ProgramFormatError(f"no measured 4-bit filter-SRAM layout for a {k}x{k} kernel")
    per = len(slots)
    d0, d1, ch, f = np.meshgrid(
        np.arange(k), np.arange(k), np.arange(c), np.arange(nf), indexing="ij"
    )
    g, fi = np.divmod(f, GROUP)
    if k in CONV4_PADDED_ROWS:
        row_blocks = math.ceil(GROUP / per)
        block = (g * k + d1) * row_blocks + fi // per
        slot = fi % per
    else:
        n = (g * k + d1) * GROUP + fi
        block, slot = np.divmod(n, per)
    payload = block * PAYLOAD_BITS + np.asarray(slots)[slot] + 4 * d0
    at = ch * channel_blocks * PAYLOAD_BITS + payload
    return Layout(at, Code.SIGN_MAG4, 4, words=c * channel_blocks * 4, rows=True)


def _conv_planes(k: int, c: int, nf: int, wb: int, channel_blocks: int) -> Layout:
    plane = (PLANE_BITS_1BIT if wb == 1 else PLANE_BITS).get(k)
    if plane is None:
        raise ProgramFormatError(f"no measured {wb}-bit filter-SRAM layout for {k}x{k}")
    item = plane if wb == 1 else 2 * plane
    d0, d1, ch, f = np.meshgrid(
        np.arange(k), np.arange(k), np.arange(c), np.arange(nf), indexing="ij"
    )
    payload = f * item + d1 * k + d0
    at = ch * channel_blocks * PAYLOAD_BITS + payload
    words = c * channel_blocks * 4
    if wb == 1:
        return Layout(at, Code.PLANE, 1, words=words, rows=True)
    return Layout(at, Code.PLANES, 1, other=plane, words=words, rows=True)


def conv(k: int, c: int, nf: int, wb: int, channel_blocks: int) -> Layout:
    """A Conv2D's filter SRAM in one NP: `nf` filters of k x k x c, `wb` bits, each input
    channel `channel_blocks` filter-SRAM rows apart (NP register CHANNEL_BLOCKS)."""
    if wb == 4:
        return _conv4(k, c, nf, channel_blocks)
    return _conv_planes(k, c, nf, wb, channel_blocks)


def conv_channel_blocks(k: int, c: int, nf: int, wb: int) -> int:
    """Filter-SRAM rows per input channel BrainChip's compiler gives a Conv2D (encode)."""
    if wb == 4:
        per = len(CONV4_SLOTS[k])
        groups = math.ceil(nf / GROUP)
        if k in CONV4_PADDED_ROWS:
            rows = groups * k * math.ceil(GROUP / per)
        else:
            rows = math.ceil(groups * k * GROUP / per)
        return -(-rows // 8) * 8
    plane = (PLANE_BITS_1BIT if wb == 1 else PLANE_BITS)[k]
    item = plane if wb == 1 else 2 * plane
    # room for whole groups of 8 filters (measured: 2-bit 3x3, 20 filters take 8 rows)
    rows = math.ceil(math.ceil(nf / GROUP) * GROUP * item / PAYLOAD_BITS)
    return -(-rows // 4) * 4


def depthwise(k: int, c: int, wb: int) -> Layout:
    """A SeparableConv2D's depthwise kernels (k, k, c, 1), the same in every NP of the layer.

    A channel's kernel is one item when it fits a payload half (items packed per half),
    else its rows are, a channel starting on a new half."""
    d0, d1, ch, _ = np.meshgrid(np.arange(k), np.arange(k), np.arange(c), [0], indexing="ij")
    if k * k * wb <= HALF:
        per_half = HALF // (k * k * wb)
        half, item = np.divmod(ch, per_half)
        payload = half * HALF + item * k * k * wb + (d1 * k + d0) * wb
        halves = math.ceil(c / per_half)
    else:
        rows_per_half = HALF // (k * wb)
        ch_halves = math.ceil(k / rows_per_half)
        half = ch * ch_halves + d1 // rows_per_half
        payload = half * HALF + (d1 % rows_per_half) * k * wb + d0 * wb
        halves = c * ch_halves
    return Layout(payload, Code.TWOS, wb, words=2 * halves, rows=True)


def pointwise(c: int, nf: int, wb: int, halves: int) -> Layout:
    """A SeparableConvolutional's pointwise weights (1, 1, c, nf) of the `nf` filters one
    NP holds: `halves` payload halves per input channel (the memory is 2 words a half),
    the filters packed 48 / wb to a half (12 at 4 bits, 24 at 2 bits: measured)."""
    _, _, ch, f = np.meshgrid([0], [0], np.arange(c), np.arange(nf), indexing="ij")
    per_half = PW_HALF_BITS // wb
    half = ch * halves + f // per_half
    payload = half * HALF + (f % per_half) * wb
    return Layout(payload, Code.TWOS, wb, words=2 * c * halves, rows=True)


def fnp_neuron_words(inputs: int, wb: int) -> int:
    """Words of one neuron in FNP weight memory: 4 metadata words, then the weights."""
    chunks = math.ceil(inputs / 32)
    return FNP_META_WORDS + chunks * {1: 1, 2: 2, 4: 6}[wb]


def fnp(inputs: int, units: int, wb: int) -> Layout:
    """A FullyConnected's weights (1, 1, inputs, units) in FNP weight memory: per neuron,
    4 metadata words then bit planes (1-bit: one; 2-bit: positive then negative;
    4-bit: 3 magnitude planes per 32 inputs for positive weights, then for negative)."""
    if wb not in (1, 2, 4):
        raise ProgramFormatError(f"{wb}-bit FullyConnected weights: AKD1000 FNPs take 1, 2, 4")
    stride = fnp_neuron_words(inputs, wb) * 32
    chunks = math.ceil(inputs / 32)
    _, _, i, u = np.meshgrid([0], [0], np.arange(inputs), np.arange(units), indexing="ij")
    base = u * stride + FNP_META_WORDS * 32
    words = units * stride // 32
    if wb == 1:
        return Layout(base + i, Code.PLANE, 1, words=words)
    if wb == 2:
        return Layout(base + i, Code.PLANES, 1, other=chunks * 32, words=words)
    at = base + (i // 32) * 96 + i % 32
    return Layout(at, Code.MAG_PLANES, 3, other=chunks * 96, plane_step=32, words=words)


def hrc_slots(k: int, c: int) -> int:
    """3-word slots per filter in each HRC SRAM bank."""
    chunks = math.ceil(k * k / HRC_CHUNK)
    return chunks if c > 1 else math.ceil(chunks / HRC_BANKS)


def hrc_banks(k: int, c: int) -> int:
    """HRC SRAM banks (register SRAM_SELECT bits 0-2) the weights use."""
    return c if c > 1 else min(HRC_BANKS, math.ceil(k * k / HRC_CHUNK))


def hrc(k: int, c: int, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """(bank, byte offset in that bank) of each 8-bit weight (k, k, c, nf) of an
    InputConv2D: per filter, chunks of 9 weights in 3-word slots; 3 channels take one bank
    each, one channel deals its chunks to banks 0, 1, 2 in turn."""
    d0, d1, ch, f = np.meshgrid(
        np.arange(k), np.arange(k), np.arange(c), np.arange(nf), indexing="ij"
    )
    flat = d0 * k + d1
    chunk, byte = np.divmod(flat, HRC_CHUNK)
    slots = hrc_slots(k, c)
    if c > 1:
        bank, slot = ch, chunk
    else:
        slot, bank = np.divmod(chunk, HRC_BANKS)
    return bank, (f * slots + slot) * 12 + byte
