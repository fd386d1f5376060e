"""`akida stream` as a user runs it: a synthetic DVS recording through a real akidad, one
JSON line per frame and a summary; a broken source is one clear line and exit 1."""

from __future__ import annotations

import json

import numpy as np

from akida_rt.data import sample_program
from akida_rt.stream.evt3 import write_evt3
from akida_rt.stream.synthetic import saccade_recording
from tests.conftest import run_akida
from tests.daemon_harness import Akidad, daemon_env


def test_stream_an_event_recording_through_akidad(tmp_path):
    digits = np.zeros((2, 20, 20), np.uint8)
    digits[0, 5:15, 9:11] = 255
    digits[1, 9:11, 5:15] = 255
    ev, _ = saccade_recording(digits)
    write_evt3(tmp_path / "rec.raw", ev, 34, 34)
    with Akidad(tmp_path) as daemon:
        out = run_akida("stream", "-m", str(sample_program()), "--source", str(tmp_path / "rec.raw"),
                        "--events-per-frame", "1500", "--socket", str(daemon.socket), "--json",
                        env=daemon_env())  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert len(frames) == len(ev) // 1500 and [f["seq"] for f in frames] == list(range(len(frames)))
    assert all(0 <= f["class"] < 10 and f["device"] == "sim://akd1000/0" for f in frames)
    assert summary["frames"] == len(frames) and summary["where"].startswith("akidad at")
    assert "energy_mj_per_frame" in summary and "power_mw" in summary


def test_a_missing_source_is_one_line(tmp_path):
    out = run_akida("stream", "-m", str(sample_program()), "--source", str(tmp_path / "no.mp4"),
                    "--embedded")  # fmt: skip
    assert out.returncode == 1
    assert "no.mp4: no such file or folder" in out.stderr and "Traceback" not in out.stderr


def test_a_piped_stream_prints_every_class_and_refuses_wrong_labels(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "three.npy", np.array([1, 2, 3]))
    env = daemon_env(AKIDA_SOCKET=str(tmp_path / "none.sock"))
    out = run_akida("stream", "-m", str(sample_program()), "--source", str(tmp_path / "frames.npy"),
                    "--labels", str(tmp_path / "three.npy"), env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines[:6]] == [f"frame {i}" for i in range(6)]
    assert "accuracy: " not in out.stdout
    assert "accuracy_unavailable: --labels holds 3 labels for 6 frames" in out.stdout
