"""Toolchain usability: data in the forms users have, quiet TensorFlow, reproducible training."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")
pytestmark = pytest.mark.tf

from akida_rt.tools import data_files, models, training  # noqa: E402

from tests.conftest import run_akida  # noqa: E402


def _folder(root, per_class: int = 3) -> None:
    from PIL import Image

    for label in (0, 1):
        (root / f"class_{label}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((40, 30), 255 * label, np.uint8)
            Image.fromarray(pixels).save(root / f"class_{label}" / f"{i}.png")


def test_folder_npy_and_npz_forms(tmp_path) -> None:
    _folder(tmp_path / "imgs")
    data = data_files.load_data(str(tmp_path / "imgs"), (32, 32, 1))
    assert data.x.shape == (6, 32, 32, 1) and data.x.dtype == np.uint8
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1] and data.x[3:].min() == 255
    np.save(tmp_path / "x.npy", np.ones((5, 32, 32), np.int64))
    npy = data_files.load_data(str(tmp_path / "x.npy"))
    assert npy.x.shape == (5, 32, 32, 1) and npy.y is None
    x = np.zeros((4, 32, 32, 1), np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=[0, 1, 2, 3], x_test=x[:2], y_test=[1, 0])
    npz = data_files.load_data(str(tmp_path / "d.npz"))
    assert npz.y.tolist() == [0, 1, 2, 3] and npz.y_test.tolist() == [1, 0]


def test_quantize_with_own_calibration_and_training_data(tmp_path) -> None:
    from akida_rt.tools.datasets import load_digits_32

    d = load_digits_32()
    models.digits_cnn().save(tmp_path / "f.keras")
    np.savez(tmp_path / "train.npz", x_train=d.x_train[:96], y_train=d.y_train[:96],
             x_test=d.x_test[:50], y_test=d.y_test[:50])  # fmt: skip
    _folder(tmp_path / "calib")
    out = run_akida("quantize", "-m", str(tmp_path / "f.keras"), "-o", str(tmp_path / "q.keras"),
                    "--dataset", str(tmp_path / "train.npz"), "--calibration",
                    str(tmp_path / "calib"), "--epochs", "2")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "quantized Keras accuracy on" in out.stdout and "train.npz test" in out.stdout
    assert (tmp_path / "q.keras").stat().st_size > 0
    assert "epoch 1/2" in out.stderr and "epoch 2/2" in out.stderr  # one bar per epoch
    assert "next: akida convert" in out.stderr
    for noise in ("absl", "oneDNN", "cpu_feature_guard", "I0000"):  # TensorFlow's own logs
        assert noise not in out.stderr


def test_quantize_gives_one_block_its_own_activation_bits(tmp_path) -> None:
    import keras
    from akida_rt.tools.quantized_layers import QuantizedReLU

    models.digits_cnn().save(tmp_path / "f.keras")
    base = ["quantize", "-m", str(tmp_path / "f.keras"), "-o", str(tmp_path / "q.keras")]
    out = run_akida(*base, "--samples", "64", "--layer-bits", "conv_3=1")
    assert out.returncode == 0, out.stderr
    q = keras.models.load_model(tmp_path / "q.keras", compile=False)
    bits = {layer.name: layer.bits for layer in q.layers if isinstance(layer, QuantizedReLU)}
    assert bits["conv_3_relu"] == 1 and {b for n, b in bits.items() if n != "conv_3_relu"} == {4}
    bad = run_akida(*base, "--layer-bits", "nowhere=1")
    assert bad.returncode != 0 and "nowhere" in bad.stderr and "conv_3" in bad.stderr
    malformed = run_akida(*base, "--layer-bits", "conv_3=3")
    assert malformed.returncode == 2 and "BLOCK=BITS with BITS 1, 2 or 4" in malformed.stderr


def test_verbose_after_the_subcommand_and_quiet_tensorflow(tmp_path) -> None:
    assert run_akida("devices", "-v", "--json").returncode == 0
    models.digits_cnn().save(tmp_path / "f.keras")
    quiet = run_akida("check", "-m", str(tmp_path / "f.keras"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_fit_with_the_same_seed_gives_the_same_model() -> None:
    from akida_rt.tools.datasets import load_digits_32

    d = load_digits_32()
    runs = []
    for _ in range(2):
        model = training.fit(models.digits_cnn(seed=3), d.x_train[:96], d.y_train[:96],
                             epochs=1, seed=5, augment=2)  # fmt: skip
        runs.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    other = training.fit(models.digits_cnn(seed=4), d.x_train[:96], d.y_train[:96], epochs=1)
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], other.get_weights(), strict=True))


def test_fix_hints_name_cli_commands() -> None:
    from akida_rt.tools.compatibility import check_model

    issues = check_model(models.digits_cnn(), stage="quantized")
    assert issues and all("akida quantize" in i.fix for i in issues if i.rule == "quantized")
