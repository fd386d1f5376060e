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


@pytest.mark.xfail(
    reason="on the real-interface simulated chip, a program reloaded after a restart learns "
    "on from the restored weights with the chip's own connection choices and plasticity in "
    "whole weights, so later fits part from a software replay (issue 24's closing note)",
    strict=False,
)
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
