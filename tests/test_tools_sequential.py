"""keras.Sequential models pass `akida check` and `akida quantize` like their functional twins.

A Sequential saved to .keras reloads with a node per build on each layer; the checker must
judge it by its layer order, as it judges the same layers written with the functional API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf
keras = pytest.importorskip("keras")

from akida_rt.cli.main import main  # noqa: E402


def twins(root: Path) -> tuple[Path, Path]:
    """The digits CNN saved twice: functional (as built) and as a keras.Sequential."""
    from akida_rt.cli.toolchain import import_tensorflow

    import_tensorflow()
    from akida_rt.tools import models

    functional = models.digits_cnn()
    layers = [type(la).from_config(la.get_config()) for la in functional.layers[1:]]
    sequential = keras.Sequential([keras.Input((32, 32, 1)), *layers], name="digits_seq")
    sequential.set_weights(functional.get_weights())
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(sequential(x), functional(x), rtol=1e-5, atol=1e-5)
    functional.save(root / "functional.keras")
    sequential.save(root / "sequential.keras")
    return root / "functional.keras", root / "sequential.keras"


def test_check_and_quantize_take_a_sequential_model(tmp_path: Path, capsys) -> None:
    functional, sequential = twins(tmp_path)
    assert main(["check", "-m", str(functional)]) == 0
    want = capsys.readouterr().out
    assert main(["check", "-m", str(sequential)]) == 0
    got = capsys.readouterr().out
    assert "serial" not in got
    assert got.replace(str(sequential), "M") == want.replace(str(functional), "M")
    out = tmp_path / "q.keras"
    assert main(["quantize", "-m", str(sequential), "-o", str(out), "--samples", "32"]) == 0
    assert out.stat().st_size > 10_000
    assert main(["check", "-m", str(out), "--stage", "quantized"]) == 0, capsys.readouterr()


def test_check_piped_prints_whole_fixes_for_a_pooled_conv_feeding_dense(tmp_path, capsys) -> None:
    """The issue's case: a max-pooled convolution feeding Dense, checked into a pipe."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((32, 32, 1)), layers.Rescaling(1 / 255),
        layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False),
        layers.BatchNormalization(), layers.ReLU(6.0),
        layers.Conv2D(32, 3, padding="same", use_bias=False), layers.MaxPooling2D(),
        layers.BatchNormalization(), layers.ReLU(6.0),
        layers.Flatten(), layers.Dense(10),
    ])  # fmt: skip
    path = tmp_path / "pooled.keras"
    model.save(path)
    assert main(["check", "-m", str(path), "--hw-only"]) == 1
    out = capsys.readouterr().out
    assert "max-pooled convolution cannot end a sequence" in out, out
    assert (
        "    fix: move the max pooling to an earlier convolution, or add a convolution "
        "without pooling before the FullyConnected layer" in out
    )
