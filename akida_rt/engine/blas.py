"""Engine threading: BLAS at one thread inside every run; a spare core takes half a batch.

OpenBLAS splits even small products across its threads; when the other core is busy,
each split waits for a thread that cannot run, and a 1 ms batch-1 forward can take 20 ms.
So the engine always runs with BLAS limited to one thread (`one_thread`). Big work
(SPLIT_MACS and up) on a machine with an idle core is split by the engine instead: half
of the batch runs on a helper thread, so im2col, activations and pooling run on both
cores too, not only the products (digits CNN at batch 100: 1.67x one thread, against
1.31x for two BLAS threads, in one run). A core is idle when other processes' runnable
threads (/proc/loadavg less this process's own, an idle OpenBLAS worker spinning
runnable) leave one free; with the other core busy, two threads ran the digits CNN at
batch 100 at 0.4-0.5x the speed of one (benchmarks/vs_metatf.py --busy).

In a library the limit must be undone after each call: the host application's own numpy
keeps its threads. It is set and restored through the BLAS library's own
set/get_num_threads (threadpoolctl finds them once), about 2 us a call; threads that run
models side by side (akidad's device workers) share one limit, counted, so the last one
out restores the threads the first one in found.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

SPLIT_MACS = 50_000_000  # a run this big on a spare core pays for the hand-off
_CPUS = os.cpu_count() or 1
LOADAVG = "/proc/loadavg"  # field 4: runnable/total scheduling entities, right now
TASKS = "/proc/self/task"

_lock = threading.Lock()
_limited = 0  # blocks running now with BLAS limited to one thread
_saved: list[tuple[Any, int]] = []  # (setter, threads) of each library, found by the first


@functools.cache
def _libraries() -> tuple[tuple[Any, Any], ...]:
    """(library, its thread setter) of each BLAS loaded when akida_rt first looked
    (numpy's, which the engine uses); one another package loads later is not the
    engine's and is left alone.

    threadpoolctl >= 3.5 lets only the first thread that set OpenBLAS's threads set them
    again (others are ignored, silently); akidad's device workers each run models, so the
    library's own setter is called, under this module's lock."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return ()
    libs = ThreadpoolController().lib_controllers
    return tuple(
        (lib, getattr(lib, "_real_set_num_threads", lib.set_num_threads))
        for lib in libs
        if lib.user_api == "blas"
    )


def _own_runnable() -> int:
    """This process's threads runnable right now (an idle OpenBLAS worker spins runnable)."""
    count = 0
    try:
        for tid in os.listdir(TASKS):
            with open(f"{TASKS}/{tid}/stat", "rb") as f:
                stat = f.read()
            count += stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R"
    except (OSError, ValueError):  # a thread ended while we looked: count what we saw
        pass
    return max(count, 1)  # this thread runs


def no_idle_core() -> bool:
    """Whether other processes' runnable threads leave no CPU idle besides the one this
    thread runs on: a second thread would then wait for a core."""
    if _CPUS < 2:
        return True
    try:
        with open(LOADAVG, "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    others = running - _own_runnable()
    return others >= _CPUS - 1


def spare_core(macs: int) -> bool:
    """Whether `macs` of work is worth splitting and another core is idle right now."""
    return macs >= SPLIT_MACS and not no_idle_core()


class _OneThread:
    """The block runs with BLAS limited to one thread, counted across threads. A class,
    not a generator: it wraps every run, and contextlib's generator costs 3 us more."""

    def __enter__(self) -> None:
        global _limited
        libs = _libraries()
        with _lock:
            if _limited == 0:
                _saved[:] = [(setter, lib.num_threads) for lib, setter in libs]
                for setter, _ in _saved:
                    setter(1)
            _limited += 1

    def __exit__(self, *exc: object) -> None:
        global _limited
        with _lock:
            _limited -= 1
            if _limited == 0:
                for setter, threads in _saved:
                    setter(threads)


_ONE_THREAD = _OneThread()


def one_thread() -> _OneThread:
    """`with one_thread():` runs the block with BLAS limited to one thread."""
    return _ONE_THREAD


def threads() -> set[int]:
    """The thread counts the engine's BLAS libraries use now."""
    return {lib.num_threads for lib, _ in _libraries()}
