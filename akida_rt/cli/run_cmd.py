"""`akida run`: evaluate a program on a device (in-process, or through akidad).

Shows what it ran on (device id, simulated or not), the predictions (class and top-k for
classifiers; `-o` saves the raw outputs), and benchmark figures: frames, host fps, p50/p99
latency per call, and the device's clock fps and power when it measured them.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from akida_rt.cli.args import float_range, int_range, output_file
from akida_rt.cli.output import emit_json
from akida_rt.errors import AkidaError, DaemonError, InputError

log = logging.getLogger(__name__)
SHOWN = 10  # predictions printed (all of them go to --json)


def register(sub: Any) -> None:
    r = sub.add_parser("run", help="run a program on a device: predictions, fps, latency, power")
    r.add_argument("-m", "--model", required=True, help="program file")
    r.add_argument("-i", "--input", help="input: a .npy array (N,H,W,C or H,W,C) or an image")
    r.add_argument("--device", help="device id, URL or index (default: the first)")
    r.add_argument("--frames", type=int_range(1, 10**9),
                   help="frames to run, cycling through the input (default: the input once)")  # fmt: skip
    r.add_argument("--batch", type=int_range(1, 65536),
                   help="frames per call (default: all input frames in one call)")  # fmt: skip
    r.add_argument("--duration", type=float_range(0, 86400, lo_open=True), metavar="S",
                   help="run for S seconds, cycling through the input")  # fmt: skip
    r.add_argument("--top-k", type=int_range(1, 1000), default=5, help="classes shown per frame")
    r.add_argument("-o", "--output", metavar="OUT.npy", help="save the raw (forward) outputs")
    r.add_argument("--plot", metavar="POWER.png",
                   help="draw power over the run's board time, calls shaded (matplotlib)")  # fmt: skip
    via = r.add_mutually_exclusive_group()
    via.add_argument("--daemon", action="store_true", help="run through akidad (must be running)")
    via.add_argument("--no-daemon", action="store_true",
                     help="run in this process even when akidad is running")  # fmt: skip
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=cmd_run)


@dataclass
class Timing:
    """Host-side figures of the calls made."""

    frames: int = 0
    calls: list[float] = field(default_factory=list)  # seconds per call
    wall_s: float = 0.0
    probes: list[dict[str, Any]] = field(default_factory=list)  # device counters per call

    def as_dict(self) -> dict[str, Any]:
        ms = np.asarray(self.calls) * 1e3
        return {
            "frames": self.frames,
            "calls": len(self.calls),
            "seconds": round(self.wall_s, 6),
            "host_fps": self.frames / self.wall_s if self.wall_s > 0 else None,
            "latency_ms": {
                "p50": float(np.percentile(ms, 50)) if len(ms) else None,
                "p99": float(np.percentile(ms, 99)) if len(ms) else None,
            },
        }


def run_frames(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
               args: argparse.Namespace,
               probe: Callable[[], dict[str, Any]] | None = None,
               ) -> tuple[np.ndarray, Timing]:  # fmt: skip
    """Run `x` once (its outputs are returned), then more calls until --frames/--duration."""
    from tqdm import tqdm

    batch = args.batch or len(x)
    total = args.frames or (None if args.duration else len(x))
    timing = Timing()
    outputs: list[np.ndarray] = []
    # An ETA either way: frames left with --frames, seconds left with --duration.
    timed = total is None and bool(args.duration)
    bar = tqdm(total=args.duration if timed else total, unit="s" if timed else "frame",
               delay=2, disable=args.json, leave=False,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [ETA {remaining}]" if timed
               else "{l_bar}{bar}| {n_fmt}/{total_fmt} frames [{rate_fmt}, ETA {remaining}]")  # fmt: skip
    shown = 0.0
    start = time.perf_counter()
    if probe is not None:
        timing.probes.append(probe())
    try:
        while True:
            n = batch if total is None else min(batch, total - timing.frames)
            first = timing.frames % len(x)
            chunk = np.take(x, range(first, first + n), axis=0, mode="wrap")
            t0 = time.perf_counter()
            y = forward(chunk)
            timing.calls.append(time.perf_counter() - t0)
            if probe is not None:
                timing.probes.append(probe())
            if timing.frames < len(x):
                outputs.append(y[: len(x) - timing.frames])
            timing.frames += n
            elapsed = time.perf_counter() - start
            if timed:
                bar.update(min(elapsed, args.duration) - shown)
                shown = min(elapsed, args.duration)
            else:
                bar.update(n)
            if total is not None and timing.frames >= total:
                break
            if args.duration and elapsed >= args.duration:
                break
    finally:
        bar.close()
    timing.wall_s = time.perf_counter() - start
    return np.concatenate(outputs)[: len(x)], timing


def predictions(scores: np.ndarray, k: int, classes: int = 0) -> list[dict[str, Any]] | None:
    """Class and top-k per frame, when the outputs are one score per class; a learning
    program's `classes` group its neurons: a class scores its best neuron."""
    flat = scores.reshape(len(scores), -1)
    if classes and flat.shape[1] % classes == 0:
        flat = flat.reshape(len(flat), classes, -1).max(-1)
    if flat.shape[1] < 2 or scores.ndim != 4 or scores.shape[1:3] != (1, 1):
        return None
    top = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    return [
        {"class": int(t[0]), "top_k": [[int(c), float(row[c])] for c in t]}
        for row, t in zip(flat, top, strict=True)
    ]


