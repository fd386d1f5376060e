"""The streaming part of `make demo`: the digits test set, then a live DVS source (a
simulated camera writing a Prophesee RAW stream into a FIFO at camera rate) streamed
through a running akidad, with live fps and predicted classes."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from akida_rt.stream.evt3 import encode_evt3
from akida_rt.stream.pipeline import Result, Stream
from akida_rt.stream.prophesee import raw_header
from akida_rt.stream.runners import connect
from akida_rt.stream.sources import array_frames, open_source
from akida_rt.stream.synthetic import SaccadeCamera, saccade_recording

# One frame per digit: three 100 ms saccades and the 10 ms gap saccade_recording leaves.
PRESENTATION_US = 3 * SaccadeCamera().saccade_us + 10_000


def stream_digits(
    program: Path, socket: Path, images: np.ndarray, labels: np.ndarray | None
) -> None:
    """The digits test set (or random frames) as a stream of frames through akidad."""
    runner = connect(program, socket=socket, embedded=False, name="demo-stream")
    print(f"\n== streaming {len(images)} test digits through {runner.where} ==")
    try:
        _show(Stream(runner, array_frames(images, "digits"), window=8), labels, every=75)
    finally:
        runner.close()


def camera(fifo: Path, events: np.ndarray, slice_us: int = 10_000) -> threading.Thread:
    """A simulated event camera: `events` as an EVT3 byte stream written into `fifo` at the
    pace of their timestamps, a slice of `slice_us` at a time (as a camera driver does)."""

    def run() -> None:
        t = events["t"]
        cuts = np.searchsorted(t, np.arange(int(t[0]), int(t[-1]) + slice_us + 1, slice_us))
        with open(fifo, "wb") as f:
            f.write(raw_header(34, 34, "EVT3"))
            start = time.monotonic()
            for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
                if b > a:
                    wait = start + (int(t[b - 1]) - int(t[0])) / 1e6 - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    f.write(encode_evt3(events[a:b]).tobytes())
                    f.flush()

    thread = threading.Thread(target=run, name="demo-camera", daemon=True)
    thread.start()
    return thread


def stream_dvs(program: Path, socket: Path, digits: np.ndarray, labels: np.ndarray) -> None:
    """`digits` (uint8 HxW, at most 34x34) through simulated N-MNIST saccades, sent live by
    a simulated camera into a FIFO as Prophesee EVT3 at camera rate, read back as a live
    source (`akida stream --source FIFO`), framed one presentation per frame (event counts)
    and streamed through akidad to `program`, a model of 34x34x1 event-count frames."""
    events, _ = saccade_recording(digits)
    runner = connect(program, socket=socket, embedded=False, name="demo-dvs")
    seconds = (int(events["t"][-1]) - int(events["t"][0])) / 1e6
    print(f"\n== streaming a live DVS camera ({len(events):,} events in {seconds:.1f} s, "
          f"{len(digits)} digits in saccades, EVT3 through a FIFO) through {runner.where} ==")  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="akida-demo-dvs-") as tmp:
            fifo = Path(tmp) / "camera.fifo"
            os.mkfifo(fifo)
            cam = camera(fifo, events)
            frames = open_source(str(fifo), runner.input_shape, window_us=PRESENTATION_US)
            _show(Stream(runner, frames, window=4), labels, every=1)
            cam.join(5)
    finally:
        runner.close()


def _show(stream: Stream, labels: np.ndarray | None, every: int) -> None:
    """A live line every `every` frames (fps so far, latency, the latest classes), then a
    summary with the accuracy when `labels` are known."""
    results: list[Result] = []
    for r in stream:
        results.append(r)
        if len(results) % every == 0:
            recent = [x.label for x in results[-10:]]
            print(f"  frame {r.seq:4d}  {stream.stats.fps:7.1f} fps  "
                  f"p50 {stream.stats.latency_ms(50):5.2f} ms  classes {recent}")  # fmt: skip
    st = stream.stats
    classes = [r.label for r in results]
    print(f"  {st.done} frames, {st.fps:.1f} fps, latency p50 {st.latency_ms(50):.2f} ms / "
          f"p99 {st.latency_ms(99):.2f} ms, dropped {st.dropped}, on {results[-1].device}")  # fmt: skip
    print(f"  predicted classes (first 20): {classes[:20]}")
    if labels is not None:
        n = min(len(labels), len(classes))
        acc = float(np.mean(np.asarray(classes[:n]) == labels[:n]))
        print(f"  true classes      (first 20): {labels[:20].tolist()}")
        print(f"  accuracy over {n} frames: {acc:.4f}")
