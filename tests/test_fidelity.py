"""The simulated AKD1000's host-visible figures: properties of the timing and power model,
and the user guide's two published `akida run` figures within 2x (benchmarks/fidelity.py)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

import akida_rt
from akida_rt import Model
from akida_rt.model import zoo

ROOT = Path(__file__).resolve().parents[1]


def _fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "benchmarks" / "fidelity.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(model: Model, frames: int, batch: int, power: bool = False):
    """Host-visible statistics of `frames` frames sent `batch` per call."""
    device = akida_rt.devices()[0]
    device.soc.power_measurement_enabled = power
    model.map(device)
    x = np.random.default_rng(0).integers(0, 256, (frames, *model.input_shape), np.uint8)
    try:
        for i in range(0, frames, batch):
            model.forward(x[i : i + batch])
        return model.statistics, device
    finally:
        device.soc.power_measurement_enabled = False
        model.map(None)


def test_user_guide_figures_within_2x() -> None:
    rows = _fidelity().run(models={"ds_cnn_kws", "akidanet_0.5_224"})
    assert {(r["model"], r["metric"]) for r in rows} >= {
        ("ds_cnn_kws", "fps"),
        ("ds_cnn_kws", "inference_clk"),
        ("akidanet_0.5_224", "fps"),
        ("akidanet_0.5_224", "avg_power_mw"),
        ("akidanet_0.5_224", "energy_mj_per_frame"),
    }
    for r in rows:
        assert r["ratio"] is not None and 0.5 <= r["ratio"] <= 2.0, r
        if r["role"] == "fit":
            assert 0.8 <= r["ratio"] <= 1.25, r


def test_fps_falls_monotonically_with_model_size() -> None:
    sizes = [96, 128, 160, 192]  # below 96 the last global pooling spans < 3 columns: software
    fps = []
    for size in sizes:
        stats, _ = _run(zoo.akidanet(alpha=0.25, size=size, classes=10), 4, 4)
        fps.append(stats.fps)
    assert all(a > b for a, b in itertools.pairwise(fps)), dict(zip(sizes, fps, strict=True))


def test_batching_raises_fps_for_small_models_only() -> None:
    def gain(model: Model) -> float:
        few, _ = _run(model, 16, 4)
        many, _ = _run(model, 16, 16)
        return many.fps / few.fps

    small = gain(zoo.mnist_cnn())  # host costs per request dominate
    large = gain(zoo.akidanet(alpha=0.5))  # NP clocks dominate
    assert small > 1.8 and large < 1.15 and small > large


def test_energy_per_frame_is_average_power_over_fps() -> None:
    stats, device = _run(zoo.mnist_cnn(), 500, 500, power=True)  # one call: one window
    p = stats.power_mw
    assert p is not None and stats.fps
    # With a small model the board runs at nearly floor power.
    assert p["avg"] - stats.floor_power_mw < 0.02 * stats.floor_power_mw
    # The sensor's energy integral over the last call's window, per frame, is the average
    # power over the host-visible fps: the window covers the link and host time too.
    window = device.power()
    per_frame_mj = window["energy_mj"] / window["frames"]
    assert per_frame_mj == pytest.approx(p["avg"] / (500 / stats.elapsed_s), rel=0.02)
    assert stats.energy_mj_per_frame == pytest.approx(per_frame_mj, rel=0.02)
