"""A spike generator trained as one: quantize_model's per-block activation bits, their
calibration and conversion, and add_learning_head on the converted 1-bit layer
(TensorFlow, fast: no training)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

import keras  # noqa: E402
from akida_rt.tools.blocks import conv_block, dense_block  # noqa: E402
from akida_rt.tools.converter import convert  # noqa: E402
from akida_rt.tools.edge_learning import add_learning_head  # noqa: E402
from akida_rt.tools.post_training import quantize_model  # noqa: E402
from akida_rt.tools.quantized_layers import QuantizedReLU  # noqa: E402

from akida_rt.errors import LearningError  # noqa: E402
from akida_rt.model.placement import spikes_of  # noqa: E402


def float_backbone() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = conv_block(x, 8, 3, strides=2, name="conv_0", weight_bits=None, activation="relu6")
    x = dense_block(x, 32, name="spikes", weight_bits=None, activation="relu6")
    x = dense_block(x, 6, name="head", weight_bits=None, activation=None)
    return keras.Model(inputs, x, name="tiny_backbone")


def images(n: int = 64) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, 12, 12, 1)).astype(np.uint8)


def relu_bits(model: keras.Model) -> dict[str, int]:
    return {layer.name: layer.bits for layer in model.layers if isinstance(layer, QuantizedReLU)}


@pytest.mark.parametrize("key", ["spikes", "spikes_relu"])
def test_one_block_is_quantized_to_1_bit_by_its_layer_or_relu_name(key: str) -> None:
    q = quantize_model(float_backbone(), images(), layer_activation_bits={key: 1})
    assert relu_bits(q) == {"conv_0_relu": 4, "spikes_relu": 1}
    program = convert(q)
    bits = {layer.name: layer.activation_bits for layer in program.layers if layer.activation}
    assert bits == {"conv_0": 4, "spikes": 1}


def test_unknown_or_bad_per_block_bits_are_refused_naming_the_blocks() -> None:
    with pytest.raises(ValueError, match=r"no block with an activation: spike \(blocks: conv_0"):
        quantize_model(float_backbone(), images(), layer_activation_bits={"spike": 1})
    with pytest.raises(ValueError, match="activation bits 3 of 'spikes' not in"):
        quantize_model(float_backbone(), images(), layer_activation_bits={"spikes": 3})


def test_a_1_bit_layer_fires_at_the_median_of_its_positive_float_outputs() -> None:
    model, x = float_backbone(), images()
    q = quantize_model(model, x, layer_activation_bits={"spikes": 1})
    probe = keras.Model(model.inputs[0], model.get_layer("spikes_relu").output)
    out = np.asarray(probe(x.astype(np.float32), training=False))
    median = float(np.median(out[out > 0]))
    assert float(q.get_layer("spikes_relu").max_value.numpy()) == pytest.approx(2 * median)
    fired = np.asarray(keras.Model(q.inputs[0], q.get_layer("spikes_relu").output)(x))
    assert set(np.unique(fired / (2 * median)).round(5)) <= {0.0, 1.0}
    # the 4-bit layer keeps the percentile range (ReLU6 caps it)
    assert float(q.get_layer("conv_0_relu").max_value.numpy()) <= 6.0


def test_the_converted_1_bit_layer_feeds_the_learning_head_unchanged() -> None:
    x = images()
    q = quantize_model(float_backbone(), x, layer_activation_bits={"spikes": 1})
    program = convert(q)
    levels = keras.Model(q.inputs[0], q.get_layer("spikes_relu").output)(x.astype(np.float32))
    keras_spikes = (np.asarray(levels) > 0).astype(np.uint8)
    assert 0 < keras_spikes.mean() < 1
    edge = add_learning_head(program, 3, x, neurons_per_class=2)
    assert edge.layers[-2].activation_bits == 1 and edge.layers[-1].input_bits == 1
    spikes = spikes_of(edge, x)
    assert np.array_equal(spikes, keras_spikes)  # the trained spikes, no threshold moved
    assert edge.learning.num_weights == int(0.75 * np.median(spikes.sum(axis=1)))
    edge.fit(x[:6], np.arange(6) % 3)
    assert edge.learning.samples == 6
    with pytest.raises(LearningError, match="already emits 1-bit spikes"):
        add_learning_head(program, 3, x, spike_level=2)
