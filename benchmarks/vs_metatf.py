"""akida_rt against BrainChip's akida 2.19.3 software backend on the same imported model.

Usage: python benchmarks/vs_metatf.py [--rounds N] [--busy] [--json PATH]

The v1 digits CNN (32x32x1 -> InputConv 3x3x16/2 -> conv 32 + pool -> conv 64 + pool ->
conv 64 -> dense 10) is built with akida's layer API (random weights, thresholds
calibrated on real scikit-learn digits), imported with akida_rt.tools.metatf, and both run
the same real digits (32x32) at batch 100 and batch 1. Each round times akida, akida_rt
with its thread policy (a big batch split over a spare core) and akida_rt on one thread,
one after the other (each round starting with the next), so load changes hit all
three alike; the table gives the median samples/s and the median of the
per-round ratios. --busy runs a CPU-bound process on the machine during the measurement.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akida_rt.tools.datasets import digits_images
from akida_rt.tools.metatf import import_model

from akida_rt.engine import blas
from akida_rt.model import zoo
from tests.metatf_models import calibrate, from_zoo


def _spin() -> None:
    while True:
        pass


def _rate(fn, x: np.ndarray, min_s: float) -> float:
    """Samples/s of fn(x) over at least min_s seconds."""
    n, start = 0, time.perf_counter()
    while True:
        fn(x)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return n * x.shape[0] / elapsed


def measure(rounds: int) -> dict[str, dict[str, float]]:
    images, _ = digits_images()
    theirs = from_zoo(zoo.digits_cnn())
    calibrate(theirs, images[:200], seed=0)
    ours = import_model(theirs)
    assert np.array_equal(ours.forward(images[:100]), theirs.forward(images[:100]))

    def single(x: np.ndarray) -> None:
        """akida_rt on one thread: BLAS is always held at one, and no batch is split."""
        split, blas.SPLIT_MACS = blas.SPLIT_MACS, 1 << 62
        try:
            ours.forward(x)
        finally:
            blas.SPLIT_MACS = split

    runs = {"akida": theirs.forward, "akida_rt": ours.forward, "akida_rt 1 thread": single}
    out: dict[str, dict[str, float]] = {}
    for batch in (100, 1):
        x = images[:batch]
        for fn in runs.values():
            fn(x)  # warm up
        rates: dict[str, list[float]] = {k: [] for k in runs}
        names = list(runs)
        for r in range(rounds):  # each round starts with the next: none always follows akida
            for name in names[r % len(names) :] + names[: r % len(names)]:
                rates[name].append(_rate(runs[name], x, 0.3))
        row = {k: statistics.median(v) for k, v in rates.items()}
        row["ratio"] = statistics.median(
            a / b for a, b in zip(rates["akida_rt"], rates["akida"], strict=True)
        )
        row["ratio_vs_1_thread"] = statistics.median(
            a / b for a, b in zip(rates["akida_rt"], rates["akida_rt 1 thread"], strict=True)
        )
        out[f"batch {batch}"] = row
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--busy", action="store_true", help="a CPU-bound competitor runs")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    spinner = multiprocessing.Process(target=_spin, daemon=True) if args.busy else None
    if spinner:
        spinner.start()
    try:
        result = measure(args.rounds)
    finally:
        if spinner:
            spinner.terminate()
    load = "with a CPU-bound competitor" if args.busy else "quiet"
    print(f"samples/s, median of {args.rounds} interleaved rounds ({load})")
    print(f"{'':10} {'akida':>10} {'akida_rt':>10} {'1 thread':>10} {'rt/akida':>9} {'rt/1thr':>8}")
    for name, r in result.items():
        print(
            f"{name:10} {r['akida']:>10,.0f} {r['akida_rt']:>10,.0f} "
            f"{r['akida_rt 1 thread']:>10,.0f} {r['ratio']:>8.2f}x {r['ratio_vs_1_thread']:>7.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"busy": args.busy, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
