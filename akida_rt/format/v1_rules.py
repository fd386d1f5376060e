"""BrainChip Akida 1.0 (v1) conventions written in akida_rt's one integer rule set.

Pure numpy, no `akida` import: the importer (akida_rt.tools.metatf) reads a v1 model and
uses these functions to store it as akida_rt layers; docs/semantics.md, "BrainChip v1".
"""

from __future__ import annotations

import math

import numpy as np

from akida_rt.errors import ModelError
from akida_rt.format.layers import MAX_ACT_SHIFT

STEP_FRACTION_BITS = 4  # v1 keeps act_step with 4 fractional bits


def step_divisor(act_step: np.ndarray, bits: int) -> np.ndarray:
    """S = floor(16 * act_step) * 2^(4 - bits): the integer divisor of the v1 activation."""
    step = np.asarray(act_step, np.float32).astype(np.float64)
    return np.floor(step * 2**STEP_FRACTION_BITS).astype(np.int64) << (4 - bits)


def activation_params(
    threshold: np.ndarray, act_step: np.ndarray, bits: int, where: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(act_scale, act_offset, act_shift) giving exactly the v1 activation

        level = clip(ceil(16 * (p - threshold) / S), 0, 2^bits - 1)

    as akida_rt's `clip(floor((p * act_scale + act_offset) / 2^act_shift), 0, 2^bits - 1)`.

    With n = 16 p - 16 threshold + S - 1, the v1 level is floor(n / S). Division by S is
    multiplication by m = ceil(2^k / S) then a shift by k: the result is exact for every
    0 <= n < S (2^bits + 1) once 2^k >= S^2 (2^bits + 1), and above that range both sides
    reach the top level (the product never undershoots), below it both are <= 0.
    """
    s = step_divisor(act_step, bits)
    if np.any(s < 1):
        raise ModelError(f"{where}: act_step below 1/16 is 0 at v1's 4 fractional bits")
    top = 2**bits - 1
    shift = max(math.ceil(math.log2(int(s.max()) ** 2 * (top + 2))), 0)
    if shift > MAX_ACT_SHIFT:
        raise ModelError(f"{where}: act_step {float(np.max(act_step))} is too large to represent")
    m = np.array([-(-(1 << shift) // int(v)) for v in s], dtype=object)
    th = np.asarray(threshold).astype(np.int64).astype(object)
    scale = 16 * m
    offset = (s.astype(object) - 1 - 16 * th) * m
    return scale.astype(np.int64), offset.astype(np.int64), shift


def output_dequantization(threshold: np.ndarray, act_step: np.ndarray) -> tuple[np.ndarray, ...]:
    """(output_scale, output_offset) so predict() = (p - threshold) / act_step."""
    step = np.asarray(act_step, np.float32).astype(np.float64)
    return 1.0 / step, -np.asarray(threshold, np.float64) / step


def rotate_kernel(weights: np.ndarray) -> np.ndarray:
    """v1 Convolutional/SeparableConvolutional kernels are stored rotated by 180 degrees."""
    return np.ascontiguousarray(weights[::-1, ::-1])


def fc_weights(weights: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """v1 FullyConnected weights (flattened in C, W, H order) in akida_rt's H, W, C order."""
    h, w, c = input_shape
    units = weights.shape[-1]
    cwh = weights.reshape(c, w, h, units)
    return np.ascontiguousarray(cwh.transpose(2, 1, 0, 3).reshape(1, 1, h * w * c, units))
