"""Chain-loading through akidad: the zoo's MNIST CNN, which BrainChip's compiler maps on
AKD1000 as two hardware sequences (two program binaries) around a software one, on the
simulated AKD1000; throughput at batch 64 vs batch 1. Target: >= 10x, from sequence
batching (each sequence runs over the whole batch before the next is loaded) and the
residency cache (a program already on the chip is not loaded again).

Run: .venv/bin/python benchmarks/daemon_chainload.py [--seconds S] [--rounds N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from daemon_common import print_table, user_daemon

from akida_rt.client.client import Client
from akida_rt.model import zoo
from akida_rt.model.model import Model

DEVICE = "sim://akd1000/0"


def chain_model() -> Model:
    return zoo.mnist_cnn(seed=0)


class Meter:
    """Frames, wall seconds and the driver's counters summed over the rounds of one case."""

    def __init__(self, frames: int) -> None:
        self.frames, self.done, self.wall, self.clocks = frames, 0, 0.0, 0
        self.reloads, self.nbytes, self.clock_hz = 0, 0, 1.0
        self.rounds: list[float] = []  # frames/s of each round

    def run(self, client: Client, call, seconds: float) -> None:
        before = client.stats()["devices"][0]["driver"]
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            call()
            done += self.frames
        elapsed = time.perf_counter() - start
        after = client.stats()["devices"][0]["driver"]
        self.done += done
        self.wall += elapsed
        self.rounds.append(done / elapsed)
        self.reloads += after["reloads"] - before["reloads"]
        self.nbytes += after["bytes_programmed"] - before["bytes_programmed"]
        self.clocks += (after["inference_clk"] + after["program_clk"]) - (
            before["inference_clk"] + before["program_clk"]
        )
        self.clock_hz = after["clock_hz"]

    def row(self) -> str:
        device_fps = self.done * self.clock_hz / self.clocks if self.clocks else 0.0
        return (f"{self.done / self.wall:9.1f} frames/s wall  {device_fps:9.1f} frames/s "
                f"device clock  {self.reloads / self.done:6.3f} reloads/frame  "
                f"{self.nbytes / self.done / 1e3:7.1f} kB programmed/frame")  # fmt: skip


def ratios(a: Meter, b: Meter) -> str:
    """Round-by-round ratios a/b: min, median, max (the rounds ran interleaved)."""
    r = sorted(x / y for x, y in zip(a.rounds, b.rounds, strict=True))
    return f"{r[0]:6.1f}x min  {r[len(r) // 2]:6.1f}x median  {r[-1]:6.1f}x max"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=1.0, help="per case and round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    model = chain_model()
    rng = np.random.default_rng(0)
    x1 = rng.integers(0, 256, (1, *model.input_shape), dtype=np.uint8)
    x64 = rng.integers(0, 256, (64, *model.input_shape), dtype=np.uint8)
    b1, b64, piped = Meter(1), Meter(64), Meter(64)
    with user_daemon("--device", DEVICE) as sock, Client(sock, name="chain") as client:
        remote = client.load(model)
        assert remote.sequences == 3, remote.sequences  # HW, SW, HW: two program binaries
        assert np.array_equal(remote.forward(x64), model.forward(x64))
        for _ in range(args.rounds):  # interleaved: the machine's noise hits every case
            b1.run(client, lambda: remote.forward(x1), args.seconds)
            b64.run(client, lambda: remote.forward(x64), args.seconds)
            piped.run(client, lambda: remote.forward_many([x1] * 64), args.seconds)
    rows = [("batch 1", b1.row()), ("batch 64 (one request)", b64.row()),
            ("64 pipelined batch-1 requests", piped.row()),
            ("batch 64 / batch 1 (wall clock)", ratios(b64, b1)),
            ("pipelined 64 / batch 1 (wall clock)", ratios(piped, b1))]  # fmt: skip
    worst = min(x / y for x, y in zip(b64.rounds, b1.rounds, strict=True))
    rows.append(("target", ">= 10x (wall clock, worst round): "
                 + ("met" if worst >= 10 else "NOT met")))  # fmt: skip
    print_table(
        "daemon chain-loading: MNIST CNN (2 program binaries + a software step) on the "
        f"simulated AKD1000, {args.rounds} interleaved rounds",
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
