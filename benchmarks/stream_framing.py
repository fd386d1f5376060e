"""Event framing and event-file decoding on the host, against faery and dv-processing in
the same run (both optional benchmark dependencies: pip install 'akida-rt[bench]').

Framing: one core (the process is pinned to CPU 0), events to uint8 frames of the
sensor's size, N events per frame, pushed in the chunks a reader yields (DEFAULT_CHUNK
events), as `akida stream` does. akida_rt's EventFramer against dv-processing's
`dv.Accumulator` (no decay, contribution 1, potential 0..255: per-pixel counts clipped to
255, the same frames) and its `dv.EdgeMapAccumulator`, on the same events; dv's events
are already in an `EventStore` (not timed) and cut with `EventStore.slice`, its cheapest
way. Measurements take turns round by round. Target: EventFramer >= 2x dv.Accumulator.

Decoding: events/s of each reader (EVT2, EVT3, .npy, AEDAT4) read in chunks, as `akida
stream` reads them, on the same events, against faery's reader of the same EVT2 and EVT3
files (`faery.events_stream_from_file`, packet by packet) and dv-processing's reader of
the AEDAT4 file (`MonoCameraRecording.getNextEventBatch`). Targets: each >= its anchor.

Run: .venv/bin/python benchmarks/stream_framing.py [--events N] [--rounds R]
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

from akida_rt.stream.events import DEFAULT_CHUNK, make_events
from akida_rt.stream.evt2 import write_evt2
from akida_rt.stream.evt3 import write_evt3
from akida_rt.stream.framing import EventFramer, Framing
from akida_rt.stream.readers import open_events, read_events
from tests.dv_oracle import write_aedat4

TARGET = 2.0


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

    def run() -> np.ndarray:
        framer = EventFramer(framing)
        frames = [
            framer.push(ev[i : i + DEFAULT_CHUNK])[0] for i in range(0, len(ev), DEFAULT_CHUNK)
        ]
        return np.concatenate(frames)

    return run


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


def faery_reader(path: Path) -> int:
    import faery

    return sum(len(packet) for packet in faery.events_stream_from_file(path))


def chunked(path: Path) -> int:
    """Events read as `akida stream` reads them: chunk by chunk, never the whole file."""
    with open_events(path) as reader:
        return sum(len(chunk) for chunk in reader.chunks())


def decoding(n: int, rounds: int) -> bool:
    ev = random_events(n, 640, 480, seed=1)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        files = {"EVT2": Path(tmp) / "e2.raw", "EVT3": Path(tmp) / "e3.raw",
                 ".npy": Path(tmp) / "e.npy", "AEDAT4": Path(tmp) / "e.aedat4"}  # fmt: skip
        write_evt2(files["EVT2"], ev, 640, 480)
        write_evt3(files["EVT3"], ev, 640, 480)
        np.save(files[".npy"], ev)
        write_aedat4(files["AEDAT4"], ev, 640, 480)
        for name, p in files.items():
            assert np.array_equal(read_events(p), ev), name
        calls: dict[str, Callable[[], object]] = {
            name: (lambda p=p: chunked(p)) for name, p in files.items()
        }
        anchors = {"AEDAT4": "dv-processing (AEDAT4)"}
        calls[anchors["AEDAT4"]] = lambda: dv_reader(files["AEDAT4"])
        try:
            import faery  # noqa: F401

            for fmt in ("EVT2", "EVT3"):
                anchors[fmt] = f"faery ({fmt})"
                calls[anchors[fmt]] = lambda p=files[fmt]: faery_reader(p)
                assert faery_reader(files[fmt]) == n
        except ImportError:
            print("(faery is not installed: no EVT2/EVT3 anchor)")
        med = interleave(calls, rounds)
        print(f"\nDecoding {n:,} events (640x480) from a file, in chunks "
              f"(events/s, median of {rounds}; ratio to the anchor of the same format)")  # fmt: skip
        for name, sec in med.items():
            anchor = anchors.get(name)
            ratio = f"{med[anchor] / sec:>6.2f}x vs {anchor}" if anchor in med else ""
            if anchor in med:
                ok &= med[anchor] / sec >= 1.0
            size = f"{os.path.getsize(files[name]) / n:>5.2f} B/event" if name in files else ""
            print(f"  {name:<24} {n / sec / 1e6:>8.1f} M/s {size:>14}  {ratio}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_200_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ok = framing(args.events, args.rounds)
    decoded = decoding(args.events // 2, max(3, args.rounds // 3))
    print(f"\nframing target (>= {TARGET}x dv.Accumulator): {'met' if ok else 'NOT met'}")
    print(f"decoding targets (>= each anchor): {'met' if decoded else 'NOT met'}")
    return 0 if ok and decoded else 1


if __name__ == "__main__":
    raise SystemExit(main())
