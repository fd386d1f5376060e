"""`akida learn`: edge learning on a device through akidad, and the learned state's
export, import, reset and info (durable in akidad, per program, device and user)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from akida_rt.cli.args import int_range
from akida_rt.cli.output import emit_json

ACTIONS = ("export", "import", "reset", "info")
CHUNK = 32  # samples per fit request (progress is shown per chunk)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "learn",
        help="learn samples on a device (through akidad); export|import|reset|info its state",
        description="akida learn -m PROGRAM --label L SAMPLES.npy | "
        "akida learn export -m PROGRAM -o STATE | akida learn import -m PROGRAM -i STATE | "
        "akida learn reset|info -m PROGRAM",
    )
    p.add_argument("target", help="SAMPLES.npy (uint8 NHWC), or export, import, reset, info")
    p.add_argument("-m", "--model", required=True, help="program file compiled for learning")
    one = p.add_mutually_exclusive_group()
    one.add_argument("--label", type=int_range(0), help="the class of every sample")
    one.add_argument("--labels", help=".npy file of one label per sample")
    p.add_argument("-o", "--output", help="export: write the state here")
    p.add_argument("-i", "--input", help="import: the exported state file")
    p.add_argument("--device", default="", help="device id (default: akidad chooses)")
    p.add_argument("--socket", type=Path, help="daemon socket (default: found)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_learn)


def cmd_learn(args: argparse.Namespace) -> int:
    """Check everything local (program, samples, labels, files) before reaching akidad."""
    import numpy as np

    from akida_rt.client.client import Client
    from akida_rt.errors import InputError
    from akida_rt.format.program import read_file

    program = read_file(args.model)
    data = b""
    if args.target == "import":
        if not args.input:
            raise InputError("learn import: give -i FILE, the exported state file")
        if not Path(args.input).is_file():
            raise InputError(f"learn import -i {args.input}: no such file; give the file "
                             "`akida learn export -o FILE` wrote")  # fmt: skip
        data = Path(args.input).read_bytes()
    elif args.target == "export" and not args.output:
        raise InputError("learn export: give -o FILE for the exported state")
    elif args.target not in ACTIONS:
        x = _samples(args.target)
        if args.labels:
            from akida_rt.cli.args import load_labels

            labels: Any = load_labels(args.labels)
        elif args.label is not None:
            labels = np.full(x.shape[0], args.label)
        else:
            labels = None
        if labels is not None and len(labels) != x.shape[0]:
            raise InputError(f"{args.labels}: {len(labels)} labels for {x.shape[0]} samples")
    with Client(args.socket, name="akida learn") as client:
        model = client.load(program, device=args.device)
        if args.target in ACTIONS:
            return _state_action(args, model, data)
        _fit(model, x, labels, quiet=args.json)
        info, _ = model.learned_state()
    _show(args, {"action": "learn", "samples_sent": int(x.shape[0]), "state": info})
    return 0


def _samples(path: str) -> Any:
    import numpy as np

    from akida_rt.errors import InputError

    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a .npy array ({exc})") from None
    if x.ndim == 3:
        x = x[None]
    if x.dtype != np.uint8 or x.ndim != 4:
        raise InputError(f"{path}: samples must be uint8 NHWC, got {x.dtype} {x.shape}")
    return x


def _fit(model: Any, x: Any, labels: Any, quiet: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=x.shape[0], unit="sample", desc="learning", file=sys.stderr,
              disable=quiet or x.shape[0] <= CHUNK, leave=False) as bar:  # fmt: skip
        for i in range(0, x.shape[0], CHUNK):
            part = None if labels is None else labels[i : i + CHUNK]
            model.fit(x[i : i + CHUNK], part)
            bar.update(min(CHUNK, x.shape[0] - i))


def _state_action(args: argparse.Namespace, model: Any, data: bytes) -> int:
    info, blob = model.learned_state(args.target, data)
    result: dict[str, Any] = {"action": args.target, "state": info}
    if args.target == "export":
        from akida_rt.format.program import atomic_write

        atomic_write(args.output, blob)
        result["output"], result["bytes"] = args.output, len(blob)
    _show(args, result)
    return 0


def _show(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        emit_json(result)
        return
    s = result["state"]
    print(
        f"{result['action']}: {s.get('samples', 0)} samples learned, "
        f"{s.get('neurons_learned', 0)}/{s.get('neurons', 0)} neurons, "
        f"{s.get('num_classes', 0)} classes, num_weights {s.get('num_weights', 0)}"
        + (f"; wrote {result['output']} ({result['bytes']} bytes)" if "output" in result else "")
    )
