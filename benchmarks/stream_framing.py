"""Event framing and event-file decoding on the host, against dv-processing in the same run.

Framing: one core (the process is pinned to CPU 0), an in-memory event array to uint8
frames of the sensor's size, N events per frame. akida_rt's EventFramer against
dv-processing's `dv.Accumulator` (no decay, contribution 1, potential 0..255: per-pixel
counts clipped to 255, the same frames) and its `dv.EdgeMapAccumulator`, on the same
events; dv's events are already in an `EventStore` (not timed) and cut with
`EventStore.slice`, its cheapest way. Measurements take turns round by round.
Target: EventFramer events/s >= 1.5x dv.Accumulator's.

Decoding: events/s of each reader (EVT2, EVT3, .npy, AEDAT4) on the same events,
against dv-processing's own reader (`MonoCameraRecording.getNextEventBatch`) on the
AEDAT4 file.

Run: .venv/bin/python benchmarks/stream_framing.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dv_processing as dv
import numpy as np

from akida_rt.stream.aedat4 import write_aedat4
from akida_rt.stream.events import make_events
from akida_rt.stream.evt2 import write_evt2
from akida_rt.stream.evt3 import write_evt3
from akida_rt.stream.framing import EventFramer, Framing
from akida_rt.stream.readers import read_events

TARGET = 1.5


def random_events(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n * 5, n))  # about 200k events/s
    return make_events(t, rng.integers(0, width, n), rng.integers(0, height, n),
                       rng.integers(0, 2, n))  # fmt: skip


def to_store(ev: np.ndarray) -> dv.EventStore:
    store = dv.EventStore()
    for t, x, y, p in ev[["t", "x", "y", "p"]].tolist():
        store.push_back(t, x, y, bool(p))
    return store


def ours(ev: np.ndarray, size: int, per_frame: int) -> Callable[[], np.ndarray]:
    framing = Framing((size, size, 1), (size, size), events_per_frame=per_frame)
    return lambda: EventFramer(framing).push(ev)[0]


def dv_frames(acc: object, store: dv.EventStore, per_frame: int) -> Callable[[], list]:
    def run() -> list:
        frames = []
        for i in range(len(store) // per_frame):
            acc.accept(store.slice(i * per_frame, per_frame))  # type: ignore[attr-defined]
            frames.append(acc.generateFrame().image)  # type: ignore[attr-defined]
            acc.clear() if hasattr(acc, "clear") else acc.reset()  # type: ignore[attr-defined]
        return frames

    return run


def interleave(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each, the calls taking turns (each leads in turn)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def framing(n: int, rounds: int) -> bool:
    ok = True
    print(
        f"Framing, one core: {n:,} in-memory events to uint8 frames (events/s, median of {rounds})"
    )
    print(f"{'sensor = frame':>15} {'N/frame':>8} {'akida_rt':>12} {'dv.Accumulator':>15} "
          f"{'dv.EdgeMap':>12} {'ratio':>6} {'same frames':>12}")  # fmt: skip
    for size, per_frame in ((128, 3000), (34, 3000), (34, 500)):
        ev = random_events(n, size, size)
        store = to_store(ev)
        acc = dv.Accumulator((size, size), dv.Accumulator.Decay.NONE, 0.0, False, 1.0, 255.0,
                             0.0, 0.0, True)  # fmt: skip
        edge = dv.EdgeMapAccumulator((size, size), 1 / 255, True, 0.0, 0.0)
        calls = {"ours": ours(ev, size, per_frame), "acc": dv_frames(acc, store, per_frame),
                 "edge": dv_frames(edge, store, per_frame)}  # fmt: skip
        same = np.array_equal(calls["ours"]()[..., 0], np.stack(calls["acc"]()))  # type: ignore[index,arg-type]
        med = interleave(calls, rounds)
        rate = {k: n // per_frame * per_frame / v for k, v in med.items()}
        ratio = rate["ours"] / rate["acc"]
        ok &= ratio >= TARGET
        print(f"{size:>9}x{size:<5} {per_frame:>8} {rate['ours'] / 1e6:>9.1f} M/s "
              f"{rate['acc'] / 1e6:>11.1f} M/s {rate['edge'] / 1e6:>8.1f} M/s {ratio:>5.2f}x "
              f"{'yes' if same else 'NO':>12}")  # fmt: skip
    return ok


def dv_reader(path: Path) -> int:
    rec = dv.io.MonoCameraRecording(str(path))
    count = 0
    while (batch := rec.getNextEventBatch()) is not None:
        count += len(batch.numpy())
    return count


def decoding(n: int, rounds: int) -> None:
    ev = random_events(n, 640, 480, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"EVT2 (.raw)": Path(tmp) / "e2.raw", "EVT3 (.raw)": Path(tmp) / "e3.raw",
                 ".npy": Path(tmp) / "e.npy", "AEDAT4 (via dv)": Path(tmp) / "e.aedat4"}  # fmt: skip
        write_evt2(files["EVT2 (.raw)"], ev, 640, 480)
        write_evt3(files["EVT3 (.raw)"], ev, 640, 480)
        np.save(files[".npy"], ev)
        write_aedat4(files["AEDAT4 (via dv)"], ev, 640, 480)
        calls: dict[str, Callable[[], object]] = {
            name: (lambda p=p: read_events(p)) for name, p in files.items()
        }
        calls["dv reader (AEDAT4)"] = lambda: dv_reader(files["AEDAT4 (via dv)"])
        for name, p in files.items():
            assert np.array_equal(read_events(p), ev), name
        med = interleave(calls, rounds)
        base = n / med["dv reader (AEDAT4)"]
        print(
            f"\nDecoding {n:,} events (640x480) from a file to an event array "
            f"(events/s, median of {rounds}; ratio to dv-processing's AEDAT4 reader)"
        )
        for name, sec in med.items():
            print(
                f"  {name:<20} {n / sec / 1e6:>8.1f} M/s {n / sec / base:>6.2f}x"
                f"  {os.path.getsize(files[name]) / n if name in files else 0:>5.2f} B/event"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_200_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ok = framing(args.events, args.rounds)
    decoding(args.events // 2, max(3, args.rounds // 3))
    print(f"\nframing target (>= {TARGET}x dv.Accumulator): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
