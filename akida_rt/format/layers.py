"""The Akida 1.0 layer: `Layer`, the base of the five kinds in layer_kinds.py, with its
hyper-parameters, integer variables and their validation rules.

The integer semantics these layers follow are written down in docs/semantics.md; the
engine (akida_rt.engine.integer) executes them and the program format (akida_rt.format.program) stores them.
LayerType, Padding, Pooling and MAX_ACT_SHIFT live in layer_params.py; akida_rt.mapping,
model.model, format.v1_rules and learning.edge still import them from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from akida_rt.errors import ModelError
from akida_rt.format.layer_params import (
    ACTIVATION_BITS,
    CHANNEL_VARIABLES,
    INPUT_BITS,
    MAX_ACT_SHIFT,
    MAX_NAME_CHARS,
    MAX_WORK_ELEMENTS,
    MIN_POTENTIAL_BITS,
    WEIGHT_BITS,
    LayerType,
    Padding,
    Pooling,
    pooled_size,
    same_padding,
    weight_range,
)


class Layer:
    """One Akida layer: hyper-parameters plus integer variables (numpy arrays).

    Build layers with the subclasses (InputConv2D, Conv2D, ...). `input_shape` is given
    for input layers and filled in by Model for the others.
    """

    layer_type: LayerType
    _version: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        # Any change bumps the version, so models rebuild their compiled engine and
        # sequence programs (variables changed through set_variable count too).
        object.__setattr__(self, name, value)
        if name != "_version":
            object.__setattr__(self, "_version", self._version + 1)

    @property
    def version(self) -> int:
        """Changes whenever a hyper-parameter or a variable (through set_variable) changes."""
        return self._version

    def __init__(
        self,
        name: str,
        *,
        filters: int = 0,
        kernel_size: int = 1,
        stride: int = 1,
        padding: Padding = Padding.Same,
        pooling: Pooling = Pooling.NoPooling,
        pool_size: int = 2,
        pool_stride: int = 2,
        pool_padding: Padding = Padding.Valid,
        padding_value: int = 0,
        weight_bits: int = 4,
        input_bits: int = 4,
        activation: bool = True,
        activation_bits: int = 4,
        act_shift: int = 0,
        potential_bits: int = 0,
        input_shape: tuple[int, int, int] | None = None,
        **variables: np.ndarray | None,
    ) -> None:
        self.name = str(name)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.padding = Padding(padding)
        self.pooling = Pooling(pooling)
        self.pool_size = int(pool_size)
        self.pool_stride = int(pool_stride)
        self.pool_padding = Padding(pool_padding)
        self.padding_value = int(padding_value)
        self.weight_bits = int(weight_bits)
        self.input_bits = int(input_bits)
        self.activation = bool(activation)
        self.activation_bits = int(activation_bits)
        self.act_shift = int(act_shift)
        # Signed width the potentials saturate to (0: exact, no saturation); see
        # docs/semantics.md, rule 2b.
        self.potential_bits = int(potential_bits)
        self.input_shape: tuple[int, int, int] | None = (
            tuple(int(d) for d in input_shape) if input_shape is not None else None  # type: ignore[assignment]
        )
        self.variables: dict[str, np.ndarray] = {}
        for key, value in variables.items():
            if value is not None:
                self.set_variable(key, value)

    # ----------------------------------------------------------------- description
    @property
    def type_name(self) -> str:
        return self.layer_type.value

    @property
    def has_weights(self) -> bool:
        return self.layer_type is not LayerType.InputData

    def kernel_shape(self) -> tuple[int, int, int, int] | None:
        """Shape of the main kernel, HWCF (depthwise for separable, 1x1xKxU for dense)."""
        c = self._in_channels()
        k = self.kernel_size
        t = self.layer_type
        if t is LayerType.InputData:
            return None
        if t is LayerType.SeparableConv2D:
            return (k, k, c, 1)
        if t is LayerType.FullyConnected:
            assert self.input_shape is not None
            return (1, 1, math.prod(self.input_shape), self.filters)
        return (k, k, c, self.filters)

    def pointwise_shape(self) -> tuple[int, int, int, int] | None:
        if self.layer_type is not LayerType.SeparableConv2D:
            return None
        return (1, 1, self._in_channels(), self.filters)

    def _in_channels(self) -> int:
        if self.input_shape is None:
            raise ModelError(f"layer '{self.name}': input shape unknown; add it to a Model first")
        return self.input_shape[2]

    @property
    def output_channels(self) -> int:
        if self.layer_type is LayerType.InputData:
            return self._in_channels()
        return self.filters

    def conv_output_hw(self) -> tuple[int, int]:
        """Spatial size after the convolution, before pooling."""
        assert self.input_shape is not None
        h, w, _ = self.input_shape
        t = self.layer_type
        if t is LayerType.InputData:
            return h, w
        if t is LayerType.FullyConnected:
            return 1, 1
        k, s = self.kernel_size, self.stride
        if self.padding is Padding.Same:
            return same_padding(h, k, s)[0], same_padding(w, k, s)[0]
        return (h - k) // s + 1, (w - k) // s + 1

    @property
    def output_shape(self) -> tuple[int, int, int]:
        h, w = self.conv_output_hw()
        if self.pooling is Pooling.Max:
            k, s, pad = self.pool_size, self.pool_stride, self.pool_padding
            h, w = pooled_size(h, k, s, pad)[0], pooled_size(w, k, s, pad)[0]
        elif self.pooling is Pooling.GlobalAvg:
            h, w = 1, 1
        return (h, w, self.output_channels)

    @property
    def output_bits(self) -> int | None:
        """Bit width of the outputs, or None when the layer emits raw potentials."""
        if self.layer_type is LayerType.InputData:
            return self.input_bits
        return self.activation_bits if self.activation else None

    @property
    def fan_in(self) -> int:
        ks = self.kernel_shape()
        return 0 if ks is None else ks[0] * ks[1] * ks[2]

    def work_elements(self) -> int:
        """Elements of this layer's largest per-sample engine buffer: its input map, its
        convolution patches or its outputs (before pooling)."""
        assert self.input_shape is not None
        h, w = self.conv_output_hw()
        return max(math.prod(self.input_shape), h * w * max(self.fan_in, self.output_channels))

    @property
    def fan_out(self) -> int:
        """Synapses one input event reaches (borders ignored)."""
        t = self.layer_type
        k = self.kernel_size
        if t is LayerType.InputData:
            return 0
        if t is LayerType.FullyConnected:
            return self.filters
        if t is LayerType.SeparableConv2D:
            return k * k
        return k * k * self.filters

    # ------------------------------------------------------------------- variables
    def set_variable(self, key: str, value: Any) -> None:
        """Set one variable after checking its dtype class; shapes are checked by validate()."""
        arr = np.asarray(value)
        if key in ("weights", "pointwise"):
            integral = np.issubdtype(arr.dtype, np.integer) or (
                np.issubdtype(arr.dtype, np.floating) and bool(np.all(np.mod(arr, 1) == 0))
            )
            if not integral:
                raise ModelError(f"layer '{self.name}': {key} must be integers, got {arr.dtype}")
            self.variables[key] = np.ascontiguousarray(arr, dtype=np.int8)
            if np.any(self.variables[key] != arr):
                raise ModelError(f"layer '{self.name}': {key} do not fit in int8")
        elif key in CHANNEL_VARIABLES:
            dtype = CHANNEL_VARIABLES[key]
            if np.issubdtype(dtype, np.integer) and not np.all(np.equal(np.mod(arr, 1), 0)):
                raise ModelError(f"layer '{self.name}': {key} must be integers")
            self.variables[key] = np.ascontiguousarray(arr.reshape(-1), dtype=dtype)
        else:
            raise ModelError(f"layer '{self.name}': unknown variable '{key}'")
        self._version += 1

    def get_variable(self, key: str) -> np.ndarray:
        """A variable, with the documented default when it was never set."""
        if key in self.variables:
            return self.variables[key]
        n = self.output_channels
        defaults: dict[str, np.ndarray] = {
            "bias": np.zeros(n, np.int32),
            "act_scale": np.ones(n, np.int64),
            "act_offset": np.zeros(n, np.int64),
            "output_scale": np.ones(n, np.float64),
            "output_offset": np.zeros(n, np.float64),
        }
        if key in defaults:
            return defaults[key]
        raise ModelError(f"layer '{self.name}': variable '{key}' is not set")

    # ------------------------------------------------------------------ validation
    def validate(self, *, is_first: bool, is_last: bool, variables: bool = True) -> None:
        """Check hyper-parameters (and variables); raise ModelError naming the problem."""
        if not self.name or len(self.name) > MAX_NAME_CHARS or not self.name.isprintable():
            raise ModelError(
                f"layer {self.name[:64]!r}: a layer name is 1 to {MAX_NAME_CHARS} printable characters"
            )
        where = f"layer '{self.name}' ({self.type_name})"
        at = _At(self, is_first, is_last, variables)
        kind = _INPUT_DATA_RULES if self.layer_type is LayerType.InputData else _COMPUTING_RULES
        for broken, message in (*_COMMON_RULES, *kind):
            if broken(at):
                raise ModelError(f"{where}: {message(at)}")
        if variables and self.layer_type is not LayerType.InputData:
            self._validate_variables(where)

    def _validate_variables(self, where: str) -> None:
        lo, hi = weight_range(self.weight_bits)
        for key, shape in (("weights", self.kernel_shape()), ("pointwise", self.pointwise_shape())):
            if shape is None:
                if key in self.variables:
                    raise ModelError(f"{where}: has no {key} variable")
                continue
            if key not in self.variables:
                raise ModelError(f"{where}: {key} not set (expected shape {shape})")
            arr = self.variables[key]
            if arr.shape != shape:
                raise ModelError(f"{where}: {key} shape {arr.shape} does not match {shape}")
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise ModelError(
                    f"{where}: {key} values {arr.min()}..{arr.max()} outside the "
                    f"{self.weight_bits}-bit range {lo}..{hi}"
                )
        n = self.output_channels
        for key in CHANNEL_VARIABLES:
            if key in self.variables and self.variables[key].shape != (n,):
                raise ModelError(
                    f"{where}: {key} has {self.variables[key].shape[0]} values, expected {n}"
                )
        if np.any(self.get_variable("act_scale") <= 0):
            raise ModelError(f"{where}: act_scale must be positive")

    def describe(self) -> dict[str, Any]:
        """Hyper-parameters as plain data (for summaries, JSON and equality)."""
        return {
            "name": self.name,
            "type": self.type_name,
            "input_shape": self.input_shape,
            "output_shape": self.output_shape,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding.value,
            "pooling": self.pooling.value,
            "pool_size": self.pool_size,
            "pool_stride": self.pool_stride,
            "pool_padding": self.pool_padding.value,
            "padding_value": self.padding_value,
            "weight_bits": self.weight_bits,
            "input_bits": self.input_bits,
            "activation": self.activation,
            "activation_bits": self.activation_bits,
            "act_shift": self.act_shift,
            "potential_bits": self.potential_bits,
        }

    def same_as(self, other: Layer) -> bool:
        """True when both layers have equal hyper-parameters and variables."""
        if type(self) is not type(other) or self.describe() != other.describe():
            return False
        keys = set(self.variables) | set(other.variables)
        return all(np.array_equal(self.get_variable(k), other.get_variable(k)) for k in keys)

    def __repr__(self) -> str:
        return (
            f"<{self.type_name} '{self.name}' out={self.output_shape if self.input_shape else '?'}>"
        )


@dataclass(frozen=True)
class _At:
    """A layer being validated and where it stands in its model."""

    layer: Layer
    first: bool
    last: bool
    variables: bool


_INPUT_TYPES = (LayerType.InputData, LayerType.InputConv2D)
# The rules of Layer.validate, in the order they are checked: (broken when, message after
# "layer 'NAME' (TYPE): "). Every layer meets the common rules, then those of its kind.
_Rule = tuple[Callable[[_At], bool], Callable[[_At], str]]
_COMMON_RULES: tuple[_Rule, ...] = (
    (lambda a: a.layer.input_shape is None or len(a.layer.input_shape) != 3
        or min(a.layer.input_shape) < 1,
     lambda a: f"bad input shape {a.layer.input_shape}"),
    (lambda a: math.prod(a.layer.input_shape or ()) > MAX_WORK_ELEMENTS,
     lambda a: f"input shape {a.layer.input_shape} exceeds {MAX_WORK_ELEMENTS} elements"),
    (lambda a: a.layer.layer_type in _INPUT_TYPES and not a.first,
     lambda a: "input layers must come first"),
    (lambda a: a.first and a.layer.layer_type not in _INPUT_TYPES,
     lambda a: "the first layer must be InputData or InputConv2D"),
    (lambda a: a.layer.input_bits not in INPUT_BITS,
     lambda a: f"input_bits {a.layer.input_bits} not in {INPUT_BITS}"),
    (lambda a: a.layer.layer_type is LayerType.InputConv2D and a.layer.input_bits != 8,
     lambda a: f"InputConv2D takes 8-bit input, got {a.layer.input_bits}"),
    (lambda a: a.layer.layer_type is LayerType.InputConv2D
        and (a.layer.input_shape or (0, 0, 0))[2] not in (1, 3),
     lambda a: "InputConv2D takes 1 or 3 channels"),
)  # fmt: skip
_INPUT_DATA_RULES: tuple[_Rule, ...] = (
    (lambda a: a.layer.pooling is not Pooling.NoPooling,
     lambda a: "InputData does not pool"),
    (lambda a: a.variables and bool(a.layer.variables),
     lambda a: f"InputData has no variables, got {sorted(a.layer.variables)}"),
)  # fmt: skip
_COMPUTING_RULES: tuple[_Rule, ...] = (
    (lambda a: bool(a.layer.potential_bits)
     and not MIN_POTENTIAL_BITS <= a.layer.potential_bits <= 62,
     lambda a: f"potential_bits {a.layer.potential_bits}; 0 (no saturation) or "
               f"{MIN_POTENTIAL_BITS} to 62"),
    (lambda a: a.layer.stride < 1 or a.layer.kernel_size < 1 or a.layer.filters < 1,
     lambda a: "stride, kernel_size and filters must be positive"),
    (lambda a: not 0 <= a.layer.padding_value <= _top_pad(a.layer),
     lambda a: f"padding_value {a.layer.padding_value} outside 0..{_top_pad(a.layer)} "
               "(only InputConv2D pads with a value other than 0)"),
    (lambda a: a.layer.pooling is Pooling.Max
        and not 1 <= a.layer.pool_stride <= a.layer.pool_size <= 8,
     lambda a: f"max pooling {a.layer.pool_size}x{a.layer.pool_size} stride "
               f"{a.layer.pool_stride}; needs 1 <= stride <= size <= 8"),
    (lambda a: a.layer.layer_type is LayerType.FullyConnected
        and a.layer.pooling is not Pooling.NoPooling,
     lambda a: "FullyConnected layers do not pool"),
    (lambda a: a.layer.layer_type is LayerType.FullyConnected and a.layer.kernel_size != 1,
     lambda a: f"kernel_size {a.layer.kernel_size}; FullyConnected has 1"),
    (lambda a: min(a.layer.conv_output_hw()) < 1,
     lambda a: f"kernel {a.layer.kernel_size} larger than input {a.layer.input_shape}"),
    (lambda a: a.layer.pooling is Pooling.Max and min(a.layer.output_shape[:2]) < 1,
     lambda a: f"{a.layer.pool_size}x{a.layer.pool_size} max pooling needs a larger map than "
               "{}x{}".format(*a.layer.conv_output_hw())),
    (lambda a: a.layer.work_elements() > MAX_WORK_ELEMENTS,
     lambda a: f"needs a buffer of {a.layer.work_elements()} elements per sample, above "
               f"{MAX_WORK_ELEMENTS}; use a smaller input, kernel or filter count"),
    (lambda a: a.layer.weight_bits not in WEIGHT_BITS,
     lambda a: f"weight_bits {a.layer.weight_bits} not in {WEIGHT_BITS}"),
    (lambda a: a.layer.activation and a.layer.activation_bits not in ACTIVATION_BITS,
     lambda a: f"activation_bits {a.layer.activation_bits} not in {ACTIVATION_BITS}"),
    (lambda a: a.layer.activation and not 0 <= a.layer.act_shift <= MAX_ACT_SHIFT,
     lambda a: f"act_shift {a.layer.act_shift} outside 0..{MAX_ACT_SHIFT}"),
    (lambda a: not a.layer.activation and not a.last,
     lambda a: "only the last layer may omit its activation"),
)  # fmt: skip


def _top_pad(layer: Layer) -> int:
    return 255 if layer.layer_type is LayerType.InputConv2D else 0