def _local(model: Any, args: argparse.Namespace, x: np.ndarray) -> dict[str, Any]:
    from akida_rt.driver.discovery import devices, find_device
    from akida_rt.model import run_figures

    device = find_device(args.device) if args.device else devices()[0]
    with device.claim():
        model.map(device)
        before = run_figures.from_device_stats(device.stats())
        probe = (
            (lambda: run_figures.from_device_stats(device.stats()))
            if getattr(args, "plot", None)
            else None
        )
        y, timing = run_frames(model.forward, x, args, probe)
        run = run_figures.delta(before, run_figures.from_device_stats(device.stats()))
        stats = model.statistics
    info = device.describe()
    return {"via": "in-process", "device": info, "y": y, "timing": timing, "statistics": stats,
            "device_run": run, "learning": model.learning_info()}  # fmt: skip


def _daemon(model: Any, args: argparse.Namespace, x: np.ndarray, client: Any) -> dict[str, Any]:
    from akida_rt.model import run_figures

    def counters() -> dict[str, dict[str, Any]]:
        return {d["id"]: d for d in client.stats()["devices"]}

    with client:
        remote = client.load(model.to_bytes(), device=args.device or "")
        snapshot = counters()  # every device: the first call picks one
        probe = None
        if getattr(args, "plot", None):
            probe = lambda: {k: run_figures.from_daemon_device(d) for k, d in counters().items()}  # noqa: E731
        y, timing = run_frames(remote.forward, x, args, probe)
        if timing.probes:
            timing.probes = [p.get(remote.last_device, {}) for p in timing.probes]
        listed = {d["id"]: d for d in client.devices()}
        info = listed.get(remote.last_device, {"id": remote.last_device, "simulated": None})
        dev_stats = counters().get(info["id"], {})
        before = run_figures.from_daemon_device(snapshot.get(info["id"], {}))
        run = run_figures.delta(before, run_figures.from_daemon_device(dev_stats))
        stats = run_figures.to_statistics(
            run, f"{info['id']}{', simulated' if info.get('simulated') else ''}, via akidad"
        )
        learns = model.learning is not None and model.learning.enabled
        learned = remote.learned_state()[0] if learns else None  # akidad's durable state
        remote.unload()
    return {"via": f"akidad ({client.path})", "device": info, "y": y, "timing": timing,
            "statistics": stats, "device_run": run, "daemon_device": dev_stats,
            "learning": learned}  # fmt: skip


def _client(args: argparse.Namespace) -> Any:
    """A connection to akidad: required with --daemon, tried without, never with --no-daemon."""
    if args.no_daemon:
        return None
    from akida_rt.client.client import Client

    try:
        return Client(name="akida-run", retry_s=0)
    except (AkidaError, OSError) as exc:
        if args.daemon:
            raise DaemonError(f"--daemon: {exc}") from None
        log.info("no akidad (%s): running in this process", exc)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    from akida_rt.cli.device_cmds import load_input
    from akida_rt.cli.model_cmds import model_description
    from akida_rt.model.model import Model

    if args.output:
        output_file(args.output)
        if not args.output.endswith(".npy"):
            raise InputError(f"-o {args.output}: raw outputs are saved as .npy; name it OUT.npy")
    if getattr(args, "plot", None):
        from akida_rt.plots import check_png

        check_png("--plot", args.plot)
    model = Model(args.model)
    if args.input:
        x, source = load_input(args.input, model.input_shape), args.input
    else:
        top = 2**model.input_bits
        x = np.random.default_rng().integers(0, top, (1, *model.input_shape), dtype=np.uint8)
        source = "random"
    client = _client(args)
    result = _daemon(model, args, x, client) if client else _local(model, args, x)
    y = result["y"]
    if args.output:
        np.save(args.output, y)
    from akida_rt.stream.runners import learned_classes

    preds = predictions(model.dequantize(y), args.top_k, learned_classes(model))
    report = _report(model, result, source, preds, args)
    if args.json:
        report["model"] = model_description(model)
        emit_json(report)
        return 0
    if client is None:
        model.summary()
        print()
    _print(report, result)
    if args.plot:
        _plot_power(result["timing"].probes, args.plot, report)
    return 0


