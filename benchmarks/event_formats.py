"""Decode rate of every event-file format akida_rt reads, next to faery's and
dv-processing's readers of the same files in the same run (where they read the format).

    .venv/bin/python benchmarks/event_formats.py [--events N] [--rounds R]

The same time-ordered events (640x480; 34x34 for the N-MNIST .bin) are written by faery
(EVT2, EVT3, DAT, CSV, AEDAT4) or akida_rt's writers (EVT2.1, .bin, .npy); each reader
reads the whole file, best of R rounds taken in turns. Mev/s = million events a second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def events(n: int, w: int, h: int) -> np.ndarray:
    from akida_rt.stream.events import make_events

    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, n // 2, n))  # 2 events per us: a busy camera
    return make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))


def faery_write(ev: np.ndarray, path: Path, size: tuple[int, int], **kw: object) -> None:
    import faery

    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    faery.events_stream_from_array(arr, dimensions=size).to_file(str(path), **kw)


def ours(path: Path, **kw: object) -> Callable[[], int]:
    from akida_rt.stream.readers import open_events

    def run() -> int:
        with open_events(path, **kw) as r:  # type: ignore[attr-defined]
            return sum(len(c) for c in r.chunks())

    return run


def faery_read(path: Path) -> Callable[[], int]:
    import faery

    return lambda: sum(len(p) for p in faery.events_stream_from_file(str(path)))


def dv_read(path: Path) -> Callable[[], int]:
    import dv_processing as dv

    def run() -> int:
        rec, n = dv.io.MonoCameraRecording(str(path)), 0
        while (batch := rec.getNextEventBatch()) is not None:
            n += len(batch)
        return n

    return run


def tonic_bin(path: Path) -> Callable[[], int]:
    from tonic.io import read_mnist_file

    return lambda: len(
        read_mnist_file(str(path), dtype=np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from akida_rt.stream.evt21 import encode_evt21
    from akida_rt.stream.nmnist_bin import OVERFLOW_Y
    from akida_rt.stream.prophesee import raw_header

    ev, small = events(args.events, 640, 480), events(args.events, 34, 34)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        faery_write(ev, d / "evt2.raw", (640, 480), version="evt2")
        faery_write(ev, d / "evt3.raw", (640, 480), version="evt3")
        faery_write(ev, d / "cd.dat", (640, 480))
        faery_write(ev[: args.events // 10], d / "ev.csv", (640, 480))
        faery_write(ev, d / "ev.aedat4", (640, 480))
        head = (
            raw_header(640, 480, "EVT3").replace(b"evt 3.0", b"evt 2.1").replace(b"EVT3", b"EVT21")
        )
        (d / "evt21.raw").write_bytes(head + encode_evt21(ev).tobytes())
        np.save(d / "ev.npy", ev)
        rec = np.zeros((len(small), 5), np.uint8)  # N-MNIST records, no overflow in 2^23 us
        t = small["t"] % (1 << 23)
        rec[:, 0], rec[:, 1] = small["x"], np.minimum(small["y"], OVERFLOW_Y - 1)
        rec[:, 2] = (small["p"].astype(np.uint8) << 7) | (t >> 16)
        rec[:, 3], rec[:, 4] = (t >> 8) & 0xFF, t & 0xFF
        (d / "ev.bin").write_bytes(rec.tobytes())

        table = {
            "EVT2": {"akida_rt": ours(d / "evt2.raw"), "faery": faery_read(d / "evt2.raw")},
            "EVT2.1": {"akida_rt": ours(d / "evt21.raw")},
            "EVT3": {"akida_rt": ours(d / "evt3.raw"), "faery": faery_read(d / "evt3.raw")},
            "AEDAT4": {
                "akida_rt": ours(d / "ev.aedat4"),
                "faery": faery_read(d / "ev.aedat4"),
                "dv-processing": dv_read(d / "ev.aedat4"),
            },
            "DAT": {"akida_rt": ours(d / "cd.dat"), "faery": faery_read(d / "cd.dat")},
            "CSV": {"akida_rt": ours(d / "ev.csv"), "faery": faery_read(d / "ev.csv")},
            "npy": {"akida_rt": ours(d / "ev.npy")},
            "N-MNIST bin": {"akida_rt": ours(d / "ev.bin"), "tonic": tonic_bin(d / "ev.bin")},
        }
        print(f"{'format':<12} {'reader':<24} {'events':>10} {'Mev/s':>8}")
        for fmt, readers in table.items():
            best: dict[str, float] = {}
            counts: dict[str, int] = {}
            for _ in range(args.rounds):
                for name, run in readers.items():
                    start = time.perf_counter()
                    counts[name] = run()
                    best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
            for name in readers:
                rate = counts[name] / best[name] / 1e6
                print(f"{fmt:<12} {name:<24} {counts[name]:>10} {rate:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
