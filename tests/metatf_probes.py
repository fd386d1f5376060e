"""Probe models for the v1 rules measured on BrainChip's `akida` 2.19.3: one or two
layers built with akida's layer API, each isolating one behaviour (docs/semantics.md).

Saturation probes drive potentials past the signed 20-bit range; mapping probes put one
construct (a register value, a max-pool chain, a full mesh, a wide separable layer, a
global average over tiles) in front of akida's mapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _akida() -> Any:
    import akida

    return akida


def _fill(layer: Any, value: int | np.ndarray, key: str = "weights") -> None:
    w = layer.get_variable(key)
    layer.set_variable(key, (w * 0 + value).astype(np.int8))


def _registers(layer: Any, threshold: int = 0, act_step: float = 1.0) -> None:
    n = layer.get_variable("threshold").shape[0]
    layer.set_variable("threshold", np.full(n, threshold, np.int32))
    layer.set_variable("act_step", np.full(n, act_step, np.float32))


def _pool(kind: str, size: int = 2, stride: int = 2) -> dict[str, Any]:
    akida = _akida()
    if kind == "max":
        return dict(
            pool_size=(size, size), pool_stride=(stride, stride), pool_type=akida.PoolType.Max
        )
    if kind == "gap":
        return dict(pool_type=akida.PoolType.Average)
    return {}


def fc_probe(weights: str, act: bool, threshold: int = 0) -> tuple[Any, np.ndarray]:
    """FullyConnected on 8192 4-bit inputs at 15: potentials up to 7 * 15 * 8192."""
    akida = _akida()
    n = 8192
    m = akida.Model()
    m.add(akida.InputData(input_shape=(1, 1, n), input_bits=4, name="in"))
    m.add(akida.FullyConnected(units=3, name="fc", weights_bits=4, activation=act, act_bits=4))
    w = np.full((n, 3), 7)
    w[:, 1] = -7
    if weights == "mixed":  # the sum fits although half of it does not
        w[n // 2 :, 0] = -7
    if weights == "mostly_positive":  # 630,000 then -230,160: one clamp of the whole sum
        w[6000:, 0] = -7
    m.layers[1].set_variable(
        "weights", w.reshape(m.layers[1].get_variable("weights").shape).astype(np.int8)
    )
    _registers(m.layers[1], threshold)
    return m, np.full((2, 1, 1, n), 15, np.uint8)


def conv_probe(
    cls_name: str, pool: str, act: bool, size: int = 2, threshold: int = 0
) -> tuple[Any, np.ndarray]:
    """A 3x3 convolution on a 4x4x1024 4-bit map at 15 with weights 7: up to 967,680 (6.8 M
    for a separable layer)."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(4, 4, 1024), input_bits=4, name="in"))
    cls = getattr(akida, cls_name)
    m.add(cls(kernel_size=(3, 3), filters=2, name="conv", weights_bits=4, act_bits=4,
              activation=act, **_pool(pool, size, 1 if size == 1 else 2)))  # fmt: skip
    for key in ("weights", "weights_pw"):
        if key in m.layers[1].get_variable_names():
            _fill(m.layers[1], 7, key)
    _registers(m.layers[1], threshold)
    x = np.random.default_rng(0).integers(8, 16, (2, 4, 4, 1024)).astype(np.uint8)
    return m, x


def gap_mixed_probe(positive_first: bool = True) -> tuple[Any, np.ndarray]:
    """Global average over positions of +630,000 and -230,160: akida's sum saturates at
    each addition in row-major order: 294,127 positive first, 399,840 negative first."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(2, 2, 8192), input_bits=4, name="in"))
    m.add(akida.Convolutional(kernel_size=(1, 1), filters=1, name="conv", weights_bits=4,
                              activation=False, pool_type=akida.PoolType.Average))  # fmt: skip
    w = np.full(m.layers[1].get_variable("weights").shape, 7, np.int8)
    w[..., 6000:, :] = -7
    m.layers[1].set_variable("weights", w)
    x = np.zeros((1, 2, 2, 8192), np.uint8)
    first, second = ((0, 1), (1, 0)) if positive_first else ((1, 0), (0, 1))
    x[0, first[0], first[1], :6000] = 15
    x[0, second[0], second[1], 6000:] = 15
    return m, x


def input_conv_probe(pool: str) -> tuple[Any, np.ndarray]:
    """A 7x7 InputConvolutional, 8-bit weights 127 on 255: up to 4.76 M."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputConvolutional(input_shape=(8, 8, 3), kernel_size=(7, 7), filters=2,
                                   name="conv", weights_bits=8, act_bits=4, activation=True,
                                   **_pool(pool)))  # fmt: skip
    m.add(akida.FullyConnected(units=2, name="fc", weights_bits=4, activation=False))
    _fill(m.layers[0], 127)
    _fill(m.layers[1], 1)
    _registers(m.layers[0], 524280 if pool != "none" else 4_000_000, 1.0)
    return m, np.full((1, 8, 8, 3), 255, np.uint8)


