"""Streams through akidad against the embedded path, back-pressure, and shared memory
against socket copies, measured in one run (a user-mode akidad started here).

1. End to end: the digits program on frames of the digits test set, `Stream` through
   akidad (window 8) against `Stream` embedded (the simulated AKD1000 in this process),
   taking turns round by round. Target: daemon throughput >= 0.9x embedded.
2. Back-pressure: a source with no pacing (faster than the device) into a window of 2,
   queue 1. DROP_OLDEST: p99 latency <= 3x the single-frame latency (one frame through
   an idle pipeline), and how many frames it dropped; BLOCK: no frame lost.
3. Shared memory: 224x224x3 uint8 frames (147 KiB) through `RemoteModel.forward`, in a
   sealed memfd (the client's default from 64 KiB) against inline in the socket
   (the same client with its threshold raised), taking turns.

Run: .venv/bin/python benchmarks/stream_daemon.py [--frames N] [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akida_rt.client.client import Client
from akida_rt.data import sample_program
from akida_rt.format.layer_kinds import FullyConnected, InputConv2D
from akida_rt.format.layer_params import Pooling
from akida_rt.model import zoo
from akida_rt.model.model import Model
from akida_rt.stream.pipeline import Policy, Stream
from akida_rt.stream.runners import connect
from akida_rt.stream.sources import array_frames
from tests.daemon_harness import Akidad, random_input


def digits_frames(n: int) -> np.ndarray:
    try:
        from akida_rt.tools.datasets import load_digits_32

        x = load_digits_32().x_test
    except ImportError:
        x = random_input(Model(sample_program()), n, seed=0)
    return np.concatenate([x] * (n // len(x) + 1))[:n]


def throughput(runner, frames: np.ndarray, window: int) -> tuple[float, list[float]]:
    stream = Stream(runner, array_frames(frames), window=window, queue=window)
    start = time.perf_counter()
    got = list(stream)
    assert len(got) == len(frames)
    return len(frames) / (time.perf_counter() - start), list(stream.stats.latencies)


def end_to_end(daemon: Akidad, n: int, rounds: int) -> bool:
    frames = digits_frames(n)
    remote = connect(sample_program(), socket=daemon.socket)
    local = connect(sample_program(), embedded=True)
    fps: dict[str, list[float]] = {"daemon": [], "embedded": []}
    lat: dict[str, list[float]] = {"daemon": [], "embedded": []}
    for r in range(rounds):
        order = [("daemon", remote, 8), ("embedded", local, 1)]
        for name, runner, window in order if r % 2 == 0 else order[::-1]:
            f, latencies = throughput(runner, frames, window)
            fps[name].append(f)
            lat[name] += latencies
    remote.close()
    local.close()
    d, e = float(np.median(fps["daemon"])), float(np.median(fps["embedded"]))
    print(f"1. End to end, digits program, {n} frames x {rounds} rounds (median fps)")
    for name, value in (("daemon (window 8)", d), ("embedded", e)):
        key = name.split()[0]
        print(f"   {name:<18} {value:8.0f} fps   latency median "
              f"{np.median(lat[key]) * 1e3:6.2f} ms  p99 {np.percentile(lat[key], 99) * 1e3:6.2f} ms")  # fmt: skip
    print(f"   daemon / embedded throughput: {d / e:.2f}x (target >= 0.90)")
    return d / e >= 0.9


def paced(frames: np.ndarray, fps: float):
    """The frames as a live source would deliver them: one every 1/fps s."""
    start = time.perf_counter()
    for k, frame in enumerate(array_frames(frames)):
        wait = start + k / fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)  # sleeping lets the stream's own thread run (the GIL)
        yield frame


def back_pressure(daemon: Akidad, n: int) -> bool:
    frames = digits_frames(n)
    runner = connect(sample_program(), socket=daemon.socket)
    single = []
    for x in frames[:200]:  # one frame at a time through an idle pipeline
        t0 = time.perf_counter()
        runner.submit(x[None])
        while not runner.collect(None):
            pass
        single.append(time.perf_counter() - t0)
    one = float(np.median(single))
    rate = 2 / one  # twice what the device serves one frame at a time
    print(f"\n2. Back-pressure: a source of {n} frames at {rate:.0f} fps (2x the device's "
          f"one-at-a-time rate), window 1, queue 1; single-frame latency {one * 1e3:.2f} ms")  # fmt: skip
    ok = True
    for policy in (Policy.DROP_OLDEST, Policy.DROP_NEWEST, Policy.BLOCK):
        stream = Stream(runner, paced(frames, rate), window=1, queue=1, policy=policy)
        got = list(stream)
        p99 = stream.stats.latency_ms(99) / 1e3
        lost = n - len(got)
        print(f"   {policy.value:<12} done {len(got):5d}  dropped {stream.stats.dropped:5d}  "
              f"p50 {stream.stats.latency_ms(50):6.2f} ms  p99 {p99 * 1e3:6.2f} ms "
              f"({p99 / one:4.1f}x single)")  # fmt: skip
        if policy is Policy.DROP_OLDEST:
            ok &= p99 <= 3 * one and stream.stats.dropped == lost
        if policy is Policy.BLOCK:
            ok &= lost == 0
    runner.close()
    return ok


def big_model() -> Model:
    model = Model(name="rgb224")
    model.add(InputConv2D("conv", (224, 224, 3), 2, 3, stride=2, pooling=Pooling.Max,
                          pool_size=4, pool_stride=4, weight_bits=8, activation_bits=4))  # fmt: skip
    model.add(FullyConnected("fc", 3, weight_bits=4, activation=False))
    return zoo.randomize(model, 5)


def shared_memory(daemon: Akidad, calls: int) -> None:
    model = big_model()
    x = random_input(model, 1, seed=1)
    with Client(daemon.socket) as client:
        remote = client.load(model)
        default = client.shm_threshold
        times: dict[str, list[float]] = {"memfd": [], "socket copy": []}
        for r in range(calls // 10):
            for name in ("memfd", "socket copy") if r % 2 == 0 else ("socket copy", "memfd"):
                client.shm_threshold = default if name == "memfd" else 1 << 40
                for _ in range(10):
                    t0 = time.perf_counter()
                    remote.forward(x)
                    times[name].append(time.perf_counter() - t0)
    m, s = (float(np.median(times[k])) for k in ("memfd", "socket copy"))
    print(f"\n3. 224x224x3 frames ({x.nbytes / 1024:.0f} KiB), forward round trip, {calls} each "
          f"(median): memfd {m * 1e3:.3f} ms, socket copy {s * 1e3:.3f} ms: "
          f"socket / memfd = {s / m:.2f}x")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Akidad(Path(tmp), "--log-level", "WARNING") as daemon,
    ):
        ok = end_to_end(daemon, args.frames, args.rounds)
        ok &= back_pressure(daemon, args.frames)
        shared_memory(daemon, 400)
    print(f"\ntargets: {'met' if ok else 'NOT all met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
