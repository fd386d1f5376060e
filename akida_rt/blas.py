"""BLAS threading for small work: one thread where a second would only add hand-off cost.

OpenBLAS splits even small products across its threads; when the other core is busy,
each split waits for a thread that cannot run, and a 1 ms batch-1 forward can take 20 ms.
Work below SINGLE_THREAD_MACS runs with BLAS limited to one thread (threadpoolctl), and
so does larger work when the machine has no idle core right now (the kernel's count of
runnable threads, /proc/loadavg, is at least the CPU count): with the other core busy, two
BLAS threads ran the digits CNN at batch 100 0.4-0.5x as fast as one
(benchmarks/vs_metatf.py --busy).

In a library the limit must be undone after each call: the host application's own numpy
keeps its threads. Setting and restoring costs 18 us warm and 30 us on the cold caches a
forward leaves, so a process that only runs models (akidad) calls `own_process()`: the
limit then changes only when the size of the work crosses the threshold.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

SINGLE_THREAD_MACS = 50_000_000
_CPUS = os.cpu_count() or 1
LOADAVG = "/proc/loadavg"  # field 4: runnable/total scheduling entities, right now

_owned = False  # own_process() was called
_held: Any = None  # in an owned process: the limiter holding BLAS at one thread
_lock = threading.Lock()


@functools.cache
def _controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return None
    return ThreadpoolController()


def own_process() -> None:
    """This process runs only models: keep the thread limit between calls."""
    global _owned
    _owned = True


def single_threaded() -> bool:
    """Whether BLAS is held at one thread between calls (an owned process)."""
    return _held is not None


def no_idle_core() -> bool:
    """Whether as many threads are runnable right now (this one included) as there are
    CPUs: a second BLAS thread would then wait for a core (~10 us to read)."""
    if _CPUS < 2:
        return True
    try:
        with open(LOADAVG, "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return running >= _CPUS


@contextlib.contextmanager
def threads_for(macs: int) -> Iterator[None]:
    """BLAS limited to one thread while the block runs, if `macs` is small work or no
    core is idle."""
    controller = _controller()
    if controller is None:
        yield
        return
    one = macs < SINGLE_THREAD_MACS or no_idle_core()
    if _owned:
        if one is (_held is None):  # the limit must change
            _hold(controller, one)
        yield
        return
    if not one:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def _hold(controller: Any, one: bool) -> None:
    global _held
    with _lock:  # device workers run models side by side
        if one and _held is None:
            _held = controller.limit(limits=1, user_api="blas")
        elif not one and _held is not None:
            _held.restore_original_limits()
            _held = None
