"""Learning under the weighted-fair scheduler (issue 30, finding 4): fits are queued per
client like inference, with its weights and deadlines, and capped in frames. Before, 8
fits of 2,000 frames in flight ran ahead of every batch and made a priority-7 client's
inference time out."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from akida_rt.client.client import Client
from akida_rt.errors import RemoteError
from tests.daemon_harness import Akidad
from tests.learning_models import images, learnable_cnn

FIT_FRAMES = 96


def test_fits_wait_their_turn_behind_a_priority_client(tmp_path) -> None:
    with Akidad(tmp_path, "--config", str(_config(tmp_path))) as daemon:
        model = learnable_cnn(seed=3)
        x, labels = images(5, FIT_FRAMES), np.arange(FIT_FRAMES) % 4
        with Client(daemon.socket, timeout=60) as c:  # one fit alone, for scale
            start = time.perf_counter()
            c.load(model).fit(x, labels)
            one_fit = time.perf_counter() - start
        stop = threading.Event()
        errors: list[BaseException] = []

        def learner() -> None:
            try:
                with Client(daemon.socket, name="learner", timeout=120) as lc:
                    remote = lc.load(model)
                    while not stop.is_set():
                        remote.fit(x, labels)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=learner) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(2 * one_fit)  # 6 fits in flight
        probe = images(9, 1)
        times = []
        with Client(daemon.socket, name="urgent", priority=7, timeout=30) as urgent:
            remote = urgent.load(model)
            for _ in range(10):
                start = time.perf_counter()
                remote.forward(probe)
                times.append(time.perf_counter() - start)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        p99 = float(np.percentile(times, 99))
        # a forward waits for the one fit running at most, never for the 6 queued
        assert p99 < 5 * one_fit + 1.0, f"p99 {p99 * 1e3:.0f} ms, one fit {one_fit * 1e3:.0f} ms"


def test_a_fit_past_max_fit_frames_is_refused_in_one_line(tmp_path) -> None:
    with (
        Akidad(tmp_path, "--config", str(_config(tmp_path))) as daemon,
        Client(daemon.socket, timeout=20) as c,
    ):
        remote = c.load(learnable_cnn(seed=3))
        n = FIT_FRAMES + 1
        with pytest.raises(RemoteError, match="max_fit_frames") as err:
            remote.fit(images(1, n), np.arange(n) % 4)
        assert "\n" not in str(err.value)
        assert remote.learned_state()[0]["samples"] == 0


def test_a_fit_past_its_deadline_learns_nothing(tmp_path) -> None:
    with (
        Akidad(tmp_path, "--config", str(_config(tmp_path))) as daemon,
        Client(daemon.socket, timeout=20) as c,
    ):
        remote = c.load(learnable_cnn(seed=3))
        x, labels = images(2, FIT_FRAMES), np.arange(FIT_FRAMES) % 4
        with pytest.raises(RemoteError, match="DEADLINE_EXCEEDED"):
            remote.fit(x, labels, timeout=0.002)
        time.sleep(1.0)  # the fit may still have been running: it kept nothing
        assert remote.learned_state()[0]["samples"] == 0
        remote.fit(x[:4], labels[:4])
        assert remote.learned_state()[0]["samples"] == 4


def _config(tmp_path):
    path = tmp_path / "akidad.toml"
    path.write_text(f"max_fit_frames = {FIT_FRAMES}\n")
    return path
