"""Small learnable models for the edge-learning tests: a CNN backbone whose last
convolution is a spike generator (1-bit activations) and a 1-bit FullyConnected head."""

from __future__ import annotations

import numpy as np

from akida_rt import AkidaUnsupervised, Conv2D, FullyConnected, InputConv2D, Model, Pooling
from akida_rt.engine.integer import compile_layer, potentials
from akida_rt.format.layer_params import LayerType
from akida_rt.model.zoo import randomize


def learnable_cnn(
    seed: int = 0,
    classes: int = 4,
    per_class: int = 3,
    num_weights: int = 24,
    pooled_spikes: bool = True,
    **opt: float,
) -> Model:
    """16x16x1 -> InputConv 3x3x8/2 -> conv 16 + pool -> spike conv 16 + pool (1 bit)
    -> FullyConnected(classes * per_class, 1-bit), compiled for labelled learning.
    The max-pooled spike conv runs in software (it feeds the FullyConnected layer), so the
    model maps in two hardware sequences; without its pooling (`pooled_spikes=False`) the
    whole model is one hardware sequence."""
    model = Model(name="learnable_cnn")
    model.add(InputConv2D("conv_0", (16, 16, 1), 8, 3, stride=2, weight_bits=8))
    model.add(Conv2D("conv_1", 16, 3, pooling=Pooling.Max))
    pooling = Pooling.Max if pooled_spikes else Pooling.NoPooling
    model.add(Conv2D("spikes", 16, 3, pooling=pooling, activation_bits=1))
    model.add(FullyConnected("learn", classes * per_class, weight_bits=1, activation=False))
    rng = np.random.default_rng(seed)
    sample = rng.integers(0, 256, size=(16, 16, 16, 1), dtype=np.uint8)
    randomize(model, seed, sample, v1=True)
    _sparse_spikes(model, sample)
    model.compile(AkidaUnsupervised(num_weights, num_classes=classes, **opt), seed=seed)
    return model


def _sparse_spikes(model: Model, sample: np.ndarray) -> None:
    """Set the spike layer's threshold so about a quarter of its outputs fire."""
    x = sample.astype(np.float32)
    for layer in model.layers:
        if layer.name == "spikes":
            acc, _ = potentials(compile_layer(layer), x)
            threshold = np.percentile(acc, 75, axis=(0, 1, 2))
            layer.act_shift = 0
            layer.set_variable("act_scale", np.ones(layer.filters, np.int64))
            layer.set_variable("act_offset", -np.floor(threshold).astype(np.int64))
            return
        if layer.layer_type is not LayerType.InputData:
            x = _run(layer, x)


def _run(layer, x: np.ndarray) -> np.ndarray:
    from akida_rt.engine.integer import Engine

    return Engine([layer]).run(x)


def images(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 16, 16, 1), dtype=np.uint8)
