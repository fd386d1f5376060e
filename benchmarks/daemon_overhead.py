"""Added latency of akidad: the digits program at batch 1 through the daemon vs embedded
(the same program mapped in-process on a simulated AKD1000). Target: median added <= 100 us.

Three modes, each against its own daemon:
  blocking    the defaults: daemon and client sleep until their socket is readable;
  co-located  the defaults, with akidad's event loop pinned to one CPU (`akidad --cpu N`)
              and the calling thread pinned beside it (`Client.colocate()`);
  busy-poll   the low-latency mode: `akidad --busy-poll-us 5000` and
              `Client(busy_poll_us=5000)` poll their sockets instead of sleeping.
Calls alternate (daemon, embedded, daemon, ...) so machine noise hits both alike, and the
modes take turns in blocks of BLOCK pairs, so a change in the host's load hits every mode
alike too. The floor row is a bare Python echo over a Unix socket in the same pattern
(echo_floor.py): no daemon can add less than it.
Run: .venv/bin/python benchmarks/daemon_overhead.py [--requests N] [--poll-us US]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass, field

import numpy as np
from daemon_common import print_table, user_daemon
from echo_floor import floor_us

from akida_rt import devices, zoo
from akida_rt.client import Client, RemoteModel

BLOCK = 50  # pairs per turn of a mode
EVERYWHERE = frozenset(os.sched_getaffinity(0))


@dataclass
class Mode:
    name: str
    poll_us: int = 0
    cpu: int = -1  # co-located on this CPU
    client: Client | None = None
    remote: RemoteModel | None = None
    daemon: list[float] = field(default_factory=list)
    embedded: list[float] = field(default_factory=list)
    run: list[float] = field(default_factory=list)

    def daemon_args(self) -> tuple[str, ...]:
        poll = ("--busy-poll-us", str(self.poll_us)) if self.poll_us else ()
        return poll + (("--cpu", str(self.cpu)) if self.cpu >= 0 else ())

    def enter(self) -> RemoteModel:
        """Pin this thread for the mode (its embedded forwards too), or unpin it."""
        assert self.client is not None and self.remote is not None
        if self.cpu >= 0:
            self.client.colocate()
        else:
            os.sched_setaffinity(0, EVERYWHERE)
        return self.remote

    def rows(self, floor: float) -> list[tuple[str, str]]:
        d, e, run = np.array(self.daemon), np.array(self.embedded), np.array(self.run)
        added = (np.median(d) - np.median(e)) * 1e6
        m = self.name
        return [
            (f"{m}: embedded / daemon median", f"{np.median(e) * 1e6:7.1f} / {np.median(d) * 1e6:.1f} us"),
            (f"{m}: added (median daemon - median embedded)", f"{added:7.1f} us"),
            (f"{m}: added, median of the paired differences", f"{np.median(d - e) * 1e6:7.1f} us"),
            (f"{m}: round trip outside the daemon's forward", f"{np.median(d - run) * 1e6:7.1f} us"),
            (f"{m}: floor, bare Python echo on this machine", f"{floor:7.1f} us"),
            (f"{m}: target median added <= 100 us", "met" if added <= 100 else "NOT met"),
        ]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1000, help="pairs per mode")
    p.add_argument("--poll-us", type=int, default=5000, help="busy-poll budget of that mode")
    args = p.parse_args()
    modes = [
        Mode("blocking"),
        Mode("co-located", cpu=max(EVERYWHERE)),
        Mode("busy-poll", args.poll_us),
    ]
    model = zoo.digits_cnn(seed=0)
    embedded = zoo.digits_cnn(seed=0)
    embedded.map(devices()[0])
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 1), dtype=np.uint8)
    clock = time.perf_counter
    with contextlib.ExitStack() as stack:
        for mode in modes:
            sock = stack.enter_context(user_daemon(*mode.daemon_args()))
            mode.client = stack.enter_context(Client(sock, busy_poll_us=mode.poll_us))
            mode.remote = mode.client.load(model)
            assert np.array_equal(mode.remote.forward(x), embedded.forward(x))
        stack.callback(os.sched_setaffinity, 0, EVERYWHERE)
        for turn in range(-1, -(-args.requests // BLOCK)):  # turn -1 warms up, unrecorded
            for mode in modes[turn % 3 :] + modes[: turn % 3]:  # each mode leads in turn
                remote = mode.enter()
                for _ in range(BLOCK):
                    t0 = clock()
                    remote.forward(x)
                    t1 = clock()
                    embedded.forward(x)
                    if turn >= 0:
                        mode.embedded.append(clock() - t1)
                        mode.daemon.append(t1 - t0)
                        mode.run.append(remote.last_run_s)
                if mode.poll_us:
                    time.sleep(2 * mode.poll_us / 1e6)  # its daemon stops spinning first
        rows = []
        for mode in modes:
            mode.enter()
            rows += mode.rows(
                floor_us(mode.poll_us > 0, args.requests, lambda: embedded.forward(x))
            )
    print_table(
        f"daemon overhead: digits_cnn, batch 1, {args.requests} interleaved pairs per mode", rows
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
