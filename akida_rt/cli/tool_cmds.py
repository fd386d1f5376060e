"""`akida quantize`, `akida convert`, `akida check`, `akida report`: the toolchain commands.

TensorFlow is imported inside the command functions only (quietly unless -v; `report` on a
program file never imports it), so `akida --help` stays fast and works without the [tools]
extra, whose absence is one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from akida_rt.cli.args import float_range, input_file, int_range, output_file
from akida_rt.cli.output import emit_json, table
from akida_rt.cli.toolchain import import_tensorflow, load_keras, needs_tools
from akida_rt.errors import AkidaError, ToolchainError

DEVICES = ["AKD1000", "TwoNodesIP"]
DATA_HELP = "digits, mnist, keras:NAME, a .npy/.npz file or a folder of images"


def register(sub: Any) -> None:
    p = sub.add_parser("quantize", help="quantize a float Keras model (calibration, optional QAT)")
    p.add_argument("-m", "--model", required=True, help="float Keras model (.keras)")
    p.add_argument("-o", "--output", required=True, help="quantized Keras model (.keras)")
    p.add_argument("--dataset", default="digits", metavar="DATA",
                   help=f"training and test data: {DATA_HELP} (default: digits)")  # fmt: skip
    p.add_argument("--calibration", metavar="DATA",
                   help=f"calibration images ({DATA_HELP}; default: --dataset)")  # fmt: skip
    p.add_argument("--samples", type=int_range(1, 1_000_000), default=512,
                   help="calibration samples (default 512)")  # fmt: skip
    p.add_argument("--percentile", type=float_range(0, 100, lo_open=True), default=99.99,
                   help="activation range percentile, in (0, 100] (default 99.99)")  # fmt: skip
    p.add_argument("--weight-bits", type=int, default=4, choices=[1, 2, 4, 8])
    p.add_argument("--activation-bits", type=int, default=4, choices=[1, 2, 4])
    p.add_argument("--layer-bits", type=_layer_bits, action="append", default=[],
                   metavar="BLOCK=BITS",
                   help="one block's activation bits (1, 2 or 4), by its conv/dense or ReLU "
                        "name; repeatable. BLOCK=1 makes a spike generator for an "
                        "edge-learning head")  # fmt: skip
    p.add_argument("--input-weight-bits", type=int, default=8, choices=[1, 2, 4, 8])
    p.add_argument("--epochs", type=int_range(0, 10_000), default=0,
                   help="quantization-aware fine-tuning epochs (needs labels)")  # fmt: skip
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="training seed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=needs_tools(cmd_quantize))

    p = sub.add_parser("convert", help="convert a quantized Keras model to a program file")
    p.add_argument("-m", "--model", required=True, help="quantized Keras model (.keras)")
    p.add_argument("-o", "--output", required=True, help="program file (.akp)")
    p.add_argument(
        "--input-scaling",
        nargs=2,
        type=float_range(),
        metavar=("A", "B"),
        help="data_train = (data_raw - B) / A, when the model has no Rescaling layer",
    )
    p.add_argument("--map", choices=DEVICES, help="store a mapping for this device")
    p.add_argument("--hw-only", action="store_true", help="refuse software or split mappings")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=needs_tools(cmd_convert))

    p = sub.add_parser("check", help="check a Keras model's Akida compatibility")
    p.add_argument("-m", "--model", required=True, help="Keras model (.keras)")
    p.add_argument("--stage", choices=["float", "quantized"], help="default: from the layers")
    p.add_argument("--device", default="AKD1000", choices=DEVICES, help="mapping limits")
    p.add_argument("--hw-only", action="store_true", help="several sequences are an error")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=needs_tools(cmd_check))

    p = sub.add_parser("report", help="fit report: NPs, memory, SynOps, sequences, energy")
    p.add_argument("-m", "--model", required=True, help="program file (.akp) or Keras model")
    p.add_argument("--device", default="AKD1000", choices=DEVICES)
    p.add_argument("--mode", default="AllNps", choices=["AllNps", "Minimal", "HwPr"])
    p.add_argument("--dataset", metavar="DATA", help=f"measure SynOps on images: {DATA_HELP}")
    p.add_argument("--samples", type=int_range(1, 1_000_000), default=200,
                   help="frames to measure SynOps on (default 200)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=needs_tools(cmd_report))


@contextmanager
def _bar(total: int, desc: str, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A tqdm progress bar on stderr (silent with --json)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, disable=quiet, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


@contextmanager
def _epoch_bars(epochs: int, steps: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """One tqdm bar per training epoch (`steps` batches each), kept on screen when done."""
    from tqdm import tqdm

    state: dict[str, Any] = {"epoch": 0, "bar": None}

    def update(n: int) -> None:
        bar = state["bar"]
        if bar is None or bar.n >= steps:
            if bar is not None:
                bar.close()
            state["epoch"] += 1
            bar = state["bar"] = tqdm(total=steps, desc=f"epoch {state['epoch']}/{epochs}",
                                      disable=quiet, unit="batch")  # fmt: skip
        bar.update(n)

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].close()


def _one_line(exc: Exception, command: str) -> ToolchainError:
    """A multi-line toolchain refusal as one line: its first problem and where the rest are."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    head = lines[0].rstrip(":") if lines else type(exc).__name__
    if len(lines) <= 1:
        return ToolchainError(head)
    more = f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""
    return ToolchainError(f"{head}: {lines[1]}{more}; every problem: {command}")


