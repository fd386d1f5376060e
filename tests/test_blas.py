"""Engine threading: BLAS at one thread inside a run, restored after it, also when threads
running models side by side enter and leave in any order; big work on a spare core."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from akida_rt.engine import blas


@pytest.fixture
def restored() -> Iterator[set[int]]:
    before = blas.threads()
    if before == {1}:
        pytest.skip("BLAS runs one thread here already; nothing to limit")
    yield before
    assert blas.threads() == before


def test_a_run_holds_blas_at_one_thread_and_the_threads_come_back(restored: set[int]) -> None:
    with blas.one_thread():
        assert blas.threads() == {1}
        a = np.ones((64, 64))
        assert (a @ a)[0, 0] == 64
    assert blas.threads() == restored


def test_only_big_work_with_an_idle_core_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas, "no_idle_core", lambda: False)
    assert blas.spare_core(blas.SPLIT_MACS) and not blas.spare_core(blas.SPLIT_MACS - 1)
    monkeypatch.setattr(blas, "no_idle_core", lambda: True)
    assert not blas.spare_core(blas.SPLIT_MACS * 10)


def test_threads_side_by_side_restore_when_the_last_leaves(restored: set[int]) -> None:
    """The first thread in limits, a second leaves after it, and the last one out (not the
    one that set the limit) restores: the daemon's device workers run models like this."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[set[int]] = []

    def first() -> None:
        with blas.one_thread():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with blas.one_thread():
            second_in.set()
            first_out.wait(5)
            seen.append(blas.threads())  # the first has left; this one still runs

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    assert seen == [{1}]
    assert blas.threads() == restored


def _proc(tmp_path: Path, running: int, states: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"0.50 0.40 0.30 {running}/512 1234\n")
    tasks = tmp_path / "task"
    for tid, state in enumerate(states, start=100):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (py (x) y) {state} 1 2 3\n")
    monkeypatch.setattr(blas, "LOADAVG", str(loadavg))
    monkeypatch.setattr(blas, "TASKS", str(tasks))
    monkeypatch.setattr(blas, "_CPUS", 2)


@pytest.mark.parametrize(
    ("running", "states", "busy"),
    [
        (1, "RS", False),  # only this thread runs
        (2, "RR", False),  # this thread and an idle OpenBLAS worker spinning
        (2, "RS", True),  # another process runs on the other core
        (9, "RRS", True),
    ],
)
def test_no_idle_core_counts_other_processes_runnable_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, running: int, states: str, busy: bool
) -> None:
    _proc(tmp_path, running, states, monkeypatch)
    assert blas.no_idle_core() is busy


def test_no_idle_core_is_false_without_proc(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(blas, "_CPUS", 2)
    monkeypatch.setattr(blas, "LOADAVG", str(tmp_path / "absent"))
    assert blas.no_idle_core() is False
