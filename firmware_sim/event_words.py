"""Input and output events of the simulated AKD1000 as 32-bit DMA words (2 per event).

CNP: word 1 x[11:0] (first dimension), y[27:16]; word 2 feature[10:0], then either the
activation [23:16] or the potential [31:12] (20-bit signed). FNP: word 1 feature[17:0];
word 2 value[25:0] (26-bit signed potential, or activation) and polarity[31]. HRC outputs
put the first dimension in y and, for potentials, the 4 top bits in word 1 [31:28].
Layouts as BrainChip's Akida Engine reads and writes them (src/dma_events_format.h).
"""

from __future__ import annotations

import numpy as np

CNP_POT_BITS = 20
FNP_POT_BITS = 26
HRC_POT_BITS = 24


def _saturate(v: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(v, lo, hi).astype(np.int64)


def decode_input_events(
    words: np.ndarray, kind: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, int]:
    """The dense (h, w, c) uint8 input the events describe, and how many were in range.

    Events outside the shape are ignored, as the chip ignores the engine's dummy event
    (sent when an input has no event at all).
    """
    h, w, c = shape
    out = np.zeros(shape, np.uint8)
    pairs = words[: words.size // 2 * 2].astype(np.int64).reshape(-1, 2)
    w1, w2 = pairs[:, 0], pairs[:, 1]
    if kind == "fnp":
        index = w1 & 0x3FFFF
        value = np.minimum(w2 & 0x3FFFFFF, 255)
        keep = index < h * w * c
        index, value = index[keep], value[keep]
        # The engine linearises non-flat FNP inputs column-major.
        i0, rest = index % h, index // h
        i1, i2 = rest % w, rest // w
    else:
        i0, i1 = w1 & 0xFFF, (w1 >> 16) & 0xFFF
        i2, value = w2 & 0x7FF, (w2 >> 16) & 0xFF
        keep = (i0 < h) & (i1 < w) & (i2 < c)
        i0, i1, i2, value = i0[keep], i1[keep], i2[keep], value[keep]
    out[i0, i1, i2] = value
    return out, int(value.size)


def encode_output_events(y: np.ndarray, kind: str, activation: bool) -> np.ndarray:
    """The DMA words of one output map `y` (h, w, c): activations (non-zero ones) or
    potentials (every FNP neuron; the non-zero CNP/HRC ones)."""
    y = np.asarray(y)
    if kind == "fnp":
        flat = y.reshape(-1)
        index = np.flatnonzero(flat) if activation else np.arange(flat.size)
        value = _saturate(np.rint(flat[index]).astype(np.int64), FNP_POT_BITS)
        w1 = index.astype(np.int64)
        w2 = (value & 0x3FFFFFF) | (1 << 31)
        return _interleave(w1, w2)
    i0, i1, i2 = np.nonzero(y)
    value = np.rint(y[i0, i1, i2]).astype(np.int64)
    if activation:
        first, second = (i1, i0) if kind == "hrc" else (i0, i1)
        w1 = first | (second << 16)
        w2 = i2 | ((value & 0xFF) << 16)
    elif kind == "hrc":
        value = _saturate(value, HRC_POT_BITS)
        w1 = i0 | (i1 << 16) | (((value >> CNP_POT_BITS) & 0xF) << 28)
        w2 = i2 | ((value & 0xFFFFF) << 12)
    else:
        value = _saturate(value, CNP_POT_BITS)
        w1 = i0 | (i1 << 16)
        w2 = i2 | ((value & 0xFFFFF) << 12)
    return _interleave(w1.astype(np.int64), w2.astype(np.int64))


def _interleave(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    out = np.empty(2 * w1.size, np.uint32)
    out[0::2] = w1 & 0xFFFFFFFF
    out[1::2] = w2 & 0xFFFFFFFF
    return out
