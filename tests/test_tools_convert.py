"""Conversion of untrained quantized models with random batch-norm statistics (TensorFlow, fast).

Random weights and batch-norm parameters exercise every folding path (negative scales,
pooling orders, input offsets, dense-only models) without training.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

import keras  # noqa: E402
from akida_rt.tools import training  # noqa: E402
from akida_rt.tools.blocks import dense_block  # noqa: E402
from akida_rt.tools.converter import convert  # noqa: E402
from akida_rt.tools.quantized_layers import QuantizedConv2D, QuantizedReLU  # noqa: E402

from akida_rt import LayerType, Pooling  # noqa: E402
from akida_rt.errors import ConversionError  # noqa: E402


def randomize_bn(model: keras.Model, seed: int, positive: bool = False) -> keras.Model:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            gamma = rng.uniform(0.3, 1.5, n) * (1 if positive else rng.choice([-1, 1], n))
            layer.set_weights(
                [gamma, rng.normal(0.5, 0.5, n), rng.normal(0, 1, n), rng.uniform(0.5, 4, n)]
            )
    return model


def walkthrough_order(bits: int = 4) -> keras.Model:
    """The toolkit's order: conv -> max-pool -> BN -> ReLU (pooling before the batch-norm)."""
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = QuantizedConv2D(6, 3, padding="valid", use_bias=False, weight_bits=8, name="c0")(x)
    x = keras.layers.MaxPooling2D(2, name="p0")(x)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = QuantizedReLU(bits, 2.0, name="r0")(x)
    x = dense_block(x, 5, name="d1", activation=None)
    return keras.Model(inputs, x)


def _compare(model: keras.Model, x: np.ndarray, **kw: object) -> tuple[float, np.ndarray]:
    # The exact fold (v1=False): AKD1000's 1/16 act_step would move some levels.
    program = convert(model, v1=False, **kw)  # type: ignore[arg-type]
    k = training.keras_outputs(model, x)
    p = training.program_outputs(program, x)
    return training.agreement(k, p).argmax, np.abs(k - p).max(axis=1)


def test_pool_before_batchnorm_converts_when_scales_are_positive() -> None:
    model = randomize_bn(walkthrough_order(), seed=1, positive=True)
    x = np.random.default_rng(2).integers(0, 256, (200, 12, 12, 1), dtype=np.uint8)
    argmax, diff = _compare(model, x)
    assert argmax >= 0.995 and np.mean(diff < 1e-4) >= 0.99


def test_pool_before_a_negative_batchnorm_scale_is_refused_with_the_fix() -> None:
    model = randomize_bn(walkthrough_order(), seed=1, positive=False)
    with pytest.raises(ConversionError, match="move the MaxPooling2D after the activation"):
        convert(model)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_negative_scales_after_the_activation_and_input_offset(bits: int) -> None:
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Rescaling(1 / 64.0, offset=-2.0)(inputs)
    x = QuantizedConv2D(8, 3, padding="valid", use_bias=True, weight_bits=8, name="c0")(x)
    x = keras.layers.BatchNormalization()(x)
    x = QuantizedReLU(bits, 3.0)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = dense_block(x, 16, name="d1", activation=bits, max_value=2.0)
    x = dense_block(x, 4, name="d2", activation=None)
    model = randomize_bn(keras.Model(inputs, x), seed=bits)
    x_in = np.random.default_rng(bits).integers(0, 256, (300, 10, 10, 3), dtype=np.uint8)
    argmax, diff = _compare(model, x_in)
    assert argmax >= 0.995 and np.mean(diff < 1e-4) >= 0.99
    program = convert(model)
    assert program.input_scaling == (64.0, 128.0)
    assert program.layers[0].pooling is Pooling.Max


def test_dense_only_model_starts_with_8bit_input_data() -> None:
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    x = dense_block(x, 12, name="d0", weight_bits=8, activation=4, max_value=4.0)
    x = dense_block(x, 3, name="d1", activation=None)
    model = randomize_bn(keras.Model(inputs, x), seed=5)
    program = convert(model, input_scaling=(255.0, 0.0), v1=False)  # 8-bit FC inputs: see docs
    assert program.layers[0].layer_type is LayerType.InputData
    assert program.layers[0].input_bits == 8
    x_in = np.random.default_rng(5).integers(0, 256, (200, 6, 6, 1), dtype=np.uint8)
    k = training.keras_outputs(model, x_in.astype(np.float32) / 255.0)
    p = training.program_outputs(program, x_in)
    assert training.agreement(k, p).argmax >= 0.995
