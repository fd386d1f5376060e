"""Weight and activation quantizers for Keras 3, with straight-through gradients.

Both round half up, `floor(x + 0.5)`, as the chip's threshold/step does
(docs/semantics.md), so the converted program reproduces the quantized Keras forward.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from akida_rt.format.layer_params import WEIGHT_BITS, weight_range

EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="akida_rt")
class WeightQuantizer:
    """Symmetric b-bit weights `w = w_int * scale` (1-bit weights are binary 0/1).

    Args:
        bits: 1, 2, 4 or 8. 2-bit weights are ternary (-1, 0, 1).
        per_axis: one scale per output channel (last kernel axis) instead of per tensor.
    """

    def __init__(self, bits: int = 4, per_axis: bool = True) -> None:
        if bits not in WEIGHT_BITS:
            raise ValueError(f"weight bits {bits} not in {WEIGHT_BITS}")
        self.bits = int(bits)
        self.per_axis = bool(per_axis)

    @property
    def levels(self) -> tuple[int, int]:
        return weight_range(self.bits)

    def scale(self, w: Any) -> Any:
        """Scale per output channel (shape (F,)) or per tensor (shape ())."""
        axes = tuple(range(len(w.shape) - 1)) if self.per_axis else None
        if self.bits == 1:  # binary 0/1: half the mean magnitude is the decision point
            s = ops.mean(ops.abs(w), axis=axes) * 2.0
        else:
            s = ops.max(ops.abs(w), axis=axes) / float(self.levels[1])
        return ops.maximum(ops.stop_gradient(s), EPSILON)

    def integers(self, w: Any, scale: Any = None) -> Any:
        """Integer weights (float tensor holding integers)."""
        s = self.scale(w) if scale is None else scale
        lo, hi = self.levels
        return ops.clip(ops.floor(w / s + 0.5), float(lo), float(hi))

    def __call__(self, w: Any) -> Any:
        """Fake-quantized weights; the gradient passes straight through."""

        @ops.custom_gradient
        def ste(v: Any) -> Any:
            def grad(*args: Any, upstream: Any = None) -> Any:
                return args[0] if upstream is None else upstream

            return self.integers(v) * self.scale(v), grad

        return ste(ops.multiply(w, 1.0))  # a tensor, not the variable itself

    def numpy(self, w: Any) -> tuple[np.ndarray, np.ndarray]:
        """(integer weights as int8, scale as float64) for the converter."""
        s = self.scale(w)
        q = ops.convert_to_numpy(self.integers(w, s))
        return q.astype(np.int8), np.asarray(ops.convert_to_numpy(s), np.float64)

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "per_axis": self.per_axis}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WeightQuantizer:
        return cls(**config)


def activation_step(max_value: float, bits: int) -> float:
    """Float value of one activation level, computed in float32 as the Keras layer does."""
    return float(np.float32(max_value) / np.float32(2**bits - 1))


def quantize_activation(x: Any, step: Any, bits: int) -> Any:
    """Quantized ReLU levels `clip(floor(x / step + 0.5), 0, 2^bits - 1)` (no gradient)."""
    return ops.clip(ops.floor(x / step + 0.5), 0.0, float(2**bits - 1))


def relu_straight_through(x: Any, step: Any, max_value: Any, bits: int) -> Any:
    """Quantized ReLU output `levels * step`; gradient 1 inside (0, max_value), 0 outside."""

    step = ops.multiply(step, 1.0)  # tensors, so no variable is read inside
    max_value = ops.multiply(max_value, 1.0)

    @ops.custom_gradient
    def qrelu(v: Any) -> Any:
        out = quantize_activation(v, step, bits) * step

        def grad(*args: Any, upstream: Any = None) -> Any:
            g = args[0] if upstream is None else upstream
            inside = ops.logical_and(ops.greater(v, 0.0), ops.less(v, max_value))
            return g * ops.cast(inside, g.dtype)

        return out, grad

    return qrelu(x)
