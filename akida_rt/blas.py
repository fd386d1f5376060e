"""BLAS threading for small work: one thread where a second would only add hand-off cost.

OpenBLAS splits even small products across its threads; when the other core is busy,
each split waits for a thread that cannot run, and a 1 ms batch-1 forward can take 20 ms.
Work below SINGLE_THREAD_MACS runs with BLAS limited to one thread (threadpoolctl).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

SINGLE_THREAD_MACS = 50_000_000


@functools.cache
def _blas_libs() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries loaded (numpy's OpenBLAS)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return ()
    return tuple(lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas")


@contextlib.contextmanager
def threads_for(macs: int) -> Iterator[None]:
    """BLAS limited to one thread while the block runs, if `macs` is small work.

    Reads and sets the thread count through the libraries' own calls (about 1 us)
    instead of `threadpoolctl.threadpool_limits`, which re-inspects every loaded
    library on entry and exit (about 15 us, per forward)."""
    if macs >= SINGLE_THREAD_MACS:
        yield
        return
    changed = [(lib, n) for lib in _blas_libs() if (n := lib.get_num_threads()) != 1]
    for lib, _ in changed:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)
