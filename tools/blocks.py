"""Layer blocks in the style of the CNN2SNN toolkit: conv, separable conv and dense.

A block is `layer [global avg pool] [batch-norm] [activation] [max-pool]`: global average
pooling sums potentials before the activation (as the chip does) and max-pooling follows
the activation, which equals the chip's order for any sign of the batch-norm scale.
"""

from __future__ import annotations

from typing import Any

import keras
from akida_rt.tools.quantized_layers import (
    QuantizedConv2D,
    QuantizedDense,
    QuantizedReLU,
    QuantizedSeparableConv2D,
)

BN_MOMENTUM = 0.9


def _activation(x: Any, activation: int | str | None, max_value: float, name: str) -> Any:
    """None: no activation; "relu6"/"relu": float ReLU(max_value); an int: QuantizedReLU bits."""
    if activation is None:
        return x
    if isinstance(activation, str):
        if activation not in ("relu", "relu6"):
            raise ValueError(f"activation must be None, 'relu', 'relu6' or bits, got {activation}")
        bound = 6.0 if activation == "relu6" else max_value
        return keras.layers.ReLU(max_value=bound, name=f"{name}_relu")(x)
    return QuantizedReLU(int(activation), max_value, name=f"{name}_relu")(x)


def _tail(
    x: Any,
    name: str,
    pooling: str | None,
    add_batchnorm: bool,
    activation: int | str | None,
    max_value: float,
    padding: str = "valid",
) -> Any:
    if pooling not in (None, "max", "global_avg"):
        raise ValueError(f"pooling must be None, 'max' or 'global_avg', got {pooling}")
    if pooling == "global_avg":
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    if add_batchnorm:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    x = _activation(x, activation, max_value, name)
    if pooling == "max":
        # AKD1000 (v1) pools with the convolution's padding.
        x = keras.layers.MaxPooling2D(2, 2, padding=padding, name=f"{name}_pool")(x)
    return x


def conv_block(
    inputs: Any,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    padding: str = "same",
    pooling: str | None = None,
    add_batchnorm: bool = True,
    weight_bits: int | None = 4,
    activation: int | str | None = 4,
    max_value: float = 6.0,
    per_axis: bool = True,
) -> Any:
    """Conv (quantized when `weight_bits` is set) + optional pooling, batch-norm, activation.

    Args:
        inputs: the Keras tensor to build on.
        filters: output channels.
        kernel_size: square kernel side.
        name: block name; its layers are named `<name>`, `<name>_bn`, `<name>_relu`, ...
        strides: only the first conv of a model may use strides above 1.
        padding: "same" or "valid".
        pooling: None, "max" (2x2 stride 2 after the activation, padded as the
            convolution, as AKD1000 pools) or "global_avg".
        add_batchnorm: add a BatchNormalization (the conv then has no bias).
        weight_bits: 1, 2, 4, 8, or None for float weights.
        activation: None, "relu6"/"relu" (float), or activation bits 1, 2, 4.
        max_value: the largest activation (quantized ReLU's top level).
        per_axis: per-output-channel weight scales.
    """
    common = {
        "strides": strides,
        "padding": padding,
        "use_bias": not add_batchnorm,
        "name": name,
    }
    if weight_bits is None:
        layer: keras.layers.Layer = keras.layers.Conv2D(filters, kernel_size, **common)
    else:
        layer = QuantizedConv2D(
            filters, kernel_size, weight_bits=weight_bits, per_axis=per_axis, **common
        )
    return _tail(layer(inputs), name, pooling, add_batchnorm, activation, max_value, padding)


def separable_conv_block(
    inputs: Any,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    padding: str = "same",
    pooling: str | None = None,
    add_batchnorm: bool = True,
    weight_bits: int | None = 4,
    activation: int | str | None = 4,
    max_value: float = 6.0,
    per_axis: bool = True,
) -> Any:
    """Separable conv (depthwise then pointwise, no nonlinearity between) + the block tail.

    Arguments as in conv_block (separable convolutions never stride).
    """
    common = {"padding": padding, "use_bias": not add_batchnorm, "name": name}
    if weight_bits is None:
        layer: keras.layers.Layer = keras.layers.SeparableConv2D(filters, kernel_size, **common)
    else:
        layer = QuantizedSeparableConv2D(
            filters, kernel_size, weight_bits=weight_bits, per_axis=per_axis, **common
        )
    return _tail(layer(inputs), name, pooling, add_batchnorm, activation, max_value, padding)


def dense_block(
    inputs: Any,
    units: int,
    *,
    name: str,
    add_batchnorm: bool = True,
    weight_bits: int | None = 4,
    activation: int | str | None = 4,
    max_value: float = 6.0,
    per_axis: bool = True,
) -> Any:
    """Dense (flattening a 4-D input first) + optional batch-norm and activation."""
    x = inputs
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    use_bias = not add_batchnorm
    if weight_bits is None:
        layer: keras.layers.Layer = keras.layers.Dense(units, use_bias=use_bias, name=name)
    else:
        layer = QuantizedDense(
            units, use_bias=use_bias, weight_bits=weight_bits, per_axis=per_axis, name=name
        )
    return _tail(layer(x), name, None, add_batchnorm, activation, max_value)
