"""End to end: train a tiny model, quantize, fine-tune, convert, and compare with Keras.

The one TensorFlow training test: a few epochs on 16x16 digits (about 20 s on 2 cores).
It covers an input offset (Rescaling with b != 0), stride, max and global pooling, a
separable layer and a dense final layer without activation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]

import keras  # noqa: E402
from akida_rt.tools import training  # noqa: E402
from akida_rt.tools.blocks import conv_block, dense_block, separable_conv_block  # noqa: E402
from akida_rt.tools.converter import convert  # noqa: E402
from akida_rt.tools.datasets import load_digits_32  # noqa: E402
from akida_rt.tools.post_training import quantize_model  # noqa: E402
from akida_rt.tools.quantized_layers import load_model  # noqa: E402

from akida_rt import Model, TwoNodesIP  # noqa: E402
from akida_rt.cli.main import main as akida  # noqa: E402
from akida_rt.errors import ConversionError  # noqa: E402


def tiny(weight_bits: int | None, activation: int | str, size: int = 16) -> keras.Model:
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Rescaling(1 / 128.0, offset=-1.0, name="rescale")(inputs)
    first = 8 if weight_bits else None
    x = conv_block(
        x, 8, 3, strides=2, padding="valid", name="c0", weight_bits=first, activation=activation
    )
    x = conv_block(
        x, 16, 3, pooling="max", name="c1", weight_bits=weight_bits, activation=activation
    )
    x = separable_conv_block(
        x, 24, 3, pooling="global_avg", name="s2", weight_bits=weight_bits, activation=activation
    )
    x = dense_block(x, 10, name="d3", weight_bits=weight_bits, activation=None)
    return keras.Model(inputs, x, name="tiny")


@pytest.fixture(scope="module")
def data():
    d = load_digits_32()
    return d.x_train[:, ::2, ::2], d.y_train, d.x_test[:, ::2, ::2], d.y_test


@pytest.fixture(scope="module")
def quantized(data):
    xtr, ytr, _, _ = data
    float_model = training.fit(tiny(None, "relu6"), xtr, ytr, epochs=3, seed=0)
    q = quantize_model(float_model, xtr[:256], weight_bits=4, activation_bits=4, percentile=99.9)
    return training.fit(q, xtr, ytr, epochs=2, seed=1, learning_rate=3e-4)


def test_program_reproduces_the_quantized_keras_model(quantized, data, tmp_path) -> None:
    _, _, xte, yte = data
    program = convert(quantized, device=TwoNodesIP(), v1=False)  # the exact fold
    assert program.input_scaling == (128.0, 128.0)  # train = (raw - 128) / 128
    path = tmp_path / "tiny.akp"
    program.save(path)
    loaded = Model(path)
    keras_out = training.keras_outputs(quantized, xte)
    program_out = training.program_outputs(loaded, xte)
    agree = training.agreement(keras_out, program_out)
    assert agree.argmax >= 0.995
    # Outside rare rounding ties the float outputs match to float32 precision.
    close = np.abs(keras_out - program_out).max(axis=1) < 1e-4 * (1 + np.abs(keras_out).max())
    assert close.mean() >= 0.99
    assert training.accuracy(program_out, yte) > 0.6  # it learned something in 5 epochs
    assert [s.backend.value for s in loaded.sequences] == ["Hardware"]


def test_cli_converts_checks_and_reports(quantized, tmp_path, capsys) -> None:
    keras_path, akp = str(tmp_path / "q.keras"), str(tmp_path / "q.akp")
    quantized.save(keras_path)
    assert akida(["check", "-m", keras_path, "--device", "TwoNodesIP", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert akida(["convert", "-m", keras_path, "-o", akp, "--map", "TwoNodesIP", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"] == 1
    assert akida(["report", "-m", akp, "--device", "TwoNodesIP", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in report["layers"]] == ["c0", "c1", "s2", "d3"]


def test_conversion_refuses_a_float_model_naming_layers_and_fixes() -> None:
    with pytest.raises(ConversionError) as err:
        convert(tiny(None, "relu6"))
    text = str(err.value)
    assert "c0: weights are not quantized" in text and "akida quantize -m FLOAT.keras" in text
    assert "c0_relu: float ReLU" in text


def test_cli_quantizes_a_float_model(tmp_path, capsys) -> None:
    """`akida quantize` calibrates a saved float model on the digits and saves it quantized;
    the accuracy it reports is the saved model's, measured here independently."""
    d = load_digits_32()
    float_model = training.fit(tiny(None, "relu6", size=32), d.x_train, d.y_train, epochs=2, seed=2)
    src, dst = str(tmp_path / "float.keras"), str(tmp_path / "q.keras")
    float_model.save(src)
    args = ["quantize", "-m", src, "-o", dst, "--dataset", "digits", "--samples", "128", "--json"]
    assert akida(args) == 0
    reported = json.loads(capsys.readouterr().out)["test_accuracy"]
    q = load_model(dst)
    predicted = np.asarray(q(d.x_test.astype("float32"), training=False)).reshape(len(d.x_test), -1)
    assert reported == pytest.approx(float((predicted.argmax(axis=1) == d.y_test).mean()))
    assert akida(["check", "-m", dst, "--stage", "quantized", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