def _layer_bits(text: str) -> tuple[str, int]:
    name, sep, bits = text.rpartition("=")
    if not sep or not name or bits not in ("1", "2", "4"):
        raise argparse.ArgumentTypeError(f"'{text}': give BLOCK=BITS with BITS 1, 2 or 4")
    return name, int(bits)


def cmd_quantize(args: argparse.Namespace) -> int:
    import_tensorflow(args.verbose)
    from akida_rt.tools import data_files, training
    from akida_rt.tools.post_training import quantize_model

    output_file(args.output)
    model = load_keras(input_file(args.model, "Keras model (.keras)"))
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    data = data_files.load_data(args.dataset, shape)  # type: ignore[arg-type]
    calib = data_files.load_data(args.calibration, shape) if args.calibration else data  # type: ignore[arg-type]
    samples = calib.x[: args.samples]
    data_files.check_shape(samples, shape, f"--calibration {calib.source}")
    if args.epochs:
        if data.y is None:
            raise ToolchainError(f"--dataset {data.source}: fine-tuning (--epochs) needs labels; "
                                 "give an .npz with y or a folder with one subfolder per class")  # fmt: skip
        data_files.check_shape(data.x, shape, f"--dataset {data.source}")
    try:
        with _bar(len(samples), "calibrating", args.json) as progress:
            qmodel = quantize_model(
                model,
                samples,
                weight_bits=args.weight_bits,
                activation_bits=args.activation_bits,
                layer_activation_bits=dict(args.layer_bits),
                input_weight_bits=args.input_weight_bits,
                percentile=args.percentile,
                progress=progress,
            )
    except ValueError as exc:
        raise _one_line(exc, f"akida check -m {args.model} --stage float") from None
    if args.epochs:
        assert data.y is not None
        with _epoch_bars(args.epochs, -(-len(data.x) // 32), args.json) as progress:
            training.fit(qmodel, data.x, data.y, epochs=args.epochs, learning_rate=2e-4,
                         seed=args.seed, augment=2 if data.source == "digits" else 0,
                         progress=progress)  # fmt: skip
    acc = None
    if data.x_test is not None and data.y_test is not None:
        data_files.check_shape(data.x_test, shape, f"--dataset {data.source}")
        acc = training.accuracy(training.keras_outputs(qmodel, data.x_test), data.y_test)
    qmodel.save(args.output)
    result = {"output": args.output, "dataset": data.source, "test_accuracy": acc}
    if args.json:
        emit_json(result)
    elif acc is None:
        print(f"wrote {args.output} (no labelled test split in {data.source} to measure accuracy)")
    else:
        print(f"wrote {args.output}; quantized Keras accuracy on {data.source} test: {acc:.4f}")
    if not args.json:
        print(f"next: akida convert -m {args.output} -o PROGRAM.akp", file=sys.stderr)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    import_tensorflow(args.verbose)
    from akida_rt.mapping.hardware import spec_by_name
    from akida_rt.tools.converter import convert

    output_file(args.output)
    model = load_keras(input_file(args.model, "Keras model (.keras)"))
    device = spec_by_name(args.map) if args.map else None
    scaling = tuple(args.input_scaling) if args.input_scaling else None
    if scaling is not None and scaling[0] == 0:
        raise ToolchainError("--input-scaling A B: A must not be 0 (data_train = (raw - B) / A)")
    try:
        program = convert(model, input_scaling=scaling, device=device, hw_only=args.hw_only)  # type: ignore[arg-type]
    except AkidaError as exc:
        hint = f"akida check -m {args.model} --stage quantized" + (
            " --hw-only" if args.hw_only else ""
        )
        raise _one_line(exc, hint) from None
    program.save(args.output)
    result = {
        "output": args.output,
        "layers": len(program.layers),
        "sequences": len(program.sequences),
        "mapped": args.map,
        "input_scaling": program.input_scaling,
    }
    if args.json:
        emit_json(result)
    else:
        print(
            f"wrote {args.output}: {len(program.layers)} layers, {len(program.sequences)} sequence(s)"
        )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import_tensorflow(args.verbose)
    from akida_rt.mapping.hardware import spec_by_name
    from akida_rt.tools.compatibility import check_model

    model = load_keras(input_file(args.model, "Keras model (.keras)"))
    stage = args.stage or (
        "quantized"
        if any(type(ly).__name__.startswith("Quantized") for ly in model.layers)
        else "float"
    )
    issues = check_model(model, stage=stage, device=spec_by_name(args.device), hw_only=args.hw_only)
    failed = any(i.severity == "error" for i in issues)
    if args.json:
        emit_json({"stage": stage, "ok": not failed, "issues": [i.as_dict() for i in issues]})
    elif issues and not sys.stdout.isatty():  # a pipe or file: whole lines, nothing cut
        for i in issues:
            print(f"{i.severity}: {i.layer}: {i.message}\n    fix: {i.fix}")
    elif issues:
        print(
            table(
                [[i.severity, i.layer, i.message, i.fix] for i in issues],
                ["severity", "layer", "problem", "fix"],
            )
        )
    else:
        print(f"{args.model}: compatible with {args.device} (stage {stage})")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from akida_rt.mapping.hardware import spec_by_name
    from akida_rt.mapping.mapper import MapMode
    from akida_rt.model.model import Model
    from akida_rt.tools.report import fit_report, report_table

    input_file(args.model, "program (.akp) or Keras model (.keras)")
    with open(args.model, "rb") as fh:
        is_program = fh.read(8) == b"AKIDARTP"
    if is_program:
        program = Model(args.model)
    else:
        import_tensorflow(args.verbose)
        from akida_rt.tools.converter import convert

        try:
            program = convert(load_keras(args.model))
        except AkidaError as exc:
            raise _one_line(exc, f"akida check -m {args.model} --stage quantized") from None
    samples = None
    if args.dataset:
        from akida_rt.tools import data_files

        data = data_files.load_data(args.dataset, program.input_shape)
        samples = data.x[: args.samples]
        data_files.check_shape(samples, program.input_shape, f"--dataset {data.source}")
    report = fit_report(program, spec_by_name(args.device), samples, mode=MapMode(args.mode))
    if args.json:
        emit_json(report)
    else:
        print(report_table(report))
    return 0
