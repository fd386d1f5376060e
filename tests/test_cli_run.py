"""`akida run` as a board evaluation tool: predictions, -o, benchmark options, the daemon path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from akida_rt import AKD1000
from akida_rt.data import sample_program
from akida_rt.model.model import Model
from tests.conftest import run_akida
from tests.daemon_harness import Akidad, daemon_env

PROGRAM = str(sample_program())


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[str, np.ndarray, np.ndarray]:
    """40 digits test images as .npy (scikit-learn's digits, no TensorFlow needed)."""
    datasets = pytest.importorskip("akida_rt.tools.datasets")
    data = datasets.load_digits_32()
    path = tmp_path_factory.mktemp("in") / "digits.npy"
    np.save(path, data.x_test[:40])
    return str(path), data.x_test[:40], data.y_test[:40]


def _json(*args: str, **kw) -> dict:
    out = run_akida("run", "-m", PROGRAM, "--json", *args, **kw)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_predictions_top_k_and_raw_outputs(digits, tmp_path) -> None:
    path, x, y = digits
    data = _json("-i", path, "--top-k", "3", "-o", str(tmp_path / "y.npy"), "--no-daemon")
    assert data["device"]["id"] == "sim://akd1000/0" and data["device"]["simulated"] is True
    preds = data["predictions"]
    classes = np.array([p["class"] for p in preds])
    assert len(preds) == 40 and np.mean(classes == y) >= 0.9  # the true labels
    for p in preds:
        scores = [s for _, s in p["top_k"]]
        assert (
            len(p["top_k"]) == 3
            and p["top_k"][0][0] == p["class"]
            and scores == sorted(scores)[::-1]
        )
    raw = np.load(tmp_path / "y.npy")
    software = Model(PROGRAM)  # the host engine, not the device the command used
    assert np.array_equal(raw, software.forward(x))
    assert np.array_equal(classes, software.predict(x).reshape(40, -1).argmax(1))


def test_frames_batch_and_latency(digits) -> None:
    data = _json("-i", digits[0], "--frames", "25", "--batch", "10", "--no-daemon")
    run = data["run"]
    assert (run["frames"], run["calls"]) == (25, 3) and len(data["predictions"]) == 40 - 15
    assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"] and run["host_fps"] > 0
    assert data["statistics"]["inference_frames"] == 25 and run["board_fps"] > 0
    assert data["device_run"]["frames"] == 25


def test_duration_runs_that_long_and_shows_progress_and_power() -> None:
    out = run_akida("run", "-m", PROGRAM, "--duration", "2.5", "--batch", "50", "--no-daemon")
    assert out.returncode == 0, out.stderr
    assert "ETA" in out.stderr and " s [ETA" in out.stderr  # a run over 2 s: seconds left
    assert "mW average over" in out.stdout and "Power: not measured" not in out.stdout
    frames = int(out.stdout.split("Frames: ")[1].split()[0])
    assert frames >= 100 and "p50" in out.stdout and "p99" in out.stdout


def test_a_long_frames_run_shows_an_eta() -> None:
    out = run_akida("run", "-m", PROGRAM, "--frames", "2000", "--batch", "4", "--no-daemon")
    assert out.returncode == 0, out.stderr
    if "frames [" in out.stderr:  # the bar appears after 2 s (a fast host may be done)
        assert "/2000 frames [" in out.stderr and "ETA" in out.stderr


def test_one_frame_has_one_fps_figure_and_its_power() -> None:
    text = run_akida("run", "-m", PROGRAM, "--no-daemon").stdout
    assert text.count(" fps") == 1 and "Average framerate" not in text, text
    assert "Power: not measured" not in text and "mW average over" in text
    assert "Device: sim://akd1000/0 (simulated)" in text


def test_power_not_measured_says_why() -> None:
    from akida_rt.model.run_figures import delta

    before = {"frames": 0, "inference_clk": 0, "program_clk": 0, "synops": 0,
              "energy_mj": None, "load_s": 0.0, "infer_s": 0.0}  # fmt: skip
    after = {**before, "frames": 5, "infer_s": 0.1}
    run = delta(before, after)
    assert run["power_mw"] is None and run["board_fps"] == pytest.approx(50)


def test_akidad_reports_this_runs_figures_as_in_process(tmp_path) -> None:
    """Power, energy per frame, board fps and clocks through akidad are the run's own and
    agree with the same run in this process (the oracle: a separate code path)."""
    local = _json("--frames", "60", "--batch", "1", "--no-daemon")["device_run"]
    with Akidad(tmp_path) as daemon:
        env = daemon_env(AKIDA_SOCKET=str(daemon.socket))
        runs = [_json("--frames", "60", "--batch", "1", "--daemon", env=env) for _ in range(2)]
        idle = json.loads(run_akida("stats", "--json", env=env).stdout)["devices"][0]["driver"]
    for i, data in enumerate(runs):
        got = data["device_run"]
        assert got["frames"] == 60 and got["power_mw"] == pytest.approx(local["power_mw"], rel=0.05)
        assert got["energy_mj_per_frame"] == pytest.approx(local["energy_mj_per_frame"], rel=0.1)
        assert got["board_fps"] == pytest.approx(local["board_fps"], rel=0.05)
        assert got["inference_clk"] == pytest.approx(local["inference_clk"], rel=0.05)
        assert got["program_clk"] == (local["program_clk"] if i == 0 else 0)  # then resident
    assert 500 < idle["power_mw"] < 2000  # the board's ~0.9 W, not a lifetime/clock ratio


def test_through_akidad_when_running(tmp_path) -> None:
    with Akidad(tmp_path) as daemon:
        env = daemon_env(AKIDA_SOCKET=str(daemon.socket))
        data = _json("--frames", "20", "--batch", "5", env=env)
        assert data["via"].startswith("akidad") and data["device"]["simulated"] is True
        assert data["run"]["calls"] == 4 and data["predictions"][0]["class"] in range(10)
        stats = json.loads(run_akida("stats", "--json", env=env).stdout)
        (dev,) = stats["devices"]
        assert dev["meter"]["frames"] == 20 and "energy_per_inference_mj" not in dev["meter"]
        assert _json("--no-daemon", env=env)["via"] == "in-process"
    gone = run_akida("run", "-m", PROGRAM, "--daemon", env=env)
    assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1
    assert "--daemon" in gone.stderr and "akidad" in gone.stderr


def test_summary_and_statistics_name_the_backend_that_ran() -> None:
    model = Model(PROGRAM)
    model.map(AKD1000())
    texts: list[str] = []
    model.summary(print_fn=texts.append)
    model.forward(np.zeros((1, 32, 32, 1), np.uint8))
    assert "Hardware plan, runs in Software" in texts[0]
    assert "Backend: Software (mapped onto the AKD1000 description" in str(model.statistics)


def test_simulated_pcie_ids_are_stable_across_runs() -> None:
    env = daemon_env(AKIDA_SIM_BOARDS="pcie:2")
    ids = [
        [d["id"] for d in json.loads(run_akida("devices", "--json", env=env).stdout)]
        for _ in range(2)
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 2 and ids[0][0].startswith("pcie://")
    data = _json("--device", ids[0][1], "--no-daemon", env=env)
    assert data["device"]["id"] == ids[0][1] and data["device"]["simulated"] is True