SATURATION: dict[str, Callable[[], tuple[Any, np.ndarray]]] = {
    "fc_over": lambda: fc_probe("all", act=False),
    "fc_partial_sums": lambda: fc_probe("mixed", act=False),
    "fc_sum_then_clamp": lambda: fc_probe("mostly_positive", act=False),
    "fc_threshold_after_clamp": lambda: fc_probe("all", act=True, threshold=524280),
    "conv_unpooled_not_clamped": lambda: conv_probe("Convolutional", "none", act=False),
    "conv_unpooled_activated": lambda: conv_probe(
        "Convolutional", "none", act=True, threshold=524280
    ),
    "conv_max2_clamped": lambda: conv_probe("Convolutional", "max", act=False),
    "conv_max2_activated": lambda: conv_probe("Convolutional", "max", act=True, threshold=524280),
    "conv_max1_not_clamped": lambda: conv_probe("Convolutional", "max", act=False, size=1),
    "conv_gap_clamped": lambda: conv_probe("Convolutional", "gap", act=False),
    "conv_gap_activated": lambda: conv_probe("Convolutional", "gap", act=True, threshold=524280),
    "conv_gap_running_sum": gap_mixed_probe,
    "conv_gap_running_sum_reversed": lambda: gap_mixed_probe(positive_first=False),
    "separable_unpooled": lambda: conv_probe("SeparableConvolutional", "none", act=False),
    "separable_max2": lambda: conv_probe("SeparableConvolutional", "max", act=False),
    "separable_gap": lambda: conv_probe("SeparableConvolutional", "gap", act=False),
    "input_conv_unpooled": lambda: input_conv_probe("none"),
    "input_conv_max2": lambda: input_conv_probe("max"),
    "input_conv_gap": lambda: input_conv_probe("gap"),
}


