"""Quantization-aware Keras layers: conv, separable conv, dense and the quantized ReLU.

Each weighted layer is a Keras layer subclass whose kernel passes through a
WeightQuantizer in the forward pass; weight names and shapes are Keras', so float
weights load into them unchanged (post-training quantization copies them).
"""

from __future__ import annotations

from typing import Any

import keras
from akida_rt.tools.quantizers import WeightQuantizer, relu_straight_through
from keras import ops

from akida_rt.format.layer_params import ACTIVATION_BITS


def _weight_config(quantizer: WeightQuantizer) -> dict[str, Any]:
    """The constructor arguments a weighted layer's quantizer came from."""
    return {"weight_bits": quantizer.bits, "per_axis": quantizer.per_axis}


@keras.saving.register_keras_serializable(package="akida_rt")
class QuantizedConv2D(keras.layers.Conv2D):
    """Conv2D with quantized weights (`weight_bits`, per-axis or per-tensor scale)."""

    def __init__(self, *args: Any, weight_bits: int = 4, per_axis: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.quantizer = WeightQuantizer(weight_bits, per_axis)

    def call(self, inputs: Any) -> Any:
        outputs = self.convolution_op(inputs, self.quantizer(self.kernel))
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **_weight_config(self.quantizer)}


@keras.saving.register_keras_serializable(package="akida_rt")
class QuantizedSeparableConv2D(keras.layers.SeparableConv2D):
    """SeparableConv2D with quantized depthwise (per-tensor) and pointwise weights.

    The depthwise scale is one number so that the depthwise sums stay integers times a
    common scale (the chip has no rescaling between the two stages).
    """

    def __init__(self, *args: Any, weight_bits: int = 4, per_axis: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.depthwise_quantizer = WeightQuantizer(weight_bits, per_axis=False)
        self.quantizer = WeightQuantizer(weight_bits, per_axis)

    def call(self, inputs: Any) -> Any:
        outputs = ops.separable_conv(
            inputs,
            self.depthwise_quantizer(self.depthwise_kernel),
            self.quantizer(self.pointwise_kernel),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **_weight_config(self.quantizer)}


@keras.saving.register_keras_serializable(package="akida_rt")
class QuantizedDense(keras.layers.Dense):
    """Dense with quantized weights."""

    def __init__(self, *args: Any, weight_bits: int = 4, per_axis: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.quantizer = WeightQuantizer(weight_bits, per_axis)

    def call(self, inputs: Any, training: Any = None) -> Any:
        outputs = ops.matmul(inputs, self.quantizer(self.kernel))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **_weight_config(self.quantizer)}


@keras.saving.register_keras_serializable(package="akida_rt")
class QuantizedReLU(keras.layers.Layer):
    """ReLU quantized to `bits` levels between 0 and `max_value`, rounding half up.

    Output `q * step` with `q = clip(floor(x / step + 0.5), 0, 2^bits - 1)` and
    `step = max_value / (2^bits - 1)`; the gradient is the clipped ReLU's (straight
    through the rounding). `max_value` is a non-trainable weight set by calibration.
    """

    def __init__(self, bits: int = 4, max_value: float = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if bits not in ACTIVATION_BITS:
            raise ValueError(f"activation bits {bits} not in {ACTIVATION_BITS}")
        self.bits = int(bits)
        self.initial_max_value = float(max_value)

    def build(self, input_shape: Any) -> None:
        self.max_value = self.add_weight(
            name="max_value",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_max_value),
            trainable=False,
        )

    @property
    def step(self) -> Any:
        return self.max_value / float(2**self.bits - 1)

    def call(self, inputs: Any) -> Any:
        return relu_straight_through(inputs, self.step, self.max_value, self.bits)

    def levels(self, inputs: Any) -> Any:
        """The integer levels (float tensor) the chip would emit for `inputs`."""
        return relu_straight_through(inputs, self.step, self.max_value, self.bits) / self.step

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            bits=self.bits,
            max_value=float(ops.convert_to_numpy(self.max_value))
            if self.built
            else self.initial_max_value,
        )
        return cfg


CUSTOM_OBJECTS = {
    cls.__name__: cls
    for cls in (QuantizedConv2D, QuantizedSeparableConv2D, QuantizedDense, QuantizedReLU)
}
CUSTOM_OBJECTS["WeightQuantizer"] = WeightQuantizer  # type: ignore[assignment]


def load_model(path: str) -> keras.Model:
    """Load a .keras model that may hold these layers."""
    return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
