"""Input and output events of the simulated AKD1000 as 32-bit DMA words (2 per event).

CNP: word 1 x[11:0] (first dimension), y[27:16]; word 2 feature[10:0], then either the
activation [23:16] or the potential [31:12] (20-bit signed). FNP: word 1 feature[17:0];
word 2 value[25:0] (26-bit signed potential, or activation) and polarity[31]. HRC outputs
put the first dimension in y and, for potentials, the 4 top bits in word 1 [31:28].
Layouts as BrainChip's Akida Engine reads and writes them (src/dma_events_format.h).
"""

from __future__ import annotations

import numpy as np

from akida_rt.akd1000 import descriptors as d

CNP_POT_BITS = 20
FNP_POT_BITS = 26
HRC_POT_BITS = 24


def _saturate(v: np.ndarray, bits: int) -> np.ndarray:
    """A potential as the event's signed field carries it: past the field it saturates,
    as the NPs' 20-bit potentials do in akida's forward (docs/program-binary.md, "Output
    potentials"; no source says what the NP does there)."""
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
    pairs = np.asarray(words, np.uint32)[: len(words) // 2 * 2].reshape(-1, 2)
    if kind == "fnp":
        index, value = (v.astype(np.int64) for v in d.decode_fnp_events(pairs, signed=False))
        keep = index < h * w * c
        index, value = index[keep], np.minimum(value[keep], 255)
        # The engine linearises non-flat FNP inputs column-major (first dimension fastest).
        i0, rest = index % h, index // h
        i1, i2 = rest % w, rest // w
    else:
        i0, i1, i2, value = (v.astype(np.int64) for v in d.decode_cnp_events(pairs))
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
        return d.encode_fnp_events(index, value).reshape(-1)
    i0, i1, i2 = np.nonzero(y)
    value = np.rint(y[i0, i1, i2]).astype(np.int64)
    if activation:
        # HRC activations put the first dimension in y (the engine reads them swapped).
        first, second = (i1, i0) if kind == "hrc" else (i0, i1)
        return d.encode_cnp_events(first, second, i2, value).reshape(-1)
    bits = HRC_POT_BITS if kind == "hrc" else CNP_POT_BITS
    pot = _saturate(value, bits)
    return d.encode_cnp_potentials(i0, i1, i2, pot, hrc=kind == "hrc").reshape(-1)
