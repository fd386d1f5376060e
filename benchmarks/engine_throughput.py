"""Software-backend throughput on the reference digits CNN, against the sgemm limit.

Usage: python benchmarks/engine_throughput.py [--json PATH] [--rounds N]

The digits CNN (32x32x1 uint8 -> InputConv 3x3x16/2 -> conv 32 + pool -> conv 64 + pool ->
conv 64 -> dense 10; 8-bit input weights, 4-bit weights and activations, random integer
weights) runs at batch 1 and batch 100. In the same run, the float32 matrix products of
exactly the engine's GEMM shapes are timed with pre-built operands: the practical limit of
this machine for the same MAC count. Figures are best-of-rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from akida_rt.format.layer_params import LayerType
from akida_rt.model import zoo

BATCH = 100


def _best(fn, rounds: int, reps: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def gemm_shapes(model) -> list[tuple[int, int, int]]:
    """(M, K, F) of every layer's matrix product at batch 1."""
    shapes = []
    for layer in model.layers:
        if layer.layer_type is LayerType.InputData:
            continue
        oh, ow = layer.conv_output_hw()
        kh, kw, cin, f = layer.kernel_shape()
        if layer.layer_type is LayerType.SeparableConv2D:
            shapes.append((oh * ow, cin, layer.filters))
        else:
            shapes.append((oh * ow, kh * kw * cin, f))
    return shapes


def import_seconds(rounds: int) -> float:
    """Best-of-rounds wall time of `import akida_rt` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import akida_rt; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(rounds)
    ]
    return min(runs)


def measure(rounds: int) -> dict[str, float]:
    model = zoo.digits_cnn(seed=0)
    rng = np.random.default_rng(0)
    x100 = rng.integers(0, 256, (BATCH, 32, 32, 1), dtype=np.uint8)
    x1 = x100[:1]
    model.forward(x100)  # warm up (compile, allocate)
    t1 = _best(lambda: model.forward(x1), rounds, 50)
    t100 = _best(lambda: model.forward(x100), rounds, 5)
    operands = [
        (
            rng.integers(0, 16, (m * BATCH, k)).astype(np.float32),
            rng.integers(-7, 8, (k, f)).astype(np.float32),
        )
        for m, k, f in gemm_shapes(model)
    ]
    t_gemm = _best(lambda: [a @ b for a, b in operands], rounds, 5)
    return {
        "samples_per_s_b1": 1 / t1,
        "samples_per_s_b100": BATCH / t100,
        "gemm_limit_samples_per_s": BATCH / t_gemm,
        "import_s": import_seconds(rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    r = measure(args.rounds)
    ratio = r["samples_per_s_b100"] / r["gemm_limit_samples_per_s"]
    rows = [
        ("batch 1", f"{r['samples_per_s_b1']:,.0f}", ""),
        ("batch 100", f"{r['samples_per_s_b100']:,.0f}", "target >= 5,000"),
        ("sgemm limit (same GEMMs)", f"{r['gemm_limit_samples_per_s']:,.0f}", ""),
        ("batch 100 / sgemm limit", f"{ratio:.0%}", "target >= 25%"),
        ("import akida_rt (s)", f"{r['import_s']:.3f}", "target < 0.3 s"),
    ]
    print(f"{'digits CNN, software backend':<28}  {'samples/s':>10}  note")
    for name, value, note in rows:
        print(f"{name:<28}  {value:>10}  {note}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
