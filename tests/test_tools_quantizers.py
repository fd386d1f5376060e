"""Quantizers, quantized layers and blocks (TensorFlow, fast: no training)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from akida_rt.tools.blocks import conv_block, dense_block, separable_conv_block  # noqa: E402
from akida_rt.tools.compatibility import check_model  # noqa: E402
from akida_rt.tools.quantized_layers import QuantizedReLU  # noqa: E402
from akida_rt.tools.quantizers import WeightQuantizer  # noqa: E402


@pytest.mark.parametrize(("bits", "top"), [(8, 127), (4, 7), (2, 1)])
def test_symmetric_weights_use_the_full_range_per_channel(bits: int, top: int) -> None:
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
    q, scale = WeightQuantizer(bits, per_axis=True).numpy(w)
    assert scale.shape == (5,)
    assert np.array_equal(np.abs(q).reshape(-1, 5).max(axis=0), np.full(5, top))
    assert np.all(np.abs(q.astype(np.float64) * scale - w) <= scale / 2 + 1e-7)


def test_ternary_and_binary_weight_values() -> None:
    w = np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    assert set(np.unique(WeightQuantizer(2).numpy(w)[0])) <= {-1, 0, 1}
    assert set(np.unique(WeightQuantizer(1).numpy(w)[0])) == {0, 1}
    with pytest.raises(ValueError, match="weight bits 3"):
        WeightQuantizer(3)


def test_per_tensor_scale_and_round_half_up() -> None:
    w = np.array([[7.0, 0.5], [-0.5, -1.5]], np.float32)  # scale 1 with 4 bits
    q, scale = WeightQuantizer(4, per_axis=False).numpy(w)
    assert scale.shape == () and float(scale) == 1.0
    assert q.tolist() == [[7, 1], [0, -1]]  # ties go up: 0.5 -> 1, -0.5 -> 0, -1.5 -> -1


def test_weight_gradient_goes_straight_through() -> None:
    w = tf.Variable(np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32))
    c = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(WeightQuantizer(2)(w) * c)
    assert np.array_equal(tape.gradient(loss, w).numpy(), c.numpy())


def test_quantized_relu_levels_rounding_and_gradient() -> None:
    layer = QuantizedReLU(2, max_value=3.0)  # step 1, levels 0..3
    x = tf.constant([-1.0, 0.49, 0.5, 1.5, 2.2, 2.5, 9.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    assert y.numpy().tolist() == [0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert tape.gradient(y, x).numpy().tolist() == [0, 1, 1, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="activation bits 3"):
        QuantizedReLU(3)


def test_blocks_order_layers_as_the_chip_computes() -> None:
    inputs = keras.Input((8, 8, 3))
    x = conv_block(inputs, 8, 3, name="c", pooling="max")
    x = separable_conv_block(x, 8, 3, name="s", pooling="global_avg")
    x = dense_block(x, 4, name="d", activation=None)
    model = keras.Model(inputs, x)
    names = [layer.name for layer in model.layers[1:]]
    assert names == ["c", "c_bn", "c_relu", "c_pool", "s", "s_gap", "s_bn", "s_relu", "d", "d_bn"]
    assert check_model(model, stage="quantized") == []


def test_non_serial_model_is_refused_with_the_layer_named() -> None:
    inputs = keras.Input((8, 8, 1))
    a = conv_block(inputs, 4, 3, name="a", weight_bits=None, activation="relu6")
    b = conv_block(a, 4, 3, name="b", weight_bits=None, activation="relu6")
    x = keras.layers.Add(name="skip")([a, b])
    x = dense_block(x, 2, name="d", weight_bits=None, activation=None)
    issues = check_model(keras.Model(inputs, x), stage="float")
    skip = [i for i in issues if i.layer == "skip"]
    assert skip and skip[0].rule == "serial" and "residual" in skip[0].fix


def test_quantizing_a_quantized_model_is_refused_with_the_layer_named() -> None:
    from akida_rt.tools.post_training import quantize_model

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x), name="tiny")
    samples = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.float32)
    quantized = quantize_model(model, samples)
    with pytest.raises(ValueError, match=r"'tiny' is already quantized \(layer 'conv' is Quant"):
        quantize_model(quantized, samples)
