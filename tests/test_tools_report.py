"""Fit report and datasets (no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from akida_rt.tools.report import PJ_PER_DMA_BYTE, PJ_PER_SYNOP, fit_report, report_table

from akida_rt import AKD1000, Model, TwoNodesIP
from akida_rt.model import zoo


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)


def test_report_measures_synops_like_the_engine_statistics(frames: np.ndarray) -> None:
    model = zoo.digits_cnn(seed=0)
    reference = zoo.digits_cnn(seed=0)
    reference.forward(frames)
    stats = reference.statistics
    report = fit_report(model, AKD1000(), frames)
    got = {r["layer"]: r["synops_per_frame"] for r in report["layers"]}
    assert got == {name: s.synops / len(frames) for name, s in stats.layers.items()}
    assert report["totals"]["synops_per_frame"] == pytest.approx(stats.synops_per_frame)
    json.dumps(report)  # plain data


def test_report_follows_the_mapping(frames: np.ndarray) -> None:
    model = zoo.digits_cnn(seed=0)
    report = fit_report(model, AKD1000(), frames)
    mapped = zoo.digits_cnn(seed=0)
    mapped.map(AKD1000())
    assert [s["name"] for s in report["sequences"]] == [s.name for s in mapped.sequences]
    assert report["totals"]["nps"] == sum(s.np_count for s in mapped.sequences)
    # the sequences' program binaries (akida_rt's compiler), then the program file holding them
    programs = [len(s.program) for s in mapped.sequences]
    assert [s["program_bytes"] for s in report["sequences"]] == programs
    assert report["totals"]["program_bytes"] == sum(programs)
    assert report["totals"]["file_bytes"] == len(mapped.to_bytes()) > sum(programs)
    t = report["totals"]
    energy = (
        t["synops_per_frame"] * PJ_PER_SYNOP + t["dma_bytes_per_frame"] * PJ_PER_DMA_BYTE
    ) * 1e-6
    assert t["energy_uj_per_frame"] == pytest.approx(energy)


def test_report_without_samples_gives_the_dense_bound(frames: np.ndarray) -> None:
    bound = fit_report(zoo.digits_cnn(seed=0), AKD1000())
    measured = fit_report(zoo.digits_cnn(seed=0), AKD1000(), frames)
    for b, m in zip(bound["layers"], measured["layers"], strict=True):
        assert b["synops_per_frame"] >= m["synops_per_frame"]
    conv_1 = next(r for r in bound["layers"] if r["layer"] == "conv_1")
    assert conv_1["synops_per_frame"] == 16 * 16 * 16 * 3 * 3 * 32


def test_table_marks_sequence_boundaries() -> None:
    """On the small test mesh AkidaNet splits; each sequence gets a marker line."""
    model = zoo.akidanet(seed=0, alpha=0.25, size=32, classes=10)
    report = fit_report(model, TwoNodesIP())
    text = report_table(report)
    markers = [line for line in text.splitlines() if line.startswith("-- ")]
    assert len(markers) == len(report["sequences"]) > 1
    for layer in model.layers:
        assert any(line.startswith(layer.name) for line in text.splitlines())


def test_report_of_a_loaded_program(tmp_path) -> None:
    path = tmp_path / "m.akp"
    zoo.digits_cnn(seed=1).save(path)
    report = fit_report(Model(path), AKD1000())
    assert [r["layer"] for r in report["layers"]] == [
        "conv_0",
        "conv_1",
        "conv_2",
        "conv_3",
        "dense_4",
    ]
    assert report["layers"][0]["np_type"] == "HRC"


def test_digits_split_is_the_documented_one() -> None:
    from akida_rt.tools.datasets import load_digits_32

    data = load_digits_32()
    assert data.x_train.shape == (1347, 32, 32, 1) and data.x_test.shape == (450, 32, 32, 1)
    assert data.x_train.dtype == np.uint8
    # Nearest-neighbour x4: every 4x4 cell is constant.
    img = data.x_test[0, :, :, 0]
    assert np.array_equal(img, np.repeat(np.repeat(img[::4, ::4], 4, 0), 4, 1))
    per_class = np.bincount(data.y_train) + np.bincount(data.y_test)
    assert np.all(np.abs(np.bincount(data.y_test) - 0.25 * per_class) <= 1)  # stratified


def test_mnist_subset_split() -> None:
    from akida_rt.tools.datasets import load_mnist_subset

    data = load_mnist_subset()
    assert data.x_train.shape == (4000, 28, 28, 1) and data.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert data.x_test.dtype == np.uint8 and data.x_test.max() > 200
