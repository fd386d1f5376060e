"""Folding arithmetic: a float affine map plus quantized ReLU into integer thresholds.

Pure numpy, no TensorFlow. A block computes `y = acc * A + B` per channel on the integer
accumulator `acc` (batch-norm, weight and input scales folded together), then the quantized
ReLU `q = clip(floor(y / step + 0.5), 0, 2^bits - 1)`. docs/semantics.md section 3 gives the
fixed-point form the chip evaluates: `clip(floor((acc * act_scale + act_offset) / 2^act_shift))`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from akida_rt.format.layer_params import MAX_ACT_SHIFT

# Headroom below 2^53 so that the engine's float64 path stays exact for |acc| <= bound.
EXACT_LIMIT = 2.0**52


@dataclass
class FoldedActivation:
    """Integer threshold/step parameters of one layer (docs/semantics.md section 3)."""

    act_scale: np.ndarray  # int64, > 0
    act_offset: np.ndarray  # int64
    act_shift: int
    negate: np.ndarray  # bool per channel: weights must be negated (A < 0)
    constant: np.ndarray  # bool per channel: A == 0, weights must be zeroed


def round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Round to nearest with ties up: floor(x + 0.5) (the rounding of the quantized ReLU)."""
    return np.floor(np.asarray(x, np.float64) + 0.5)


def choose_shift(a_max: float, c_max: float, bound: int, positions: int = 1) -> int:
    """The largest act_shift keeping `|acc * act_scale| + |act_offset|` below 2^52.

    Args:
        a_max: largest |A / step| over channels (per accumulator unit).
        c_max: largest |B / step + 0.5| over channels.
        bound: bound on |acc| per position (akida_rt.engine.integer.accumulator_bound).
        positions: positions summed by global average pooling (1 otherwise).
    """
    top = float(bound) * positions * a_max + c_max + 1.0
    shift = math.floor(math.log2(EXACT_LIMIT / top)) if top > 0 else MAX_ACT_SHIFT
    return max(0, min(MAX_ACT_SHIFT, shift))


def fold_activation(
    scale: np.ndarray, offset: np.ndarray, step: float, bound: int, positions: int = 1
) -> FoldedActivation:
    """Fold `q = clip(floor((acc*scale + offset)/step + 0.5))` into integer thresholds.

    Channels with a negative scale are reported in `negate`: the caller negates their
    weights, which turns `acc` into `-acc` and the scale positive. Channels with a zero
    scale (constant output) are reported in `constant`: their weights must be zeroed.

    Args:
        scale: A per channel (float, per accumulator unit).
        offset: B per channel (float).
        step: the float value of one activation level.
        bound: bound on |acc| (accumulator_bound of the layer, per position).
        positions: number of positions summed by global average pooling.
    """
    a = np.asarray(scale, np.float64) / float(step)
    c = np.asarray(offset, np.float64) / float(step) + 0.5
    negate = a < 0
    a = np.abs(a)
    shift = choose_shift(
        float(a.max(initial=0.0)), float(np.abs(c).max(initial=0.0)), bound, positions
    )
    act_scale = np.rint(a * 2.0**shift).astype(np.int64)
    constant = act_scale <= 0
    act_scale[constant] = 1
    act_offset = np.rint(c * 2.0**shift).astype(np.int64)
    return FoldedActivation(act_scale, act_offset, shift, negate & ~constant, constant)


def integer_activation(
    acc: np.ndarray, act_scale: np.ndarray, act_offset: np.ndarray, act_shift: int, bits: int
) -> np.ndarray:
    """The chip's activation in exact integer arithmetic (int64, arithmetic shift)."""
    v = np.asarray(acc, np.int64) * np.asarray(act_scale, np.int64) + np.asarray(
        act_offset, np.int64
    )
    return np.clip(v >> act_shift, 0, 2**bits - 1)


def float_activation(
    acc: np.ndarray, scale: np.ndarray, offset: np.ndarray, step: float, bits: int
) -> np.ndarray:
    """The quantized ReLU on `acc * scale + offset`, in float64 (the model being folded)."""
    y = np.asarray(acc, np.float64) * scale + offset
    return np.clip(round_half_up(y / step), 0, 2**bits - 1)


def batchnorm_affine(
    gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Batch-norm at inference as `y = x * A + B` (float64)."""
    a = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    return a, np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * a
