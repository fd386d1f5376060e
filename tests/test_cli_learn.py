"""`akida learn` and `akida run`'s learned state, as a user runs them against akidad."""

from __future__ import annotations

import json
import os

import numpy as np

from tests.conftest import run_akida
from tests.daemon_harness import Akidad
from tests.learning_models import images, learnable_cnn


def test_learn_export_reset_import_and_run_show_the_state(tmp_path) -> None:
    program = tmp_path / "edge.akp"
    learnable_cnn(seed=12).save(program)
    shots = tmp_path / "shots.npy"
    np.save(shots, images(14, 5))
    with Akidad(tmp_path) as daemon:
        env = {**os.environ, "AKIDA_SOCKET": str(daemon.socket)}
        r = run_akida("learn", "-m", str(program), "--label", "2", str(shots), "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["state"]["samples"] == 5
        state = tmp_path / "state.akls"
        r = run_akida("learn", "export", "-m", str(program), "-o", str(state), env=env)
        assert r.returncode == 0 and "5 samples learned" in r.stdout, r.stderr
        r = run_akida("run", "-m", str(program), "--daemon", "--json", env=env)
        assert json.loads(r.stdout)["learning"]["samples"] == 5, r.stderr
        r = run_akida("learn", "reset", "-m", str(program), env=env)
        assert "reset: 0 samples learned" in r.stdout, r.stderr
        r = run_akida("learn", "import", "-m", str(program), "-i", str(state), "--json", env=env)
        assert json.loads(r.stdout)["state"]["samples"] == 5, r.stderr
        other = tmp_path / "other.akp"
        learnable_cnn(seed=13).save(other)
        r = run_akida("learn", "import", "-i", str(state), "-m", str(other), env=env)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and "the imported state was learned on" in r.stderr
        r = run_akida("learn", "-m", str(program), "--label", "9", str(shots), env=env)
        assert r.returncode == 1 and "labels must be in 0..3" in r.stderr


def test_learned_programs_name_classes_in_run_stream_and_model_map(tmp_path) -> None:
    """After `akida learn`, run and stream print the class (not the neuron index: 4
    classes x 3 neurons here) and a Model mapped through akidad computes with the learned
    state; the oracle is the same program learned in software by Model.fit."""
    from akida_rt import Model
    from akida_rt.client.daemon_devices import daemon_devices

    program = tmp_path / "edge.akp"
    learnable_cnn(seed=12).save(program)
    x = images(14, 8)
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    local = Model(str(program))
    local.fit(x, labels)
    want = local.forward(x).reshape(len(x), 4, 3).max(-1).argmax(-1)
    with Akidad(tmp_path) as daemon:
        env = {**os.environ, "AKIDA_SOCKET": str(daemon.socket)}
        r = run_akida("learn", "-m", str(program), "--labels", str(tmp_path / "y.npy"),
                      str(tmp_path / "x.npy"), env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        r = run_akida("run", "-m", str(program), "-i", str(tmp_path / "x.npy"), "--daemon",
                      "--json", env=env)  # fmt: skip
        got = [p["class"] for p in json.loads(r.stdout)["predictions"]]
        assert got == want.tolist() and max(got) <= 3
        r = run_akida("stream", "-m", str(program), "--source", str(tmp_path / "x.npy"),
                      "--labels", str(tmp_path / "y.npy"), "--json", env=env)  # fmt: skip
        lines = [json.loads(ln) for ln in r.stdout.splitlines()]
        assert [ln["class"] for ln in lines[:-1]] == want.tolist(), r.stderr
        accuracy = float(np.mean(want == labels))
        assert lines[-1]["summary"]["accuracy"] == round(accuracy, 4)
        mapped = Model(str(program))
        (device,) = daemon_devices(str(daemon.socket))
        mapped.map(device)
        assert np.array_equal(mapped.forward(x), local.forward(x))
