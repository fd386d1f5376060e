"""Real AKD1000 program binaries from BrainChip's compiler (akida on `akida.AKD1000()`),
for the tests of akida_rt.akd1000 and of the driver's host protocol."""

from __future__ import annotations

from typing import Any

import numpy as np


def _akida() -> Any:
    import akida

    return akida


def programs(model: Any) -> list[bytes]:
    """Map `model` on akida's virtual AKD1000 and return each hardware sequence's program binary."""
    model.map(_akida().AKD1000())
    return [bytes(s.program) for s in model.sequences if s.program is not None]


def cnp_model(seed: int = 0, filters: int = 12) -> Any:
    """InputData 8x8x4 (4-bit) -> Convolutional 3x3 (4-bit act) -> FullyConnected(6)."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(8, 8, 4), input_bits=4, name="in"))
    m.add(akida.Convolutional(kernel_size=(3, 3), filters=filters, name="conv", act_bits=4,
                              weights_bits=4))  # fmt: skip
    m.add(akida.FullyConnected(units=6, name="fc", activation=True, weights_bits=2, act_bits=2))
    rng = np.random.default_rng(seed)
    for layer in m.layers[1:]:
        w = layer.get_variable("weights")
        layer.set_variable("weights", rng.integers(-1, 2, size=w.shape).astype(np.int8))
        n = layer.get_variable("threshold").shape
        layer.set_variable("threshold", rng.integers(0, 50, size=n).astype(np.int32))
        # steps that are whole sixteenths, so that act_step x 16 is exact
        layer.set_variable("act_step", (rng.integers(16, 64, size=n) / 16).astype(np.float32))
    return m


def learning_model(seed: int = 0, classes: int = 3) -> Any:
    """InputData 8x8x4 (1-bit) -> Convolutional (1-bit act) -> FullyConnected(classes * 2,
    1-bit weights) compiled with AkidaUnsupervised: a program with a learning layer."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(8, 8, 4), input_bits=1, name="in"))
    m.add(akida.Convolutional(kernel_size=(3, 3), filters=16, name="conv", act_bits=1,
                              weights_bits=2))  # fmt: skip
    m.add(akida.FullyConnected(units=2 * classes, name="fc", activation=False, weights_bits=1,
                               act_bits=1))  # fmt: skip
    rng = np.random.default_rng(seed)
    for layer in m.layers[1:]:
        w = layer.get_variable("weights")
        layer.set_variable("weights", rng.integers(0, 2, size=w.shape).astype(np.int8))
    m.compile(optimizer=akida.AkidaUnsupervised(num_weights=20, num_classes=classes))
    return m


def split_models(seed: int = 0) -> tuple[Any, Any]:
    """Two models that chain: an image model ending in a 4-bit convolution, and an event
    model taking its outputs (as a model split into two sequences runs). The second
    program is the larger, as when a host reprograms a chip with a bigger program."""
    akida = _akida()
    rng = np.random.default_rng(seed)
    first = akida.Model()
    first.add(akida.InputConvolutional(input_shape=(12, 12, 1), kernel_size=(3, 3), filters=8,
                                       name="in_conv", weights_bits=8, act_bits=4))  # fmt: skip
    first.add(akida.Convolutional(kernel_size=(3, 3), filters=16, name="conv_a", act_bits=4,
                                  weights_bits=4))  # fmt: skip
    second = akida.Model()
    second.add(akida.InputData(input_shape=(12, 12, 16), input_bits=4, name="in"))
    second.add(akida.Convolutional(kernel_size=(3, 3), filters=48, name="conv_b", act_bits=2,
                                   weights_bits=2))  # fmt: skip
    second.add(akida.FullyConnected(units=5, name="fc", activation=False, weights_bits=2))
    for m in (first, second):
        for layer in m.layers:
            names = layer.get_variable_names()
            if "weights" not in names:
                continue
            bits = layer.parameters.weights_bits
            hi = 2 ** (bits - 1) - 1 if bits > 1 else 1
            w = rng.integers(
                -hi if bits > 1 else 0, hi + 1, size=layer.get_variable("weights").shape
            )
            w.flat[0] = hi
            layer.set_variable("weights", w.astype(np.int8))
            n = layer.get_variable("threshold").shape
            layer.set_variable("threshold", rng.integers(0, 40, size=n).astype(np.int32))
            if "act_step" in names:
                layer.set_variable(
                    "act_step", (rng.integers(16, 96, size=n) / 16).astype(np.float32)
                )
    return first, second


def io_models() -> dict[str, Any]:
    """Small single-sequence models covering the input and output paths: an image into
    the HRC out as HRC activation events, CNP events in and out, FNP events in and out."""
    akida = _akida()
    out = {}
    m = akida.Model()
    m.add(akida.InputConvolutional(input_shape=(10, 12, 1), kernel_size=(3, 3), filters=6,
                                   name="ic", weights_bits=8, act_bits=4))  # fmt: skip
    out["image in, HRC events out"] = m
    m = akida.Model()
    m.add(akida.InputData(input_shape=(9, 7, 4), input_bits=4, name="in"))
    m.add(akida.Convolutional(kernel_size=(3, 3), filters=5, name="c", weights_bits=4,
                              act_bits=2))  # fmt: skip
    out["CNP events in and out"] = m
    m = akida.Model()
    m.add(akida.InputData(input_shape=(1, 1, 40), input_bits=4, name="in"))
    m.add(akida.FullyConnected(units=7, name="fc", weights_bits=2, act_bits=4))
    out["FNP events in and out"] = m
    rng = np.random.default_rng(0)
    for model in out.values():
        for layer in model.layers:
            names = layer.get_variable_names()
            if "weights" not in names:
                continue
            bits = layer.parameters.weights_bits
            hi = 2 ** (bits - 1) - 1 if bits > 1 else 1
            w = rng.integers(-hi, hi + 1, size=layer.get_variable("weights").shape)
            w.flat[0] = hi
            layer.set_variable("weights", w.astype(np.int8))
            n = layer.get_variable("threshold").shape
            layer.set_variable("threshold", rng.integers(0, 40, size=n).astype(np.int32))
            layer.set_variable("act_step", (rng.integers(16, 96, size=n) / 16).astype(np.float32))
    return out
