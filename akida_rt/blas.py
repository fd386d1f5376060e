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
def _controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def threads_for(macs: int) -> Iterator[None]:
    """BLAS limited to one thread while the block runs, if `macs` is small work."""
    controller = _controller() if macs < SINGLE_THREAD_MACS else None
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
