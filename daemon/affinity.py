"""Pinning akidad's event loop to one CPU, so a latency-critical client can share it.

A lone request runs on the event-loop thread (docs/daemon.md, "Lone requests"). When the
client that sent it and that thread run on different CPUs, each round trip wakes an idle
CPU twice, and on a VM every such wake-up goes through the host. When both are pinned to
the same CPU, the client's send hands the CPU straight to the daemon and the answer hands
it back: no idle CPU is woken. A client that waits for its answer loses nothing by
sharing the CPU (`Client.colocate()`).

Only the loop thread is pinned. Device workers (batches, long runs) get back every CPU
the process may use, so throughput work is not confined to the loop's CPU.
"""

from __future__ import annotations

import os

from akida_rt.errors import DaemonError

_allowed: frozenset[int] = frozenset()  # the process's CPUs before the loop was pinned
_loop: frozenset[int] = frozenset()  # the loop thread's CPUs when pinned, else empty


def pin_loop(cpu: int) -> None:
    """Pin the calling thread (the one that will run the event loop) to `cpu`."""
    global _allowed, _loop
    allowed = frozenset(os.sched_getaffinity(0))
    if cpu not in allowed:
        raise DaemonError(
            f"loop_cpu {cpu} is not one of the CPUs akidad may run on: "
            f"{', '.join(map(str, sorted(allowed)))}"
        )
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        raise DaemonError(f"cannot pin the event loop to CPU {cpu}: {exc.strerror}") from None
    _allowed, _loop = allowed, frozenset({cpu})


def loop_cpus() -> list[int]:
    """The CPUs the event loop is pinned to; empty when it is not pinned."""
    return sorted(_loop)


def unpin_thread() -> None:
    """Give the calling thread (a device worker) every CPU the process may use."""
    if _loop:
        os.sched_setaffinity(0, _allowed)