def chain(spec: list[str], shape: tuple[int, int, int] = (16, 16, 8)) -> Any:
    """InputData then one layer per item: 'c' conv, 'cp' max-pooled conv, 'cv' valid
    padded conv (runs in software), 'cg' globally pooled conv, 'fc' FullyConnected."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=shape, input_bits=4, name="in"))
    for i, item in enumerate(spec):
        if item == "fc":
            m.add(akida.FullyConnected(units=4, name=f"fc{i}", weights_bits=4, activation=False))
            continue
        pool = _pool("max" if "p" in item else "gap" if "g" in item else "none")
        pad = akida.Padding.Valid if "v" in item else akida.Padding.Same
        m.add(akida.Convolutional(kernel_size=(3, 3), filters=8, name=f"{item}{i}", weights_bits=4,
                                  act_bits=4, padding=pad, **pool))  # fmt: skip
    for layer in m.layers[1:]:
        _fill(layer, 1)
    return m


def registers_probe(kind: str, threshold: int, act_step: float, act: bool = True) -> Any:
    """One layer ('conv', 'separable', 'fc', 'input_conv', 'pooled_conv') with the given
    register values, between an input and a layer that maps."""
    akida = _akida()
    m = akida.Model()
    if kind == "input_conv":
        m.add(akida.InputConvolutional(input_shape=(8, 8, 3), kernel_size=(3, 3), filters=8,
                                       name="probe", weights_bits=8, act_bits=4))  # fmt: skip
    else:
        m.add(akida.InputData(input_shape=(8, 8, 16), input_bits=4, name="in"))
        if kind == "fc":
            m.add(
                akida.Convolutional(
                    kernel_size=(3, 3), filters=8, name="c0", weights_bits=4, act_bits=4
                )
            )
            m.add(
                akida.FullyConnected(
                    units=4, name="probe", weights_bits=4, activation=act, act_bits=4
                )
            )
            for layer in m.layers[1:]:
                _fill(layer, 1)
            _registers(m.get_layer("probe"), threshold, act_step)
            return m
        cls = akida.SeparableConvolutional if kind == "separable" else akida.Convolutional
        pool = _pool("max") if kind == "pooled_conv" else {}
        m.add(cls(kernel_size=(3, 3), filters=8, name="probe", weights_bits=4, act_bits=4,
                  activation=act, **pool))  # fmt: skip
    if act:
        m.add(akida.FullyConnected(units=4, name="after", weights_bits=4, activation=False))
    for layer in m.layers:
        for key in ("weights", "weights_pw"):
            if key in layer.get_variable_names():
                _fill(layer, 1, key)
    _registers(m.get_layer("probe"), threshold, act_step)
    return m


def convs_then_classifier(n: int, filters: int, hw: int, channels: int) -> Any:
    """n 3x3 convolutions (the last one globally pooled) and a 10-unit classifier."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(hw, hw, channels), input_bits=4, name="in"))
    for i in range(n):
        pool = _pool("gap") if i == n - 1 else {}
        m.add(akida.Convolutional(kernel_size=(3, 3), filters=filters, name=f"c{i}",
                                  weights_bits=4, act_bits=4, **pool))  # fmt: skip
    m.add(akida.FullyConnected(units=10, name="fc", weights_bits=4, activation=False))
    for layer in m.layers[1:]:
        _fill(layer, 1)
    return m


def separable(channels: int, filters: int, bits: int = 4, hw: int = 7, gap: bool = False) -> Any:
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(hw, hw, channels), input_bits=4, name="in"))
    m.add(akida.SeparableConvolutional(kernel_size=(3, 3), filters=filters, name="sep",
                                       weights_bits=bits, act_bits=4,
                                       **(_pool("gap") if gap else {})))  # fmt: skip
    m.add(akida.FullyConnected(units=10, name="fc", weights_bits=4, activation=False))
    for layer in m.layers[1:]:
        for key in ("weights", "weights_pw"):
            if key in layer.get_variable_names():
                _fill(layer, 1, key)
    return m


def float_input_quantizer(scales: list[float], zero_points: list[int]) -> Any:
    """A Quantizer (8-bit unsigned, as cnn2snn emits for float inputs) alone."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.Quantizer(input_shape=(4, 4, 3), output_bits=8, output_signed=False, name="q"))
    m.layers[0].set_variable("scales", np.asarray(scales, np.float32))
    m.layers[0].set_variable("zero_points", np.asarray(zero_points, np.uint8))
    return m


def gap_order_probe(hw: tuple[int, int], n: int, seed: int) -> tuple[Any, np.ndarray]:
    """Global average over an hw map of random position potentials in -230,160..630,000
    (1x1 kernel, weights +7 on 6000 channels and -7 on 2192): the running sum saturates
    in some samples and not in others, so the order of the positions shows."""
    akida = _akida()
    m = akida.Model()
    m.add(akida.InputData(input_shape=(*hw, 8192), input_bits=4, name="in"))
    m.add(akida.Convolutional(kernel_size=(1, 1), filters=1, name="conv", weights_bits=4,
                              activation=False, pool_type=akida.PoolType.Average))  # fmt: skip
    w = np.full(m.layers[1].get_variable("weights").shape, 7, np.int8)
    w[..., 6000:, :] = -7
    m.layers[1].set_variable("weights", w)
    rng = np.random.default_rng(seed)
    x = np.zeros((n, *hw, 8192), np.uint8)
    r = rng.random((n, *hw))
    for k, i, j in zip(*np.nonzero(r < 0.3), strict=True):
        x[k, i, j, : rng.integers(3000, 6000)] = 15
    for k, i, j in zip(*np.nonzero((r >= 0.3) & (r < 0.6)), strict=True):
        x[k, i, j, 6000 : 6000 + rng.integers(500, 2192)] = 15
    return m, x
