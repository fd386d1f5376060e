"""`akida benchmark`: a batch-size sweep of a program on one device (in-process or akidad).

Per batch size: board fps, host fps, latency percentiles per call, power and energy per
frame of that step alone (akida_rt.model.run_figures); as a table, --json or --csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

import numpy as np

from akida_rt.cli.args import int_range
from akida_rt.cli.output import emit_json, table
from akida_rt.errors import InputError

COLUMNS = ("batch", "frames", "board_fps", "host_fps", "p50_ms", "p90_ms", "p99_ms",
           "power_mw", "energy_mj_per_frame", "inference_clk", "program_clk")  # fmt: skip


def batch_list(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]: whole numbers 1..65536, no repeats."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of whole numbers, e.g. 1,4,16"
        ) from None
    if not values or any(not 1 <= v <= 65536 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"'{text}': give distinct sizes of 1..65536, e.g. 1,4,16")
    return values


def register(sub: Any) -> None:
    b = sub.add_parser("benchmark", help="batch-size sweep: fps, latency, power, mJ/frame")
    b.add_argument("-m", "--model", required=True, help="program file")
    b.add_argument("--batches", type=batch_list, default=[1, 2, 4, 8, 16],
                   help="batch sizes to sweep (default 1,2,4,8,16)")  # fmt: skip
    b.add_argument("--frames", type=int_range(1, 10**7), default=64,
                   help="frames per batch size (default 64)")  # fmt: skip
    b.add_argument("--device", help="device id, URL or index (default: the first)")
    via = b.add_mutually_exclusive_group()
    via.add_argument("--daemon", action="store_true", help="through akidad (must be running)")
    via.add_argument("--no-daemon", action="store_true", help="in this process")
    out = b.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--csv", action="store_true", help="comma-separated rows")
    b.set_defaults(func=cmd_benchmark)


def _step(model: Any, args: argparse.Namespace, x: np.ndarray, batch: int, client: Any,
          ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    from akida_rt.cli import run_cmd

    step = argparse.Namespace(**{**vars(args), "frames": args.frames, "batch": batch,
                                 "duration": None, "json": True})  # fmt: skip
    result = run_cmd._daemon(model, step, x, client) if client else run_cmd._local(model, step, x)
    timing, dev = result["timing"].as_dict(), result["device_run"]
    ms = np.asarray(result["timing"].calls) * 1e3
    row = {
        "batch": batch, "frames": timing["frames"], "board_fps": dev["board_fps"],
        "host_fps": timing["host_fps"],
        "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)), "power_mw": dev["power_mw"],
        "energy_mj_per_frame": dev["energy_mj_per_frame"],
        "inference_clk": dev["inference_clk"], "program_clk": dev["program_clk"],
    }  # fmt: skip
    return row, result["device"]


def cmd_benchmark(args: argparse.Namespace) -> int:
    from akida_rt.cli import run_cmd
    from akida_rt.model.model import Model

    model = Model(args.model)
    if args.frames < max(args.batches):
        raise InputError(
            f"--frames {args.frames} is below the largest batch ({max(args.batches)}): "
            "give at least that many frames"
        )
    x = np.random.default_rng(0).integers(
        0, 2**model.input_bits, (max(args.batches), *model.input_shape), dtype=np.uint8
    )
    client = run_cmd._client(args)
    rows: list[dict[str, Any]] = []
    device: dict[str, Any] = {}
    for batch in args.batches:
        row, device = _step(model, args, x, batch, client)
        rows.append(row)
    via = f"akidad ({client.path})" if client else "in-process"
    if args.json:
        emit_json({"model": args.model, "device": device, "via": via, "rows": rows})
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        sim = " (simulated: board figures modelled)" if device.get("simulated") else ""
        print(f"Benchmark of {model.name} on {device.get('id')}{sim}, via {via}")
        print(f"{args.frames} random frames per batch size; latency is per call (one batch)\n")
        print(table([[_fmt(r[c]) for c in COLUMNS] for r in rows],
                    ["batch", "frames", "board fps", "host fps", "p50 ms", "p90 ms", "p99 ms",
                     "power mW", "mJ/frame", "inference_clk", "program_clk"]))  # fmt: skip
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return str(value)
