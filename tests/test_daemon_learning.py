"""Learned state in akidad, tested over its real socket: fits equal the software backend,
every acknowledged fit survives kill -9 (compared with a reference replay), each fit
applies once even when the client retries, and export / import / reset."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from akida_rt.client.client import Client
from akida_rt.errors import RemoteError
from akida_rt.model import zoo
from tests.daemon_harness import Akidad
from tests.learning_models import images, learnable_cnn

TWO = ["--device=sim://akd1000/0", "--device=sim://akd1000/1"]


def _weights(model) -> np.ndarray:
    return model.layers[-1].get_variable("weights")


def test_fit_through_akidad_equals_software_and_bad_input_loses_nothing(tmp_path) -> None:
    x, labels = images(11, 12), np.arange(12) % 4
    reference = learnable_cnn(seed=7)
    with Akidad(tmp_path) as daemon, Client(daemon.socket, timeout=20) as c:
        model = c.load(learnable_cnn(seed=7))
        for i in range(0, 12, 4):
            pots = model.fit(x[i : i + 4], labels[i : i + 4])
            assert np.array_equal(pots, reference.fit(x[i : i + 4], labels[i : i + 4]))
        assert np.array_equal(model.forward(x), reference.forward(x))
        with pytest.raises(RemoteError, match=r"BAD_INPUT: fit: labels must be in 0\.\.3"):
            model.fit(x[:2], [0, 9])
        with pytest.raises(RemoteError, match=r"BAD_INPUT: fit: input shape \(1, 8, 8, 1\)"):
            model.fit(np.zeros((1, 8, 8, 1), np.uint8), 0)
        info, _ = model.learned_state()
        assert info["samples"] == 12
        plain = c.load(zoo.digits_cnn(seed=0))
        with pytest.raises(RemoteError, match="BAD_INPUT: program 'digits_cnn' is not compiled"):
            plain.fit(np.zeros((1, 32, 32, 1), np.uint8), 0)
        assert np.array_equal(model.forward(x), reference.forward(x))


def test_kill9_during_learning_loses_no_acknowledged_fit(tmp_path) -> None:
    """The daemon is killed at random moments while one client keeps fitting; the client
    reconnects and retries (same update ids). At the end the state equals a replay of
    every acknowledged fit, each applied once, and akidad restores it before serving."""
    x = images(12, 60)
    labels = np.arange(60) % 4
    daemon = Akidad(tmp_path, "--device=sim://akd1000/0").start()
    acked: list[int] = []
    done = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        rng = random.Random(0)
        while not done.is_set() and kills < 4:
            time.sleep(rng.uniform(0.05, 0.4))
            if done.is_set():
                return
            daemon.kill9()
            kills += 1
            daemon.start()

    thread = threading.Thread(target=killer)
    try:
        with Client(daemon.socket, timeout=20, retry_s=30) as c:
            model = c.load(learnable_cnn(seed=8))
            thread.start()
            fits = 0
            # Fit until the daemon was killed under us a few times (on a fast machine the
            # 30 fits of one pass end before the first kill), going round the samples.
            while fits < 30 or (kills < 3 and fits < 400):
                i = 2 * fits % 60
                model.fit(x[i : i + 2], labels[i : i + 2])
                acked.append(i)
                fits += 1
            done.set()
            thread.join()
            daemon.kill9()  # once more, after the last acknowledgement
            daemon.start()
            model.forward(x[:1])  # reconnects, reloads: restored before it serves
            info, exported = model.learned_state("export")
        assert kills >= 2, "the daemon should have been killed during the run"
        replay = learnable_cnn(seed=8)
        for i in acked:
            replay.fit(x[i : i + 2], labels[i : i + 2])
        assert info["samples"] == 2 * len(acked)
        from akida_rt.learning.edge import decode_state

        state = decode_state(exported)
        assert state.weights.data == _weights(replay).tobytes()
        assert state.learning.plasticity.data == replay.learning.plasticity.data
    finally:
        done.set()
        if thread.is_alive():
            thread.join()
        daemon.stop()


def test_fits_after_restarts_equal_fits_without_and_the_software_fit(tmp_path) -> None:
    """On the simulated AKD1000 through akidad: fit 16 samples, restart akidad cleanly
    (SIGTERM), fit 16 more, restart it with SIGKILL, fit 16 more. The state (weights and
    each neuron's plasticity, which reaches its floor) and every fit's potentials equal
    one akidad run without restarts and the software backend's fit of all 48."""
    x, labels = images(21, 48), np.arange(48) % 4
    dev = "--device=sim://akd1000/0"
    for name in ("straight", "restarted"):
        (tmp_path / name).mkdir()

    def fits(model, part: int) -> list[np.ndarray]:
        return [model.fit(x[i : i + 8], labels[i : i + 8]) for i in (16 * part, 16 * part + 8)]

    def state(model) -> tuple[bytes, bytes, int]:
        info, blob = model.learned_state("export")
        from akida_rt.learning.edge import decode_state

        msg = decode_state(blob)
        return msg.weights.data, msg.learning.plasticity.data, info["samples"]

    with Akidad(tmp_path / "straight", dev) as daemon, Client(daemon.socket, timeout=20) as c:
        model = c.load(learnable_cnn(seed=11, per_class=2))
        straight = [p for part in range(3) for p in fits(model, part)]
        straight_state = state(model)
    daemon = Akidad(tmp_path / "restarted", dev).start()
    try:
        restarted = []
        for part, stop in enumerate((daemon.stop, daemon.kill9, None)):
            with Client(daemon.socket, timeout=20) as c:
                model = c.load(learnable_cnn(seed=11, per_class=2))
                assert model.learned_state()[0]["samples"] == 16 * part  # restored
                restarted += fits(model, part)
                restarted_state = state(model)
            if stop is not None:
                stop()
                daemon.start()
    finally:
        daemon.stop()
    software = learnable_cnn(seed=11, per_class=2)
    expected = [software.fit(x[i : i + 8], labels[i : i + 8]) for i in range(0, 48, 8)]
    for a, b, c in zip(restarted, straight, expected, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert restarted_state == straight_state
    assert restarted_state == (_weights(software).tobytes(), software.learning.plasticity.data, 48)
    floor = np.ceil(np.float32(0.1) * np.float32(24))  # AkidaUnsupervised's default, 24 weights
    swaps = np.ceil(np.frombuffer(software.learning.plasticity.data, np.float32) * 24)
    assert swaps.min() == floor  # some neuron learned down to the floor


def test_export_import_reset_between_devices(tmp_path) -> None:
    x, labels = images(13, 8), np.arange(8) % 4
    with Akidad(tmp_path, *TWO) as daemon, Client(daemon.socket, timeout=20) as c:
        first = c.load(learnable_cnn(seed=9), device="sim://akd1000/0")
        first.fit(x, labels)
        info, blob = first.learned_state("export")
        second = c.load(learnable_cnn(seed=9), device="sim://akd1000/1")
        assert second.learned_state()[0]["samples"] == 0  # state is per device
        second.learned_state("import", blob)
        assert np.array_equal(second.forward(x), first.forward(x))
        other = c.load(learnable_cnn(seed=10), device="sim://akd1000/1")
        with pytest.raises(RemoteError, match="BAD_INPUT: the imported state was learned on"):
            other.learned_state("import", blob)
        assert other.learned_state()[0]["samples"] == 0
        assert second.learned_state("reset")[0]["samples"] == 0
        assert first.learned_state()[0]["samples"] == 8
    with Akidad(tmp_path, *TWO) as daemon, Client(daemon.socket, timeout=20) as c:
        again = c.load(learnable_cnn(seed=9), device="sim://akd1000/1")
        assert again.learned_state()[0]["samples"] == 0  # the reset was durable
        kept = c.load(learnable_cnn(seed=9), device="sim://akd1000/0")
        assert kept.learned_state()[0] == info


def test_add_classes_through_akidad_keeps_what_was_learned(tmp_path) -> None:
    x, labels = images(13, 8), np.arange(8) % 4
    reference = learnable_cnn(seed=7)
    with Akidad(tmp_path) as daemon, Client(daemon.socket, timeout=20) as c:
        model = c.load(learnable_cnn(seed=7))
        old_session = model.session
        assert np.array_equal(model.fit(x, labels), reference.fit(x, labels))
        model.add_classes(2)
        reference.add_classes(2)
        assert model.session != old_session and model.output_shape[-1] == 18
        assert np.array_equal(model.forward(x), reference.forward(x))
        new = np.array([4, 5, 4, 5])
        assert np.array_equal(model.fit(x[:4], new), reference.fit(x[:4], new))
        info, _ = model.learned_state()
        assert info["num_classes"] == 6 and info["samples"] == 12
        assert np.array_equal(model.forward(x), reference.forward(x))
