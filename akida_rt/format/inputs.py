"""The one check of a batch of model inputs (dtype, shape, range), in-process and in
akidad; a low-level rule of the model format, with no model attached."""

from __future__ import annotations

from typing import Any

import numpy as np

from akida_rt.errors import InputError


def check_input(x: Any, shape: tuple[int, ...], bits: int, what: str) -> np.ndarray:
    """`x` if it is a batch of inputs of a model taking `shape` (HWC) uint8 inputs of
    `bits` bits; the one input check, in-process and in akidad.

    Raises:
        InputError: naming `what` and the dtype, shape or range that is wrong.
    """
    if not isinstance(x, np.ndarray):
        raise InputError(f"{what}: inputs must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise InputError(
            f"{what}: inputs must be uint8, got {x.dtype}; scale raw data to 0..255 "
            "(the model's input_scaling maps it to the trained range)"
        )
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise InputError(
            f"{what}: input shape {tuple(x.shape)} does not match (N, {', '.join(map(str, shape))})"
        )
    if x.shape[0] == 0:
        raise InputError(f"{what}: the input batch is empty")
    if bits < 8 and int(x.max()) >= 2**bits:
        raise InputError(f"{what}: input values reach {int(x.max())}, above the {bits}-bit range")
    return x
