"""Chain-loading through akidad: the zoo's MNIST CNN, which BrainChip's compiler maps on
AKD1000 as two hardware sequences (two program binaries) around a software one, on the
simulated AKD1000; throughput at batch 64 vs batch 1. Target: >= 10x, from sequence
batching (each sequence runs over the whole batch before the next is loaded) and the
residency cache (a program already on the chip is not loaded again).

Run: .venv/bin/python benchmarks/daemon_chainload.py [--seconds S]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from daemon_common import print_table, user_daemon

from akida_rt.client.client import Client, RemoteModel
from akida_rt.model import zoo
from akida_rt.model.model import Model

DEVICE = "sim://akd1000/0"


def chain_model() -> Model:
    return zoo.mnist_cnn(seed=0)


def measure(client: Client, remote: RemoteModel, call, frames: int, seconds: float) -> tuple:
    before = client.stats()["devices"][0]["driver"]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        done += frames
    elapsed = time.perf_counter() - start
    after = client.stats()["devices"][0]["driver"]
    reloads = after["reloads"] - before["reloads"]
    clocks = (after["inference_clk"] + after["program_clk"]) - (
        before["inference_clk"] + before["program_clk"]
    )
    device_fps = done * after["clock_hz"] / clocks if clocks else 0.0
    nbytes = after["bytes_programmed"] - before["bytes_programmed"]
    return done / elapsed, reloads, nbytes, done, device_fps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args()
    model = chain_model()
    rng = np.random.default_rng(0)
    x1 = rng.integers(0, 256, (1, *model.input_shape), dtype=np.uint8)
    x64 = rng.integers(0, 256, (64, *model.input_shape), dtype=np.uint8)
    with user_daemon("--device", DEVICE) as sock, Client(sock, name="chain") as client:
        remote = client.load(model)
        assert remote.sequences == 3, remote.sequences  # HW, SW, HW: two program binaries
        assert np.array_equal(remote.forward(x64), model.forward(x64))
        rows = []
        b1 = measure(client, remote, lambda: remote.forward(x1), 1, args.seconds)
        b64 = measure(client, remote, lambda: remote.forward(x64), 64, args.seconds)
        piped = measure(client, remote, lambda: remote.forward_many([x1] * 64), 64, args.seconds)
        for name, (fps, reloads, nbytes, frames, dev_fps) in (
            ("batch 1", b1), ("batch 64 (one request)", b64),
            ("64 pipelined batch-1 requests", piped),
        ):  # fmt: skip
            rows.append((name, f"{fps:9.1f} frames/s wall  {dev_fps:9.1f} frames/s device clock  "
                               f"{reloads / frames:6.3f} reloads/frame  "
                               f"{nbytes / frames / 1e3:7.1f} kB programmed/frame"))  # fmt: skip
    ratio, ratio_piped = b64[0] / b1[0], piped[0] / b1[0]
    dev_ratio = b64[4] / b1[4] if b1[4] else 0.0
    rows += [
        ("batch 64 / batch 1 (wall clock)", f"{ratio:9.1f}x"),
        ("pipelined 64 / batch 1 (wall clock)", f"{ratio_piped:9.1f}x"),
        ("batch 64 / batch 1 (device clock)", f"{dev_ratio:9.1f}x"),
        ("target", ">= 10x (wall clock): " + ("met" if ratio >= 10 else "NOT met")),
    ]
    print_table(
        "daemon chain-loading: MNIST CNN (2 program binaries + a software step) on the "
        "simulated AKD1000",
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
