"""`akida benchmark`: a batch sweep with fps, latency percentiles, power and mJ/frame.

Each row is checked against the physics of the board (bigger batches amortise the per-call
cost: fps up, energy per frame down) and the daemon's rows against the in-process ones.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from akida_rt.data import sample_program
from tests.conftest import run_akida
from tests.daemon_harness import Akidad, daemon_env

PROGRAM = str(sample_program())
SWEEP = ("--batches", "1,8", "--frames", "16")


def _rows(*args: str, **kw) -> list[dict]:
    out = run_akida("benchmark", "-m", PROGRAM, "--json", *SWEEP, *args, **kw)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["rows"]


def test_a_sweep_in_process_and_through_akidad(tmp_path) -> None:
    local = _rows("--no-daemon")
    assert [r["batch"] for r in local] == [1, 8] and all(r["frames"] == 16 for r in local)
    one, eight = local
    assert eight["board_fps"] > 2 * one["board_fps"]
    assert eight["energy_mj_per_frame"] < one["energy_mj_per_frame"] / 2
    for r in local:
        assert 500 < r["power_mw"] < 2000 and r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["energy_mj_per_frame"] == pytest.approx(r["power_mw"] / r["board_fps"], rel=0.1)
    with Akidad(tmp_path) as daemon:
        env = daemon_env(AKIDA_SOCKET=str(daemon.socket))
        remote = _rows("--daemon", env=env)
        text = run_akida("benchmark", "-m", PROGRAM, "--csv", *SWEEP, env=env).stdout
    for got, want in zip(remote, local, strict=True):
        for key in ("board_fps", "power_mw", "energy_mj_per_frame", "inference_clk"):
            assert got[key] == pytest.approx(want[key], rel=0.05), key
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["batch"]) for r in rows] == [1, 8] and float(rows[1]["board_fps"]) > 0


def test_the_table_names_the_device_and_every_column() -> None:
    out = run_akida("benchmark", "-m", PROGRAM, *SWEEP, "--no-daemon").stdout
    assert "on sim://akd1000/0 (simulated" in out
    for col in ("board fps", "p50 ms", "p99 ms", "power mW", "mJ/frame"):
        assert col in out
