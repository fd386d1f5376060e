"""Co-location (`akidad --cpu N`, `Client.colocate()`, daemon/affinity.py): a real akidad
pins its event loop and says so in its hello, a client thread pins itself beside it and
gets bit-exact answers, and what cannot be pinned is refused with the reason.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from akida_rt.daemon import affinity

from akida_rt import zoo
from akida_rt.client import Client
from akida_rt.errors import DaemonError
from tests.daemon_harness import Akidad, random_input

ALLOWED = sorted(os.sched_getaffinity(0))
LOOP_CPU = ALLOWED[-1]


def in_thread(fn: Any) -> Any:
    """Run fn in a fresh thread (pinning it leaves the test's own thread alone)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(_outcome(fn)))
    thread.start()
    thread.join(60)
    value = out[0]
    if isinstance(value, BaseException):
        raise value
    return value


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except BaseException as exc:
        return exc


def test_the_loop_thread_is_pinned_and_threads_it_starts_get_every_cpu_back(monkeypatch) -> None:
    monkeypatch.setattr(affinity, "_allowed", frozenset())
    monkeypatch.setattr(affinity, "_loop", frozenset())
    assert affinity.loop_cpus() == []

    def loop_thread() -> tuple[set[int], list[set[int]]]:
        affinity.pin_loop(LOOP_CPU)
        worker: list[set[int]] = []  # its CPUs when started, then after unpin_thread()

        def start_worker() -> None:
            worker.append(os.sched_getaffinity(0))
            affinity.unpin_thread()
            worker.append(os.sched_getaffinity(0))

        w = threading.Thread(target=start_worker)
        w.start()
        w.join()
        return os.sched_getaffinity(0), worker

    loop, (inherited, unpinned) = in_thread(loop_thread)
    assert loop == inherited == {LOOP_CPU}
    assert unpinned == set(ALLOWED)
    assert affinity.loop_cpus() == [LOOP_CPU]


def test_a_cpu_the_process_may_not_use_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setattr(affinity, "_loop", frozenset())
    with pytest.raises(DaemonError, match=rf"loop_cpu {max(ALLOWED) + 1} is not one of"):
        affinity.pin_loop(max(ALLOWED) + 1)
    assert affinity.loop_cpus() == []


def test_colocated_client_shares_the_loop_cpu_and_answers_are_exact(tmp_path: Path) -> None:
    model = zoo.digits_cnn(seed=3)
    x = random_input(model, 4, seed=1)
    expected = model.forward(x)
    with Akidad(tmp_path, "--cpu", str(LOOP_CPU)) as d, Client(d.socket, retry_s=0) as client:
        assert list(client.hello.loop_cpus) == [LOOP_CPU]
        assert os.sched_getaffinity(client.hello.pid) == {LOOP_CPU}  # its main thread
        remote = client.load(model)

        def colocated() -> tuple[set[int], set[int], list[np.ndarray]]:
            pinned = client.colocate()
            return pinned, os.sched_getaffinity(0), [remote.forward(x[i : i + 1]) for i in range(4)]

        pinned, now, ys = in_thread(colocated)
        assert pinned == now == {LOOP_CPU}
        assert np.array_equal(np.concatenate(ys), expected)
        assert os.sched_getaffinity(0) == set(ALLOWED)  # the test's thread was not touched
        assert d.stop() == 0


def test_colocate_without_a_pinned_daemon_says_how_to_pin_it(tmp_path: Path) -> None:
    with Akidad(tmp_path) as d, Client(d.socket, retry_s=0) as client:
        assert list(client.hello.loop_cpus) == []
        with pytest.raises(DaemonError, match=r"start it with --cpu N"):
            client.colocate()
        assert os.sched_getaffinity(0) == set(ALLOWED)


@pytest.mark.parametrize("cpu", [max(ALLOWED) + 1, -2])
def test_daemon_refuses_a_loop_cpu_it_cannot_use(tmp_path: Path, cpu: int) -> None:
    d = Akidad(tmp_path, "--cpu", str(cpu))
    assert d.start_outcome() not in (None, 0)
    assert "loop_cpu" in d.log()
