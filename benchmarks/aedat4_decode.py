"""AEDAT4 decoding: akida_rt's reader against dv-processing's on the same files, written by
dv-processing's own writer, in the same run, taking turns round by round.

    .venv/bin/python benchmarks/aedat4_decode.py [--events N] [--rounds R] [--dir DIR]

Files: N events (640x480, random pixels: the hardest case for LZ4) in packets of --packet
events: LZ4 (dv's default) at 2 events a microsecond (a busy camera) and at 0.2, and
uncompressed at 2; --dir keeps them between runs. Readers, pinned to one core: akida_rt as `akida stream` reads (the
chunks of `open_events`, EVENT_DTYPE), dv-processing's `MonoCameraRecording.
getNextEventBatch` counting each batch (`len`, its fastest) and taking each as numpy
(`.numpy()`). ratio: akida_rt's events/s over the faster dv row (median wall seconds of R
rounds, each reader leading in turn); cpu: the same from the median CPU seconds (steadier
on a shared machine); numpy: over dv taking its events as numpy, as a Python user must.
Target: ratio >= 1.0 on every file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dv_processing as dv
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akida_rt.stream.events import make_events
from akida_rt.stream.readers import open_events
from tests.dv_oracle import write_aedat4


def camera_events(n: int, per_us: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, int(n / per_us), n))
    return make_events(t, rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n))


def ours(path: Path) -> int:
    with open_events(path) as reader:
        return sum(len(chunk) for chunk in reader.chunks())


def dv_len(path: Path) -> int:
    rec, n = dv.io.MonoCameraRecording(str(path)), 0
    while (batch := rec.getNextEventBatch()) is not None:
        n += len(batch)
    return n


def dv_numpy(path: Path) -> int:
    rec, n = dv.io.MonoCameraRecording(str(path)), 0
    while (batch := rec.getNextEventBatch()) is not None:
        n += len(batch.numpy())
    return n


def interleave(
    calls: dict[str, Callable[[], int]], rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds per call of each, the calls taking turns (each leads in
    turn)."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start, used = time.perf_counter(), time.process_time()
            calls[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - used)
    med = {name: float(np.median(t)) for name, t in wall.items()}
    return med, {name: float(np.median(t)) for name, t in cpu.items()}


def same_events(path: Path) -> bool:
    rec, parts = dv.io.MonoCameraRecording(str(path)), []
    while (batch := rec.getNextEventBatch()) is not None:
        a = batch.numpy()
        parts.append(make_events(a["timestamp"], a["x"], a["y"], a["polarity"]))
    with open_events(path) as reader:
        got = np.concatenate(list(reader.chunks()))
    return np.array_equal(got, np.concatenate(parts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--packet", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", help="keep the files here (written when missing)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        ok = True
        print(f"AEDAT4, {args.events:,} events in packets of {args.packet:,}, one core; "
              f"events/s, median of {args.rounds} interleaved rounds")  # fmt: skip
        print(f"{'file':<26} {'MB':>6} {'akida_rt':>10} {'dv len':>10} {'dv numpy':>10} "
              f"{'ratio':>6} {'cpu':>6} {'numpy':>6} {'same':>5}")  # fmt: skip
        for compression, per_us in (("LZ4", 2.0), ("LZ4", 0.2), ("NONE", 2.0)):
            name = f"{compression}, {per_us:g} ev/us"
            path = folder / f"dv-{args.events}-{args.packet}-{compression}-{per_us:g}.aedat4"
            if not path.exists():
                ev = camera_events(args.events, per_us)
                write_aedat4(path, ev, 640, 480, packet=args.packet, compression=compression)
            calls = {"ours": lambda p=path: ours(p), "dv len": lambda p=path: dv_len(p),
                     "dv numpy": lambda p=path: dv_numpy(p)}  # fmt: skip
            counts = {name: call() for name, call in calls.items()}
            assert len(set(counts.values())) == 1, counts
            med, cpu = interleave(calls, args.rounds)
            rate = {k: counts["ours"] / v / 1e6 for k, v in med.items()}
            ratio = rate["ours"] / max(rate["dv len"], rate["dv numpy"])
            by_cpu = min(cpu["dv len"], cpu["dv numpy"]) / cpu["ours"]
            ok &= ratio >= 1.0
            same = same_events(path)
            print(f"{name:<26} {path.stat().st_size / 1e6:>6.0f} "
                  f"{rate['ours']:>6.1f} M/s {rate['dv len']:>6.1f} M/s "
                  f"{rate['dv numpy']:>6.1f} M/s {ratio:>5.2f}x {by_cpu:>5.2f}x "
                  f"{rate['ours'] / rate['dv numpy']:>5.2f}x {'yes' if same else 'NO':>5}",
                  flush=True)  # fmt: skip
    print(f"target (>= 1.0x dv-processing on every file): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
