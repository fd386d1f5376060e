"""`akida stream`: frames or DVS events through a model, via akidad when one answers, else
in-process; live fps, latency and class, then a summary with power and energy."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

SOURCES = (
    "camera:N | VIDEO | IMAGE | DIR | FRAMES.npy | an event file (AEDAT4, RAW EVT2/2.1/3, "
    "DAT, .npy, .csv, N-MNIST .bin) | tcp://HOST:PORT[?format=evt3] | dv://HOST:PORT | "
    "a FIFO | - (RAW on stdin)"
)
REPRESENTATIONS = ["count", "signed", "decay", "surface", "voxel", "histogram"]


def _ints(n: int, what: str) -> Any:
    def parse(text: str) -> tuple[int, ...]:
        parts = text.replace("x", ",").split(",")
        if len(parts) != n or not all(p.strip().isdigit() for p in parts):
            raise argparse.ArgumentTypeError(f"expected {what}, e.g. {','.join(['34'] * n)}")
        return tuple(int(p) for p in parts)

    return parse


def register(sub: Any) -> None:
    p = sub.add_parser("stream", help="stream frames or DVS events through a model")
    p.add_argument("-m", "--model", required=True, help="program file (.akp)")
    p.add_argument("--source", required=True, help=SOURCES)
    framing = p.add_mutually_exclusive_group()
    framing.add_argument("--events-per-frame", type=int, metavar="N",
                         help="event files: N events per frame (default 3000)")  # fmt: skip
    framing.add_argument("--window-us", type=int, metavar="T",
                         help="event files: one frame per T microseconds")  # fmt: skip
    ev = p.add_argument_group("event sources")
    ev.add_argument("--stride-us", type=int, metavar="S",
                    help="time windows start every S us (overlapping when S < --window-us)")  # fmt: skip
    ev.add_argument("--stride-events", type=int, metavar="S",
                    help="event-count windows start every S events")  # fmt: skip
    ev.add_argument("--sensor", type=_ints(2, "W,H"), metavar="W,H",
                    help="the sensor size, for recordings that do not say it")  # fmt: skip
    ev.add_argument("--crop", type=_ints(4, "X,Y,W,H"), metavar="X,Y,W,H",
                    help="the part of the sensor framed")  # fmt: skip
    ev.add_argument("--representation", choices=REPRESENTATIONS, default="count",
                    help="what a window becomes (docs/streaming.md)")  # fmt: skip
    ev.add_argument("--bins", type=int, metavar="N", help="time bins (voxel, histogram)")
    ev.add_argument(
        "--tau-us", type=float, default=50_000.0, help="decay and surface time constant"
    )
    ev.add_argument("--gain", type=float, default=1.0, help="float value scale to uint8")
    ev.add_argument("--denoise-us", type=int, default=0, metavar="T",
                    help="background-activity filter window (0: off)")  # fmt: skip
    ev.add_argument("--refractory-us", type=int, default=0, metavar="T",
                    help="refractory filter period (0: off)")  # fmt: skip
    ev.add_argument("--hot-pixel-hz", type=float, default=0.0, metavar="R",
                    help="drop pixels firing above R Hz in the first 100 ms (0: off)")  # fmt: skip
    ev.add_argument("--realtime", action="store_true",
                    help="play a file at the pace of its timestamps")  # fmt: skip
    ev.add_argument("--stall-s", type=float, default=5.0, help="live sources: a stall after S s")
    ev.add_argument("--reconnect-s", type=float, default=0.0,
                    help="live sources: keep reconnecting for S s after a disconnect or stall")  # fmt: skip
    p.add_argument("--labels", metavar="FILE.npy", help="true class per frame: report accuracy")
    p.add_argument("--policy", choices=["block", "drop-oldest", "drop-newest"], default="block")
    p.add_argument("--window", type=int, default=4, help="frames in flight (default 4)")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (0: all)")
    p.add_argument("--socket", help="akidad socket (default: the usual one)")
    p.add_argument("--embedded", action="store_true", help="run in this process, not via akidad")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip bad frames, words and images instead of stopping")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON line per frame, then a summary")
    p.set_defaults(func=cmd_stream)


def cmd_stream(args: argparse.Namespace) -> int:
    import itertools

    from akida_rt.stream.pipeline import Stream
    from akida_rt.stream.runners import connect
    from akida_rt.stream.sources import EventOptions, open_source

    for name in ("events_per_frame", "window_us", "window", "frames", "stride_us",
                 "stride_events", "bins"):  # fmt: skip
        value = getattr(args, name)
        if value is not None and value < (0 if name == "frames" else 1):
            print(f"akida stream: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    options = EventOptions(
        stride_us=args.stride_us, stride_events=args.stride_events, sensor=args.sensor,
        crop=args.crop, representation=args.representation, bins=args.bins,
        tau_us=args.tau_us, gain=args.gain, denoise_us=args.denoise_us,
        refractory_us=args.refractory_us, hot_pixel_hz=args.hot_pixel_hz,
        realtime=args.realtime, stall_s=args.stall_s, reconnect_s=args.reconnect_s,
    )  # fmt: skip
    runner = connect(args.model, socket=args.socket, embedded=True if args.embedded else None)
    on_error = "skip" if args.skip_errors else "raise"
    from akida_rt.cli.args import load_labels

    labels = load_labels(args.labels) if args.labels else None
    try:
        source = open_source(args.source, runner.input_shape,
                             events_per_frame=args.events_per_frame, window_us=args.window_us,
                             on_error=on_error, options=options)  # fmt: skip
        if args.frames:
            source = itertools.islice(source, args.frames)
        stream = Stream(runner, source, window=args.window, policy=args.policy, on_error=on_error)
        if not args.json and sys.stderr.isatty():
            print(f"streaming {args.source} through {runner.where}", file=sys.stderr)
        correct = 0
        last_draw = 0.0
        r = None
        for r in stream:
            ok = labels is not None and r.seq < len(labels) and int(labels[r.seq]) == r.label
            correct += ok
            if args.json:
                line = {"seq": r.seq, "t_us": r.t_us, "class": r.label,
                        "latency_ms": round(r.latency_s * 1e3, 3), "device": r.device}  # fmt: skip
                if labels is not None:
                    line["correct"] = bool(ok)
                print(json.dumps(line), flush=True)
            elif not sys.stdout.isatty():  # a pipe or file: every frame's class, one per line
                print(f"frame {r.seq}: class {r.label}  latency {r.latency_s * 1e3:.2f} ms")
            elif time.monotonic() - last_draw > 0.1 and sys.stderr.isatty():
                last_draw = time.monotonic()
                st = stream.stats
                sys.stderr.write(f"\r frame {r.seq:6d}  class {r.label:3d}  {st.fps:7.1f} fps  "
                                 f"latency p50 {st.latency_ms(50):6.2f} ms  dropped {st.dropped}")  # fmt: skip
        if r is not None and not args.json and sys.stdout.isatty() and sys.stderr.isatty():
            st = stream.stats  # the last frame too, however short the stream
            sys.stderr.write(f"\r frame {r.seq:6d}  class {r.label:3d}  {st.fps:7.1f} fps  "
                             f"latency p50 {st.latency_ms(50):6.2f} ms  dropped {st.dropped}")  # fmt: skip
        summary = _summary(stream, runner, correct, labels)
    finally:
        runner.close()
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


def _summary(stream: Any, runner: Any, correct: int, labels: Any) -> dict[str, Any]:
    st = stream.stats
    out: dict[str, Any] = {
        "where": runner.where,
        "frames": st.done,
        "dropped": st.dropped,
        "failed": st.failed,
        "fps": round(st.fps, 1),
        "latency_ms_p50": round(st.latency_ms(50), 3),
        "latency_ms_p99": round(st.latency_ms(99), 3),
    }
    if labels is not None and st.done and len(labels) != st.done + st.dropped + st.failed:
        out["accuracy_unavailable"] = (
            f"--labels holds {len(labels)} labels for {st.done + st.dropped + st.failed} frames; "
            "give one label per frame"
        )
    elif labels is not None and st.done:
        out["accuracy"] = round(correct / st.done, 4)
    stats = runner.stats()
    driver = stats.get("driver", stats)  # akidad's device entry, or the model's statistics
    power = driver.get("power_mw")
    if isinstance(power, dict):
        power = power.get("avg")
    if power is not None:
        out["power_mw"] = round(float(power), 2)
    energy = driver.get("energy_per_inference_mj", driver.get("energy_mj_per_frame"))
    if energy is not None:
        out["energy_mj_per_frame"] = round(float(energy), 4)
    return out
