"""Where the engine's batch time goes on the digits CNN, against akida 2.19.3, in one run.

Usage: python benchmarks/engine_batch.py [--batch N] [--rounds N] [--chunks 100,21,10]
(pin it with `taskset -c 0` for single-core figures on a shared machine).

Each round times akida's forward, then akida_rt on one thread with runs of each size in
--chunks (Engine.chunk: samples that go through all layers together), one after the other,
so load changes hit all alike (each round
starts with the next one, so that none always follows akida); the table gives medians and the median of the per-round
ratios. Then one run's time per step (im2col, product, bias, clip, pooling, activation,
event count) of each layer, at the engine's own run size, minimum and median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akida_rt.tools.datasets import digits_images
from akida_rt.tools.metatf import import_model

from akida_rt.engine import blas, integer
from akida_rt.format.layer_params import LayerType, Pooling
from akida_rt.model import zoo
from akida_rt.native import _kernels
from tests.metatf_models import calibrate, from_zoo


def _steps(compiled: list[integer.CompiledLayer], x: np.ndarray, times: dict) -> np.ndarray:
    """integer._run's steps one by one, each timed into times[(layer, step)]."""

    def timed(key, fn, *args):
        start = time.perf_counter_ns()
        out = fn(*args)
        times.setdefault(key, []).append(time.perf_counter_ns() - start)
        return out

    timed(("input", "events"), integer.events, x)
    y = timed(("input", "to float32"), x.astype, np.float32)
    for c in compiled:
        layer, name = c.layer, c.layer.name
        if layer.layer_type is LayerType.InputData:
            continue
        xin = y if y.dtype == c.dtype else y.astype(c.dtype)
        if layer.layer_type is LayerType.FullyConnected:
            acc = timed((name, "product"), np.matmul, xin.reshape(len(xin), -1), c.matrix)
        else:
            assert c.depthwise is None, "separable layers are not broken down here"
            (t, _), (lft, _) = c.pad
            oh, ow = c.out_hw
            args = (layer.kernel_size, layer.stride, t, lft, oh, ow, float(layer.padding_value))
            flat = timed((name, "im2col"), _kernels.im2col, xin, *args)
            acc = timed((name, "product"), np.matmul, flat, c.matrix).reshape(len(xin), oh, ow, -1)
        if c.bias is not None:
            rows = acc.reshape(-1, c.bias.shape[0])
            timed((name, "bias"), np.add, rows, c.bias, rows)
        bits = layer.potential_bits
        if bits and c.saturates and layer.pooling is not Pooling.GlobalAvg:
            lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
            timed((name, "clip"), acc.clip, lo, hi, acc)
        if layer.pooling is Pooling.Max:
            acc = timed((name, "max pool"), integer._max_pool, c, acc)
        if layer.activation:
            y, _ = timed((name, "activate"), integer._activate, c, acc)
        else:
            timed((name, "events"), integer.events, acc)
            y = acc
    return y


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--chunks", default="100,0,10", help="run sizes; 0 is the engine's")
    args = parser.parse_args()
    images, _ = digits_images()
    theirs = from_zoo(zoo.digits_cnn())
    calibrate(theirs, images[:200], seed=0)
    ours = import_model(theirs)
    x = images[: args.batch]
    assert np.array_equal(ours.forward(x), theirs.forward(x))
    engine = ours.compiled_engine
    assert engine is not None
    own = engine.chunk
    chunks = [int(c) or own for c in args.chunks.split(",")]
    split, blas.SPLIT_MACS = blas.SPLIT_MACS, 1 << 62  # one thread: no batch is split

    def ours_with(chunk: int):
        def run(x: np.ndarray) -> None:
            engine.chunk = chunk
            try:
                ours.forward(x)
            finally:
                engine.chunk = own

        return run

    runs = {"akida": theirs.forward} | {f"rt, runs of {c}": ours_with(c) for c in chunks}
    times: dict[str, list[int]] = {k: [] for k in runs}
    cpu: dict[str, list[int]] = {k: [] for k in runs}
    steps: dict[tuple[str, str], list[int]] = {}
    size = -(-args.batch // -(-args.batch // own))
    first = x[:size]
    with blas.one_thread():
        reference = integer._run(engine.compiled, first)[0]
        assert np.array_equal(_steps(engine.compiled, first, {}).ravel(), reference.ravel())
    try:
        for fn in runs.values():
            fn(x)  # warm up
        names = list(runs)
        for r in range(args.rounds):
            # each round starts at the next one: none always runs right after akida
            for name in names[r % len(names) :] + names[: r % len(names)]:
                fn = runs[name]
                start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
                fn(x)
                times[name].append(time.perf_counter_ns() - start)
                cpu[name].append(time.process_time_ns() - cpu_start)
            with blas.one_thread():
                _steps(engine.compiled, first, steps)
    finally:
        blas.SPLIT_MACS = split
    print(f"digits CNN, batch {args.batch}, one thread, {args.rounds} interleaved rounds")
    print("(wall: elapsed time; cpu: this process's CPU time, less sensitive to load)")
    print(
        f"{'':18} {'wall median ms':>14} {'min ms':>8} {'x akida':>8} {'cpu ms':>7} {'x akida':>8}"
    )
    for name, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(times["akida"], t, strict=True))
        c = cpu[name]
        cpu_ratio = statistics.median(a / b for a, b in zip(cpu["akida"], c, strict=True))
        print(
            f"{name:18} {statistics.median(t) / 1e6:>14.2f} {min(t) / 1e6:>8.2f} {ratio:>7.2f}x"
            f" {statistics.median(c) / 1e6:>7.2f} {cpu_ratio:>7.2f}x"
        )
    total = sum(min(t) for t in steps.values())
    print(f"\none run of {size} samples, per step (us)")
    print(f"{'layer':10} {'step':11} {'min':>8} {'median':>8} {'share':>6}")
    for (layer, step), t in steps.items():
        share = min(t) / total
        print(
            f"{layer:10} {step:11} {min(t) / 1e3:>8.1f} {statistics.median(t) / 1e3:>8.1f} {share:>6.1%}"
        )
    by_step: dict[str, int] = {}
    for (_, step), t in steps.items():
        by_step[step] = by_step.get(step, 0) + min(t)
    print("by step: " + ", ".join(f"{k} {v / total:.0%}" for k, v in by_step.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
