"""Reference architectures built with random integer weights, for demos and benchmarks.

Each layer's activation scale is calibrated on a sample batch (the 99th percentile of
positive accumulators maps to the top level), so event rates look like a trained net's.
"""

from __future__ import annotations

import numpy as np

from akida_rt.engine.integer import Engine, compile_layer, potentials
from akida_rt.format import v1_rules
from akida_rt.format.layer_kinds import Conv2D, FullyConnected, InputConv2D, SeparableConv2D
from akida_rt.format.layer_params import LayerType, Pooling, weight_range
from akida_rt.format.layers import Layer
from akida_rt.model.model import Model

ACT_SHIFT = 20


def randomize(
    model: Model, seed: int = 0, sample: np.ndarray | None = None, v1: bool = False
) -> Model:
    """Give every layer random weights and calibrated thresholds, in place; `v1`: in the
    form AKD1000 programs carry (v1_rules.to_v1_form), so that the model maps onto a device."""
    rng = np.random.default_rng(seed)
    if sample is None:
        sample = rng.integers(0, 256, size=(8, *model.input_shape), dtype=np.uint8)
        if model.input_bits < 8:
            sample = sample >> (8 - model.input_bits)
    x = sample.astype(np.float32)
    last = model.layers[-1]
    for layer in model.layers:
        if layer.layer_type is LayerType.InputData:
            continue
        lo, hi = weight_range(layer.weight_bits)
        shape = layer.kernel_shape()
        assert shape is not None
        layer.set_variable("weights", rng.integers(lo, hi + 1, size=shape))
        if (pw := layer.pointwise_shape()) is not None:
            layer.set_variable("pointwise", rng.integers(lo, hi + 1, size=pw))
        if layer.activation:
            _calibrate(layer, x)
        if v1:
            v1_rules.to_v1_form(layer, is_last=layer is last)
        x = Engine([layer]).run(x)
    model.validate()
    return model


def _calibrate(layer: Layer, x: np.ndarray) -> None:
    acc, _ = potentials(compile_layer(layer), x)
    top = 2**layer.activation_bits - 1
    positive = acc[acc > 0]
    ref = float(np.percentile(positive, 99)) if positive.size else 1.0
    scale = max(1, round(top * 2**ACT_SHIFT / max(ref, 1.0)))
    layer.act_shift = ACT_SHIFT
    layer.set_variable("act_scale", np.full(layer.output_channels, scale))
    layer.set_variable("act_offset", np.zeros(layer.output_channels, np.int64))


def digits_cnn(seed: int = 0, weight_bits: int = 4, activation_bits: int = 4) -> Model:
    """The reference digits CNN: 32x32x1 -> InputConv 3x3x16/2 -> conv 32+pool -> conv 64+pool
    -> conv 64 -> dense 10."""
    a, w = activation_bits, weight_bits
    model = Model(name="digits_cnn")
    model.add(InputConv2D("conv_0", (32, 32, 1), 16, 3, stride=2, weight_bits=8, activation_bits=a))
    model.add(Conv2D("conv_1", 32, 3, pooling=Pooling.Max, weight_bits=w, activation_bits=a))
    model.add(Conv2D("conv_2", 64, 3, pooling=Pooling.Max, weight_bits=w, activation_bits=a))
    model.add(Conv2D("conv_3", 64, 3, weight_bits=w, activation_bits=a))
    model.add(FullyConnected("dense_4", 10, weight_bits=w, activation=False))
    return randomize(model, seed, v1=True)


def ds_cnn_kws(seed: int = 0) -> Model:
    """DS-CNN keyword spotting (user guide): 49x10x1, conv 5x5x64/2, 4 separable, dense 33."""
    model = Model(name="ds_cnn_kws")
    model.add(InputConv2D("conv_0", (49, 10, 1), 64, 5, stride=2, weight_bits=8))
    for i in range(1, 4):
        model.add(SeparableConv2D(f"separable_{i}", 64, 3))
    model.add(SeparableConv2D("separable_4", 64, 3, pooling=Pooling.GlobalAvg))
    model.add(FullyConnected("dense_5", 33, activation=False))
    return randomize(model, seed, v1=True)


def akidanet(seed: int = 0, alpha: float = 0.5, size: int = 224, classes: int = 1000) -> Model:
    """AkidaNet at width multiplier `alpha` (0.5 gives the user guide's layer table)."""
    w = [int(c * alpha) for c in (32, 64, 128, 128, 256, 256, 512, 512, 1024, 1024)]
    model = Model(name=f"akidanet_{alpha}_{size}")
    model.add(InputConv2D("conv_0", (size, size, 3), w[0], 3, stride=2, weight_bits=8))
    model.add(Conv2D("conv_1", w[1], 3))
    model.add(Conv2D("conv_2", w[2], 3, pooling=Pooling.Max))
    model.add(Conv2D("conv_3", w[3], 3))
    model.add(SeparableConv2D("separable_4", w[4], 3, pooling=Pooling.Max))
    model.add(SeparableConv2D("separable_5", w[5], 3))
    model.add(SeparableConv2D("separable_6", w[6], 3, pooling=Pooling.Max))
    for i in range(7, 12):
        model.add(SeparableConv2D(f"separable_{i}", w[7], 3))
    model.add(SeparableConv2D("separable_12", w[8], 3, pooling=Pooling.Max))
    model.add(SeparableConv2D("separable_13", w[9], 3, pooling=Pooling.GlobalAvg))
    model.add(FullyConnected("classifier", classes, activation=False))
    return randomize(model, seed, v1=True)


def mnist_cnn(seed: int = 0) -> Model:
    """Issue 18's held-out MNIST CNN: 28x28x1 -> conv 3x3x16 + max-pool -> conv 3x3x16 +
    max-pool -> dense 10 (0.4 M MACs per frame)."""
    model = Model(name="mnist_cnn")
    model.add(InputConv2D("conv_0", (28, 28, 1), 16, 3, pooling=Pooling.Max, weight_bits=8))
    model.add(Conv2D("conv_1", 16, 3, pooling=Pooling.Max))
    model.add(FullyConnected("dense_2", 10, activation=False))
    return randomize(model, seed, v1=True)


def gxnor_mnist(seed: int = 0) -> Model:
    """The GXNOR MNIST net (akida_models' gxnor_mnist; the CNN2SNN MNIST walkthrough):
    conv 5x5x32 + pool, conv 5x5x64 + pool, dense 512, dense 10; 2-bit weights, 1-bit
    activations."""
    model = Model(name="gxnor_mnist")
    model.add(InputConv2D("conv_0", (28, 28, 1), 32, 5, pooling=Pooling.Max, weight_bits=2,
                          activation_bits=1))  # fmt: skip
    model.add(Conv2D("conv_1", 64, 5, pooling=Pooling.Max, weight_bits=2, activation_bits=1))
    model.add(FullyConnected("dense_2", 512, weight_bits=2, activation_bits=1))
    model.add(FullyConnected("dense_3", 10, weight_bits=2, activation=False))
    return randomize(model, seed, v1=True)
