"""The five Akida 1.0 layer kinds a model is built from: InputData, InputConv2D, Conv2D,
SeparableConv2D and FullyConnected (their constructors and what each one computes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akida_rt.format.layer_params import CHANNEL_VARIABLES, LayerType, Padding, Pooling
from akida_rt.format.layers import Layer


def _vars(kw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k in ("weights", "pointwise", *CHANNEL_VARIABLES)}


class InputData(Layer):
    """Sparse or event input: declares the input shape and bit width, computes nothing."""

    layer_type = LayerType.InputData

    def __init__(self, name: str, input_shape: tuple[int, int, int], input_bits: int = 4) -> None:
        super().__init__(name, input_shape=input_shape, input_bits=input_bits, activation=False)

    @property
    def output_bits(self) -> int:
        return self.input_bits


class InputConv2D(Layer):
    """Convolution on dense uint8 images (1 or 3 channels); borders padded with padding_value."""

    layer_type = LayerType.InputConv2D

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, int, int],
        filters: int,
        kernel_size: int,
        stride: int = 1,
        padding: Padding = Padding.Same,
        pooling: Pooling = Pooling.NoPooling,
        weight_bits: int = 8,
        activation: bool = True,
        activation_bits: int = 4,
        act_shift: int = 0,
        pool_size: int = 2,
        pool_stride: int = 2,
        pool_padding: Padding = Padding.Valid,
        padding_value: int = 0,
        **variables: Any,
    ) -> None:
        super().__init__(
            name,
            filters=filters,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            pooling=pooling,
            pool_size=pool_size,
            pool_stride=pool_stride,
            pool_padding=pool_padding,
            padding_value=padding_value,
            weight_bits=weight_bits,
            input_bits=8,
            activation=activation,
            activation_bits=activation_bits,
            act_shift=act_shift,
            input_shape=input_shape,
            **_vars(variables),
        )


class Conv2D(Layer):
    """Convolution with optional max pooling or global average pooling."""

    layer_type = LayerType.Conv2D

    def __init__(
        self,
        name: str,
        filters: int,
        kernel_size: int,
        padding: Padding = Padding.Same,
        pooling: Pooling = Pooling.NoPooling,
        weight_bits: int = 4,
        activation: bool = True,
        activation_bits: int = 4,
        act_shift: int = 0,
        stride: int = 1,
        pool_size: int = 2,
        pool_stride: int = 2,
        pool_padding: Padding = Padding.Valid,
        **variables: Any,
    ) -> None:
        super().__init__(
            name,
            filters=filters,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            pooling=pooling,
            pool_size=pool_size,
            pool_stride=pool_stride,
            pool_padding=pool_padding,
            weight_bits=weight_bits,
            activation=activation,
            activation_bits=activation_bits,
            act_shift=act_shift,
            **_vars(variables),
        )


class SeparableConv2D(Conv2D):
    """Depthwise kxk convolution then pointwise 1x1, with no nonlinearity in between."""

    layer_type = LayerType.SeparableConv2D


class FullyConnected(Layer):
    """Dense layer over the flattened (row-major H, W, C) input."""

    layer_type = LayerType.FullyConnected

    def __init__(
        self,
        name: str,
        units: int,
        weight_bits: int = 4,
        activation: bool = True,
        activation_bits: int = 4,
        act_shift: int = 0,
        **variables: Any,
    ) -> None:
        super().__init__(
            name,
            filters=units,
            kernel_size=1,
            weight_bits=weight_bits,
            activation=activation,
            activation_bits=activation_bits,
            act_shift=act_shift,
            padding=Padding.Valid,
            **_vars(variables),
        )

    @property
    def units(self) -> int:
        return self.filters


LAYER_CLASSES: dict[LayerType, type[Layer]] = {
    cls.layer_type: cls for cls in (InputData, InputConv2D, Conv2D, SeparableConv2D, FullyConnected)
}
