"""BLAS threading: one thread for small work, restored after it (a library) or held
between calls (a process that owns BLAS, like akidad)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from akida_rt import blas


def blas_threads() -> set[int]:
    """Threads of the BLAS libraries akida_rt limits: those loaded when it first looked
    (numpy's, which the engine uses). A BLAS another package loads later in the same
    process (the test session imports many) is not the engine's, and is left alone."""
    libs = blas._controller().info()
    return {lib["num_threads"] for lib in libs if lib["user_api"] == "blas"}


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    monkeypatch.setattr(blas, "no_idle_core", lambda: False)  # the machine's load aside
    before = blas_threads()
    if before == {1}:
        pytest.skip("BLAS runs one thread here already; nothing to limit")
    yield before
    blas._owned = False
    blas._hold(blas._controller(), False)
    assert blas_threads() == before


def test_a_library_limits_small_work_and_restores_after(restored: set[int]) -> None:
    with blas.threads_for(1000):
        assert blas_threads() == {1}
        a = np.ones((64, 64))
        assert (a @ a)[0, 0] == 64
    assert blas_threads() == restored
    with blas.threads_for(blas.SINGLE_THREAD_MACS):
        assert blas_threads() == restored


def test_an_owned_process_holds_one_thread_until_big_work(restored: set[int]) -> None:
    blas.own_process()
    with blas.threads_for(1000):
        assert blas_threads() == {1}
    assert blas_threads() == {1} and blas.single_threaded()  # held between calls
    with blas.threads_for(10):
        assert blas_threads() == {1}
    with blas.threads_for(blas.SINGLE_THREAD_MACS):  # big work gets the threads back
        assert blas_threads() == restored
    assert not blas.single_threaded()
    with blas.threads_for(1000):
        assert blas_threads() == {1}


def test_big_work_runs_on_one_thread_when_no_core_is_idle(
    restored: set[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blas, "no_idle_core", lambda: True)
    with blas.threads_for(blas.SINGLE_THREAD_MACS * 10):
        assert blas_threads() == {1}
    assert blas_threads() == restored


@pytest.mark.parametrize(("running", "busy"), [(1, False), (2, True), (9, True)])
def test_no_idle_core_reads_the_runnable_count(tmp_path, monkeypatch, running, busy) -> None:
    monkeypatch.setattr(blas, "_CPUS", 2)
    path = tmp_path / "loadavg"
    path.write_text(f"0.50 0.40 0.30 {running}/512 1234\n")
    monkeypatch.setattr(blas, "LOADAVG", str(path))
    assert blas.no_idle_core() is busy
    monkeypatch.setattr(blas, "LOADAVG", str(tmp_path / "absent"))
    assert blas.no_idle_core() is False