def _plot_power(probes: list[dict[str, Any]], path: str, report: dict[str, Any]) -> None:
    """Power per call against the board's busy time; each call's inference span shaded."""
    from akida_rt.model import run_figures
    from akida_rt.plots import power

    times, mw, windows, t = [0.0], [], [], 0.0
    for before, after in itertools.pairwise(probes):
        step = run_figures.delta(before, after)
        load, infer = step["load_s"] or 0.0, step["infer_s"] or 0.0
        windows.append((t + load, t + load + infer))
        t += step["board_s"]
        times.append(t)
        mw.append(step["power_mw"] if step["power_mw"] is not None else float("nan"))
    if not mw or all(v != v for v in mw):
        raise InputError(f"--plot {path}: {report.get('power_unavailable', 'no power measured')}")
    power(times, [*mw, mw[-1]], windows, path,
          f"{report['device'].get('id')}: power per call over {len(mw)} call(s), "
          "inference spans shaded")  # fmt: skip
    print(f"wrote {path}: power over {t:.4f} s of board time, {len(mw)} call(s)")


def _report(model: Any, result: dict[str, Any], source: str, preds: Any,
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    dev = result["device"]
    out: dict[str, Any] = {
        "via": result["via"],
        "device": dev,
        "input": source,
        "output": args.output,
        "predictions": preds,
        "run": result["timing"].as_dict(),
        "learning": result.get("learning"),  # None: the program does not learn
    }
    stats, dev_run = result["statistics"], result["device_run"]
    out["statistics"] = stats.as_dict()
    out["device_run"] = dev_run  # this run's device counters (akida_rt.model.run_figures)
    out["run"]["board_fps"] = dev_run["board_fps"]  # frames over the board's inferring time
    if "daemon_device" in result:
        out["daemon_device"] = result["daemon_device"]
    if dev_run["power_mw"] is None:
        out["power_unavailable"] = (
            "this device reports no energy counter (a board without a power monitor)"
            if dev_run["energy_mj"] is None
            else "the device spent no measurable time loading or inferring"
        )
    return out


def _print(report: dict[str, Any], result: dict[str, Any]) -> None:
    dev, run = report["device"], report["run"]
    sim = " (simulated)" if dev.get("simulated") else ""
    print(f"Device: {dev.get('id')}{sim}, via {report['via']}")
    if report["input"] == "random":
        print("No input provided, using random data.")
    preds = report["predictions"]
    for i, p in enumerate(preds[:SHOWN] if preds else []):
        top = ", ".join(f"{c}: {s:.3f}" for c, s in p["top_k"])
        print(f"frame {i}: class {p['class']}  (top {len(p['top_k'])}: {top})")
    if preds and len(preds) > SHOWN:
        print(f"... {len(preds) - SHOWN} more (all in --json)")
    if report["output"]:
        print(f"raw outputs saved to {report['output']}")
    learned = report["learning"]
    if learned is None:
        print("Learned state: none (the program is not compiled for edge learning)")
    else:
        print(f"Learned state: {learned['samples']} samples seen, {learned['neurons_learned']}/"
              f"{learned['neurons']} neurons learned, {learned['num_classes']} classes")  # fmt: skip
    print()
    lat, dr = run["latency_ms"], report["device_run"]
    where = "modelled board" if dev.get("simulated") else "board"
    print(f"Frames: {run['frames']} in {run['calls']} call(s), {run['seconds']:.3f} s on this "
          f"host; latency per call p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms")  # fmt: skip
    fps = f"{dr['board_fps']:.2f} fps" if dr["board_fps"] else "fps n/a"
    synops = (dr["synops"] or 0) / run["frames"] if run["frames"] else 0
    print(f"Device: {fps} ({where} time inferring: {dr['infer_s'] or 0:.4f} s); "
          f"inference_clk {dr['inference_clk']}, program_clk {dr['program_clk']}, "
          f"SynOps/frame {synops:,.0f}")  # fmt: skip
    if dr["power_mw"] is not None:
        print(f"Power: {dr['power_mw']:.2f} mW average over {dr['board_s']:.4f} s of {where} "
              f"time, {dr['energy_mj_per_frame']:.4f} mJ/frame")  # fmt: skip
    else:
        print(f"Power: not measured: {report['power_unavailable']}")
    sys.stdout.flush()
