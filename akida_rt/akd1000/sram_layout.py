"""Where AKD1000 NP memories keep each weight: bit positions as data, used both ways.

Every layout here is a map from a weight's index to bit offsets in an NP memory plus a
value code; `gather` decodes words into weights and `scatter` encodes weights into words
with the same map. Measured on BrainChip's compiler (docs/program-binary.md), not read
from any source: akida 2.19.3 maps a v1 layer on `akida.AKD1000()`, one weight changes,
the bits that move are recorded.

CNP filter SRAM rows are 100 payload bits serialized in 4 words: payload bits 0-49 at
bits 0-49 of the block, 50-99 at bits 64-113 (`serial`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from akida_rt.errors import ProgramFormatError

BLOCK_BITS = 128  # one filter-SRAM row as 4 words
PAYLOAD_BITS = 100  # bits of a row that hold weights
HALF = 50  # the second half of the payload sits at bit 64 of the row
HALF_GAP = 14  # 64 - 50


class Code(Enum):
    """How a weight value is written in its bits."""

    SIGN_MAG4 = "sign_mag4"  # CNP conv 4-bit: |v| in bits 0-2, bit 3 set when v > 0
    TWOS = "twos"  # two's complement in `bits` bits (separable, HRC 8-bit)
    PLANES = "planes"  # two bits: +1 in the positive plane, -1 in the negative plane
    PLANE = "plane"  # one bit: the weight (0 or 1)
    MAG_PLANES = "mag_planes"  # FNP 4-bit: 3 magnitude planes for v > 0, 3 for v < 0
    UNSIGNED = "unsigned"  # an unsigned number of `bits` bits (thresholds' act_step x 16)


@dataclass(frozen=True)
class Layout:
    """Bit offsets of every weight (and of its other plane(s)) in one memory.

    Attributes:
        at: bit offset of each weight's lowest bit (or of its positive-plane bit).
        code: how the value is written.
        bits: value width (TWOS, SIGN_MAG4) or magnitude planes (MAG_PLANES).
        other: for PLANES/MAG_PLANES, offset from `at` to the negative plane.
        plane_step: for MAG_PLANES, offset between magnitude planes.
        words: words the memory needs.
        rows: offsets count filter-SRAM payload bits (`serial` places each bit), so a
            value may straddle the gap between the two payload halves.
    """

    at: np.ndarray
    code: Code
    bits: int = 1
    other: int | np.ndarray = 0
    plane_step: int = 0
    words: int = 0
    rows: bool = False


def serial(payload: np.ndarray) -> np.ndarray:
    """Serialized bit offset of filter-SRAM payload bit `payload` (100 payload bits a row)."""
    p = np.asarray(payload, np.int64)
    row, b = np.divmod(p, PAYLOAD_BITS)
    return row * BLOCK_BITS + b + np.where(b >= HALF, HALF_GAP, 0)


def _positions(at: np.ndarray, width: int, rows: bool) -> np.ndarray:
    """Bit offsets in memory of bits 0..width-1 of each value (last axis: the bit)."""
    bits = np.asarray(at, np.int64)[..., None] + np.arange(width)
    return serial(bits) if rows else bits


def _one_word(at: np.ndarray, width: int, rows: bool) -> bool:
    """Whether every value lies within one 32-bit word (read and written whole)."""
    return not rows and bool(np.all(np.asarray(at) % 32 + width <= 32))


def _bits_at(words: np.ndarray, at: np.ndarray, width: int, rows: bool) -> np.ndarray:
    w = np.asarray(words, np.uint32).astype(np.uint64)
    at = np.asarray(at, np.int64)
    top = int(at.max(initial=-1)) + width - 1
    last = int(serial(np.array(top))) if rows else top
    if at.size and last >= 32 * w.size:
        raise ProgramFormatError(f"a value at bit {last} lies past the {w.size}-word memory")
    if _one_word(at, width, rows):
        mask = np.uint64((1 << width) - 1)
        return ((w[at // 32] >> (at % 32).astype(np.uint64)) & mask).astype(np.int64)
    pos = _positions(at, width, rows)
    bits = (w[pos // 32] >> (pos % 32).astype(np.uint64)) & np.uint64(1)
    return (bits.astype(np.int64) << np.arange(width)).sum(axis=-1)


def _put_bits(
    words: np.ndarray, at: np.ndarray, width: int, values: np.ndarray, rows: bool
) -> None:
    at = np.asarray(at, np.int64)
    v = np.broadcast_to(np.asarray(values, np.int64), at.shape)
    if _one_word(at, width, rows):
        field = (v & ((1 << width) - 1)).astype(np.uint64) << (at % 32).astype(np.uint64)
        np.bitwise_or.at(words, (at // 32).ravel(), field.astype(np.uint32).ravel())
        return
    pos = _positions(at, width, rows)
    bit = ((v[..., None] >> np.arange(width)) & 1).astype(np.uint32)
    np.bitwise_or.at(words, (pos // 32).ravel(), (bit << (pos % 32).astype(np.uint32)).ravel())


def _dtype(layout: Layout) -> type:
    """int8 for weights; int64 for wider values (thresholds, act_step x 16, counts)."""
    if layout.code is Code.UNSIGNED or (layout.code is Code.TWOS and layout.bits > 8):
        return np.int64
    return np.int8


def gather(words: np.ndarray, layout: Layout) -> np.ndarray:
    """The values `layout` places in `words` (the shape of layout.at; int8 for weights,
    int64 for values wider than 8 bits)."""
    at, code = layout.at, layout.code
    if code is Code.UNSIGNED:
        return _bits_at(words, at, layout.bits, layout.rows).astype(_dtype(layout))
    if code is Code.PLANE:
        return _bits_at(words, at, 1, layout.rows).astype(np.int8)
    if code is Code.PLANES:
        pos = _bits_at(words, at, 1, layout.rows)
        neg = _bits_at(words, at + layout.other, 1, layout.rows)
        return (pos - neg).astype(np.int8)
    if code is Code.SIGN_MAG4:
        v = _bits_at(words, at, 4, layout.rows)
        mag = v & 7
        return np.where(v & 8, mag, -mag).astype(np.int8)
    if code is Code.TWOS:
        v = _bits_at(words, at, layout.bits, layout.rows)
        signed = np.where(v >= 1 << (layout.bits - 1), v - (1 << layout.bits), v)
        return signed.astype(_dtype(layout))
    if code is Code.MAG_PLANES:
        pos = np.zeros(at.shape, np.int64)
        neg = np.zeros(at.shape, np.int64)
        for i in range(layout.bits):
            pos |= _bits_at(words, at + i * layout.plane_step, 1, layout.rows) << i
            neg |= _bits_at(words, at + layout.other + i * layout.plane_step, 1, layout.rows) << i
        return (pos - neg).astype(np.int8)
    raise AssertionError(code)


def scatter(weights: np.ndarray, layout: Layout, words: np.ndarray | None = None) -> np.ndarray:
    """`words` (zeros of layout.words when None) with `weights` written as `layout` says."""
    out = np.zeros(layout.words, np.uint32) if words is None else words
    w = np.asarray(weights, np.int64)
    at, code = layout.at, layout.code
    if code is Code.PLANE:
        _put_bits(out, at, 1, w, layout.rows)
    elif code is Code.PLANES:
        _put_bits(out, at, 1, (w > 0).astype(np.int64), layout.rows)
        _put_bits(out, at + layout.other, 1, (w < 0).astype(np.int64), layout.rows)
    elif code is Code.SIGN_MAG4:
        _put_bits(out, at, 4, np.abs(w) | np.where(w > 0, 8, 0), layout.rows)
    elif code in (Code.TWOS, Code.UNSIGNED):
        _put_bits(out, at, layout.bits, w & ((1 << layout.bits) - 1), layout.rows)
    elif code is Code.MAG_PLANES:
        for i in range(layout.bits):
            _put_bits(out, at + i * layout.plane_step, 1, (np.maximum(w, 0) >> i) & 1, layout.rows)
            _put_bits(
                out,
                at + layout.other + i * layout.plane_step,
                1,
                (np.maximum(-w, 0) >> i) & 1,
                layout.rows,
            )
    return out


def covered(layout: Layout, words: int | None = None) -> np.ndarray:
    """The bits of the memory `layout` writes (ones), as `words` words (layout.words when
    None): what `gather` reads. The rest of a memory is carried raw (np_memories)."""
    n = max(layout.words, words or 0)
    out = np.zeros(n, np.uint32)
    ones = np.full(np.shape(layout.at), -1, np.int64)
    if layout.code is Code.MAG_PLANES:
        for i in range(layout.bits):
            _put_bits(out, layout.at + i * layout.plane_step, 1, ones, layout.rows)
            _put_bits(out, layout.at + layout.other + i * layout.plane_step, 1, ones, layout.rows)
    elif layout.code is Code.PLANES:
        _put_bits(out, layout.at, 1, ones, layout.rows)
        _put_bits(out, layout.at + layout.other, 1, ones, layout.rows)
    else:
        width = {Code.PLANE: 1, Code.SIGN_MAG4: 4}.get(layout.code, layout.bits)
        _put_bits(out, layout.at, width, ones, layout.rows)
    return out if words is None else out[:words]
