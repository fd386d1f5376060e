"""Fidelity of the simulated AKD1000: modelled figures next to the published ones.

Usage: python benchmarks/fidelity.py [--json PATH] [--seed N]

Two architectures with random calibrated weights (akida_rt.zoo) run on the simulated
AKD1000 from akida_rt.devices(), as `akida run` does in the user guide:
- DS-CNN KWS (49x10x1, conv_0 5x5x64, four separable 3x3x64, dense 33), 1 random frame;
- AkidaNet 0.5 at 224x224x3 (the user guide's layer table: conv_0 16 filters ...
  separable_13 512, classifier 1000), 10 random frames.
Published figures (user guide, `akida run`): DS-CNN inference_clk 93,965 for one frame;
AkidaNet 43.48 fps, average 1,021 mW, 23.48 mJ/frame, floor 912.23 mW. Target: each
modelled figure within 2x of the published one.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

import akida_rt
from akida_rt import zoo

PUBLISHED: dict[str, dict[str, float]] = {
    "ds_cnn_kws": {"inference_clk": 93_965, "program_clk": 152_396, "floor_power_mw": 914.03},
    "akidanet_0.5_224": {
        "fps": 43.48,
        "inference_clk": 43_000_636,
        "program_clk": 998_079,
        "avg_power_mw": 1_021.0,
        "min_power_mw": 925.0,
        "max_power_mw": 1_117.0,
        "std_power_mw": 135.76,
        "energy_mj_per_frame": 23.48,
        "floor_power_mw": 912.23,
    },
}
TARGETS = {  # the targets; the other rows are shown for information
    ("ds_cnn_kws", "inference_clk"),
    ("akidanet_0.5_224", "fps"),
    ("akidanet_0.5_224", "avg_power_mw"),
    ("akidanet_0.5_224", "energy_mj_per_frame"),
    ("akidanet_0.5_224", "floor_power_mw"),
}


def measure(model: akida_rt.Model, frames: int, seed: int) -> dict[str, float]:
    """Run `frames` random frames on the simulated AKD1000; the figures `akida run` prints."""
    device = akida_rt.devices()[0]
    device.soc.power_measurement_enabled = True
    model.map(device)
    x = np.random.default_rng(seed).integers(0, 256, (frames, *model.input_shape), np.uint8)
    model.forward(x)
    s = model.statistics
    out = {
        "frames": float(frames),
        "fps": float(s.fps or 0.0),
        "inference_clk": float(s.inference_clk or 0),
        "program_clk": float(s.program_clk or 0),
        "floor_power_mw": float(s.floor_power_mw or 0.0),
    }
    if s.power_mw:
        out["avg_power_mw"] = s.power_mw["avg"]
        out["min_power_mw"] = s.power_mw["min"]
        out["max_power_mw"] = s.power_mw["max"]
        out["std_power_mw"] = s.power_mw["std"]
        out["energy_mj_per_frame"] = float(s.energy_mj_per_frame or 0.0)
    model.map(None)
    return out


def run(seed: int = 0) -> list[dict[str, Any]]:
    """Rows of (model, metric, modelled, published, ratio, target, within_2x)."""
    measured = {
        "ds_cnn_kws": measure(zoo.ds_cnn_kws(seed=seed), 1, seed),
        "akidanet_0.5_224": measure(zoo.akidanet(seed=seed, alpha=0.5), 10, seed),
    }
    rows = []
    for name, figures in measured.items():
        for metric, value in figures.items():
            published = PUBLISHED[name].get(metric)
            ratio = value / published if published else None
            rows.append(
                {
                    "model": name,
                    "metric": metric,
                    "modelled": value,
                    "published": published,
                    "ratio": ratio,
                    "target": (name, metric) in TARGETS,
                    "within_2x": ratio is not None and 0.5 <= ratio <= 2.0,
                }
            )
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = run(args.seed)
    header = f"{'model':<18} {'metric':<20} {'modelled':>12} {'published':>12} {'ratio':>6}  target"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        verdict = ("ok" if r["within_2x"] else "MISS") if r["target"] else ""
        print(
            f"{r['model']:<18} {r['metric']:<20} {_fmt(r['modelled']):>12} "
            f"{_fmt(r['published']):>12} {ratio:>6}  {verdict}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    missed = [r for r in rows if r["target"] and not r["within_2x"]]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
