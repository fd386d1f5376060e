"""Added latency of akidad in its default (blocking) mode, judged against baselines
measured in the same run: the digits program at batch 1 through the daemon vs embedded.

Four measurements take turns in blocks of BLOCK calls, round by round (each leads in
turn), so a change in the host's load hits them all alike:
  daemon     `Client(path).load(model)`, then `remote.forward(x)`, one akidad with defaults;
  embedded   `model.forward(x)` of the same program mapped in-process on a simulated AKD1000;
  echo       a bare Python echo over a Unix socket (echo_floor.py): no daemon adds less;
  gRPC       a Python gRPC unary call over a Unix socket (grpc_floor.py), no model;
  model server  the echo server running the same forward before it answers: what any
             model server in its own process costs (its forward runs on the caches
             the caller's work left), so `daemon - model server` is akidad's own share.
Every timed call is followed by an untimed forward of a second model (other weights, run
by the software backend), as a caller's own work would be, so all four see the same
caches and sleep states: were it the same model, the embedded forward would always find
its own working set in the caches, and the daemon's, in another process, never. The echo and gRPC servers run in
their own processes and move as many bytes as the daemon: the input tensor plus a header
out, the output tensor plus a header back.

Added latency = median daemon round trip - median embedded forward. Targets:
  added / echo floor       <= 3.0
  added / gRPC round trip  <= 0.5
Run: .venv/bin/python benchmarks/daemon_overhead.py [--requests N]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from daemon_common import HEADER, print_table, time_calls, user_daemon
from echo_floor import echo_server
from grpc_floor import grpc_server

from akida_rt import devices
from akida_rt.client.client import Client
from akida_rt.model import zoo

BLOCK = 50  # calls per turn of a measurement
ECHO_TARGET, GRPC_TARGET = 3.0, 0.5


@dataclass
class Probe:
    """One measurement: the call it times and what it recorded, block by block."""

    name: str
    call: Callable[[], object]
    blocks: list[np.ndarray] = field(default_factory=list)

    @property
    def times(self) -> np.ndarray:
        return np.concatenate(self.blocks)

    def median(self) -> float:
        return float(np.median(self.times))

    def round_medians(self) -> np.ndarray:
        return np.array([np.median(b) for b in self.blocks])


def interleave(probes: list[Probe], between: Callable[[], object], requests: int) -> None:
    """`requests` calls of each probe in turns of BLOCK; one unrecorded round warms up."""
    for turn in range(-1, -(-requests // BLOCK)):
        k = turn % len(probes)
        for probe in probes[k:] + probes[:k]:
            times = time_calls(probe.call, between, BLOCK)
            if turn >= 0:
                probe.blocks.append(times)


def ratio_row(
    name: str, added: float, per_round: np.ndarray, base: Probe, target: float
) -> tuple[str, str]:
    ratio = added / base.median()
    lo, hi = np.percentile(per_round / base.round_medians(), [10, 90])
    verdict = "PASS" if ratio <= target else "FAIL"
    return (
        f"added / {name}",
        f"{ratio:7.2f}    target <= {target:.1f}  {verdict}   (rounds p10..p90: {lo:.2f}..{hi:.2f})",
    )


def report(
    daemon: Probe, embedded: Probe, echo: Probe, grpc_rt: Probe, server: Probe, requests: int
) -> None:
    rows = [("", " median      p90  (us)")]
    for probe in (daemon, embedded, echo, grpc_rt, server):
        t = probe.times * 1e6
        rows.append((probe.name, f"{np.median(t):7.1f}  {np.percentile(t, 90):7.1f}"))
    added = daemon.median() - embedded.median()
    per_round = daemon.round_medians() - embedded.round_medians()
    rows += [
        ("added (median daemon - median embedded)", f"{added * 1e6:7.1f}"),
        ratio_row("echo floor", added, per_round, echo, ECHO_TARGET),
        ratio_row("gRPC round trip", added, per_round, grpc_rt, GRPC_TARGET),
        ("model server - embedded (any separate process)",
         f"{(server.median() - embedded.median()) * 1e6:7.1f}"),
        ("daemon - model server (akidad's own share)",
         f"{(daemon.median() - server.median()) * 1e6:7.1f}"),
    ]  # fmt: skip
    print_table(
        f"daemon overhead: digits_cnn, batch 1, blocking mode, {requests} interleaved calls each",
        rows,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=4000, help="calls per measurement")
    args = p.parse_args()
    requests = max(BLOCK, args.requests - args.requests % BLOCK)
    model = zoo.digits_cnn(seed=0)
    embedded = zoo.digits_cnn(seed=0)
    embedded.map(devices()[0])
    x = np.random.default_rng(0).integers(0, 256, (1, *model.input_shape), dtype=np.uint8)
    y = embedded.forward(x)
    sizes = (x.nbytes + HEADER, y.nbytes + HEADER)
    with contextlib.ExitStack() as stack:
        # Every server process starts before the gRPC channel exists (grpc and fork).
        sock = stack.enter_context(user_daemon())
        echo_call = stack.enter_context(echo_server(*sizes))
        server_call = stack.enter_context(echo_server(*sizes, forward=True))
        grpc_call = stack.enter_context(grpc_server(*sizes))
        client = stack.enter_context(Client(sock, timeout=10.0))
        remote = client.load(model)
        assert np.array_equal(remote.forward(x), y), "the daemon and embedded answers differ"
        probes = [
            Probe("daemon round trip", lambda: remote.forward(x)),
            Probe("embedded forward", lambda: embedded.forward(x)),
            Probe("echo floor (bare Unix socket)", echo_call),
            Probe("gRPC unary round trip (unix:)", grpc_call),
            Probe("bare model server (echo + forward)", server_call),
        ]
        other = zoo.digits_cnn(seed=1)  # the caller's own work between calls
        interleave(probes, lambda: other.forward(x), requests)
    report(*probes, requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
