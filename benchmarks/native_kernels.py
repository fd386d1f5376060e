"""Each native kernel's path against the numpy form it replaced and against its anchor, in
one run, the calls taking turns round by round (so load changes hit all alike).

    .venv/bin/python benchmarks/native_kernels.py [--rounds R] [--events N]

- EVT2 / EVT3: a file read in chunks as `akida stream` reads it, by the kernels, by the
  numpy decoders (tests/native_reference.py, with the reader's per-event checks on every
  chunk, as before), and by faery;
- framing (128x128, 3,000 events a frame, pushed in the reader's chunks): EventFramer,
  the numpy framer, dv.Accumulator;
- the engine (the v1 digits CNN imported from akida 2.19.3, real digits, batch 1 and 100):
  with the kernels, with the numpy steps, and akida;
- the learning step (128 inputs, 5 classes x 10 neurons): the kernel, the numpy rule and
  akida's fit.
faery, dv-processing and akida are optional: a missing anchor is left out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akida_rt.engine import integer
from akida_rt.engine.learning_rule import learn, rule_params
from akida_rt.stream.events import DEFAULT_CHUNK, make_events
from akida_rt.stream.evt2 import Evt2Decoder, write_evt2
from akida_rt.stream.evt3 import Evt3Decoder, write_evt3
from akida_rt.stream.framing import EventFramer, Framing
from akida_rt.stream.prophesee import RawReader
from tests import native_reference as ref


def interleave(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each, taking turns (each leads in turn)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def show(title: str, med: dict[str, float], per_call: float, unit: str) -> None:
    base = next(iter(med.values()))
    print(f"\n{title}")
    for name, sec in med.items():
        print(f"  {name:<28} {per_call / sec:>12,.1f} {unit}   {base / sec:>5.2f}x of the first")


def random_events(n: int, w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n * 5, n))
    return make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))


def read_all(path: Path, decoder: object, word: str) -> int:
    with RawReader(path, decoder, np.dtype(word)) as reader:  # type: ignore[arg-type]
        return sum(len(chunk) for chunk in reader.chunks())


def numpy_decoder(cls: type) -> Callable[[RawReader], object]:
    def make(reader: RawReader) -> object:
        decoder = cls(reader)
        decoder.clean = lambda *args: None  # the reader's per-event checks on every chunk
        return decoder

    return make


def decoding(n: int, rounds: int) -> None:
    ev = random_events(n, 640, 480, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, write, ours, theirs, word in (
            ("EVT2", write_evt2, Evt2Decoder, ref.NumpyEvt2Decoder, "<u4"),
            ("EVT3", write_evt3, Evt3Decoder, ref.NumpyEvt3Decoder, "<u2"),
        ):
            path = Path(tmp) / f"{fmt}.raw"
            write(path, ev, 640, 480)
            calls: dict[str, Callable[[], object]] = {
                "kernel": lambda p=path, d=ours, w=word: read_all(p, d, w),
                "numpy (before)": lambda p=path, d=theirs, w=word: read_all(p, numpy_decoder(d), w),
            }
            try:
                import faery

                calls["faery"] = lambda p=path: sum(
                    len(x) for x in faery.events_stream_from_file(p)
                )
            except ImportError:
                pass
            show(f"{fmt} decoding, {n:,} events in chunks", interleave(calls, rounds), n, "ev/s")


def framing(n: int, rounds: int) -> None:
    ev = random_events(n, 128, 128, seed=0)
    spec = Framing((128, 128, 1), (128, 128), events_per_frame=3000)

    def push(make: Callable[[Framing], object]) -> Callable[[], object]:
        def run() -> object:
            framer = make(spec)
            return [framer.push(ev[i : i + DEFAULT_CHUNK]) for i in range(0, n, DEFAULT_CHUNK)]  # type: ignore[attr-defined]

        return run

    calls: dict[str, Callable[[], object]] = {
        "kernel": push(EventFramer),
        "numpy (before)": push(ref.NumpyEventFramer),
    }
    try:
        import dv_processing as dv

        store = dv.EventStore()
        for t, x, y, p in ev[["t", "x", "y", "p"]].tolist():
            store.push_back(t, x, y, bool(p))
        acc = dv.Accumulator((128, 128), dv.Accumulator.Decay.NONE, 0.0, False, 1.0, 255.0,
                             0.0, 0.0, True)  # fmt: skip

        def accumulate() -> object:
            for i in range(n // 3000):
                acc.accept(store.slice(i * 3000, 3000))
                acc.generateFrame()
                acc.clear()
            return None

        calls["dv.Accumulator"] = accumulate
    except ImportError:
        pass
    show(f"framing 128x128, 3,000 ev/frame, {n:,} events", interleave(calls, rounds), n, "ev/s")


def engine(rounds: int) -> None:
    try:
        from akida_rt.tools.datasets import digits_images
        from akida_rt.tools.metatf import import_model

        from akida_rt.model import zoo
        from tests.metatf_models import calibrate, from_zoo
    except ImportError:
        print("\nengine: needs akida 2.19.3 and the toolchain; skipped")
        return
    images, _ = digits_images()
    theirs = from_zoo(zoo.digits_cnn())
    calibrate(theirs, images[:200], seed=0)
    ours = import_model(theirs)
    steps = {
        "_activate": lambda c, acc: (y := ref.activate(c, acc), ref.events(y)),
        "_max_pool": ref.max_pool,
        "events": ref.events,
        "_kernels": _NumpyPatches(integer._kernels),
    }

    def numpy_forward(x: np.ndarray) -> np.ndarray:
        """The model's forward with the engine's numpy steps (as before the kernels)."""
        saved = {name: getattr(integer, name) for name in steps}
        for name, fn in steps.items():
            setattr(integer, name, fn)
        try:
            return ours.forward(x)
        finally:
            for name, fn in saved.items():
                setattr(integer, name, fn)

    for batch in (1, 100):
        x = images[:batch]
        assert np.array_equal(ours.forward(x), numpy_forward(x))
        reps = max(1, 200 // batch)
        calls = {
            name: (lambda fn=fn, x=x, reps=reps: [fn(x) for _ in range(reps)])
            for name, fn in (("kernels", ours.forward), ("numpy steps (before)", numpy_forward),
                             ("akida 2.19.3", theirs.forward))
        }  # fmt: skip
        show(f"engine, digits CNN, batch {batch}", interleave(calls, rounds), batch * reps,
             "samples/s")  # fmt: skip


class _NumpyPatches:
    """The kernels module, with im2col in its numpy form (a padded copy, then its windows)."""

    def __init__(self, kernels: object) -> None:
        self._kernels = kernels

    def __getattr__(self, name: str) -> object:
        return getattr(self._kernels, name)

    @staticmethod
    def im2col(x: np.ndarray, k: int, s: int, t: int, lft: int, oh: int, ow: int,
               pad: float) -> np.ndarray:  # fmt: skip
        h, w = x.shape[1:3]
        b, r = max(0, (oh - 1) * s + k - h - t), max(0, (ow - 1) * s + k - w - lft)
        layer = SimpleNamespace(kernel_size=k, stride=s, padding_value=pad)
        c = SimpleNamespace(layer=layer, pad=((t, b), (lft, r)), out_hw=(oh, ow))
        return ref.im2col(c, x)  # type: ignore[arg-type]


def learning(rounds: int, calls_per_round: int = 50) -> None:
    k, classes, units, num_weights = 128, 5, 50, 32
    params = rule_params(num_weights, classes, 1.0, 0.1, 0.25, 0.0)
    rng = np.random.default_rng(0)
    spikes = (rng.random((calls_per_round, k)) < 0.25).astype(np.uint8)
    labels = rng.integers(0, classes, calls_per_round)

    def rule(fn: Callable[..., object]) -> Callable[[], object]:
        def run() -> object:
            w, p = np.zeros((k, units), np.uint8), np.full(units, num_weights, np.int32)
            return [fn(params, w, p, spikes[i : i + 1], labels[i : i + 1])
                    for i in range(calls_per_round)]  # fmt: skip

        return run

    calls = {"kernel": rule(learn), "numpy (before)": rule(ref.learn)}
    try:
        import akida

        m = akida.Model()
        m.add(akida.InputData(input_shape=(1, 1, k), input_bits=1))
        m.add(akida.FullyConnected(units=units, weights_bits=1, activation=False))
        m.compile(optimizer=akida.AkidaUnsupervised(num_weights=num_weights, num_classes=classes))
        x = spikes.reshape(-1, 1, 1, k)
        calls["akida 2.19.3"] = lambda: [m.fit(x[i : i + 1], int(labels[i]))
                                         for i in range(calls_per_round)]  # fmt: skip
    except ImportError:
        pass
    show("learning step, 128 inputs, 50 neurons", interleave(calls, rounds), calls_per_round,
         "samples/s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=600_000)
    args = parser.parse_args()
    decoding(args.events, args.rounds)
    framing(args.events * 2, args.rounds)
    engine(args.rounds)
    learning(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
