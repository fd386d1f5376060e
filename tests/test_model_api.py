"""Model API: construction errors, input checks, predict, import cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from akida_rt import (
    AKD1000,
    Conv2D,
    FullyConnected,
    InputConv2D,
    InputError,
    Model,
    ModelError,
)
from akida_rt.model import zoo


def test_forward_rejects_bad_inputs(digits_model: Model) -> None:
    with pytest.raises(InputError, match="must be uint8, got float32"):
        digits_model.forward(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(
        InputError, match=r"input shape \(1, 28, 28, 1\) does not match \(N, 32, 32, 1\)"
    ):
        digits_model.forward(np.zeros((1, 28, 28, 1), np.uint8))
    with pytest.raises(InputError, match="numpy array"):
        digits_model.forward([[1, 2]])


def test_layer_construction_errors() -> None:
    model = Model()
    with pytest.raises(ModelError, match="first layer 'c' needs an input_shape"):
        model.add(Conv2D("c", 4, 3))
    model.add(InputConv2D("in", (8, 8, 1), 4, 3))
    with pytest.raises(ModelError, match=r"padding_value 128 outside 0\.\.0"):
        bad = Conv2D("c", 4, 3)
        bad.padding_value = 128
        model.add(bad)
    with pytest.raises(ModelError, match="already in the model"):
        model.add(Conv2D("in", 4, 3))
    with pytest.raises(ModelError, match="activation_bits 3"):
        model.add(Conv2D("c3", 4, 3, activation_bits=3))


def test_predict_dequantizes_the_last_layer(digits_model: Model) -> None:
    last = digits_model.layers[-1]
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    raw = digits_model.forward(x).astype(np.float64)
    last.set_variable("output_scale", np.linspace(0.5, 1.5, 10))
    last.set_variable("output_offset", np.arange(10))
    try:
        got = digits_model.predict(x)
        np.testing.assert_allclose(got, raw * np.linspace(0.5, 1.5, 10) + np.arange(10), rtol=1e-6)
        assert got.dtype == np.float32
    finally:
        del last.variables["output_scale"], last.variables["output_offset"]


def test_activated_last_layer_returns_uint8() -> None:
    model = Model()
    model.add(InputConv2D("in", (8, 8, 3), 4, 3, stride=2))
    model.add(FullyConnected("fc", 5, activation_bits=2))
    zoo.randomize(model)
    y = model.forward(np.full((2, 8, 8, 3), 100, np.uint8))
    assert y.dtype == np.uint8 and y.shape == (2, 1, 1, 5) and y.max() <= 3


def test_import_never_loads_tensorflow_or_the_parts() -> None:
    """`import akida_rt` stays light: no TensorFlow/Keras, no driver, daemon or tools.

    Its time is measured in benchmarks/engine_throughput.py (speed is not a test)."""
    code = (
        "import sys, akida_rt; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras') or m.startswith(('akida_rt.driver', 'akida_rt.daemon', "
        "'akida_rt.tools', 'akida_rt.firmware_sim')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_changed_weights_take_effect_after_first_forward() -> None:
    """The compiled engine and sequence programs are cached, but never stale."""
    model = zoo.digits_cnn(seed=2)
    model.map(AKD1000())
    x = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    before = model.forward(x)
    program_before = model.sequences[0].program
    assert model.sequences[0].program is program_before  # cached between calls
    dense = model.get_layer("dense_4")
    dense.set_variable("weights", -dense.get_variable("weights"))
    after = model.forward(x)
    np.testing.assert_array_equal(after, -before)
    assert model.sequences[0].program != program_before
    from tests.reference import reference_forward

    np.testing.assert_array_equal(after.astype(np.int64), reference_forward(model.layers, x))


def test_statistics_show_time_per_layer() -> None:
    import numpy as np

    from akida_rt import Model
    from akida_rt.data import sample_program

    model = Model(sample_program())
    model.forward(np.zeros((8, 32, 32, 1), np.uint8))
    stats = model.statistics
    times = [s.time_ns for s in stats.layers.values()]
    assert len(times) == len(model.layers) and all(t > 0 for t in times)
    assert sum(times) / 1e9 <= stats.elapsed_s  # the layers' share of the calls' time
    text = str(stats)
    assert "ms/frame" in text and all(name in text for name in stats.layers)
    assert stats.as_dict()["layers"]["conv_1"]["time_ms"] > 0
