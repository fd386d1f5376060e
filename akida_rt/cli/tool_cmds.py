"""`akida quantize`, `akida convert`, `akida check`, `akida report`: the toolchain commands.

TensorFlow is imported inside the command functions only (and `report` on a program file
never imports it), so `akida --help` stays fast and works without the [tools] extra.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from akida_rt.cli.output import emit_json, table

DEVICES = ["AKD1000", "TwoNodesIP"]


def register(sub: Any) -> None:
    p = sub.add_parser("quantize", help="quantize a float Keras model (calibration, optional QAT)")
    p.add_argument("-m", "--model", required=True, help="float Keras model (.keras)")
    p.add_argument("-o", "--output", required=True, help="quantized Keras model (.keras)")
    p.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    p.add_argument("--samples", type=int, default=512, help="calibration samples")
    p.add_argument("--percentile", type=float, default=99.99, help="activation range percentile")
    p.add_argument("--weight-bits", type=int, default=4, choices=[1, 2, 4, 8])
    p.add_argument("--activation-bits", type=int, default=4, choices=[1, 2, 4])
    p.add_argument("--input-weight-bits", type=int, default=8, choices=[1, 2, 4, 8])
    p.add_argument("--epochs", type=int, default=0, help="quantization-aware fine-tuning epochs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("convert", help="convert a quantized Keras model to a program file")
    p.add_argument("-m", "--model", required=True, help="quantized Keras model (.keras)")
    p.add_argument("-o", "--output", required=True, help="program file (.akp)")
    p.add_argument(
        "--input-scaling",
        nargs=2,
        type=float,
        metavar=("A", "B"),
        help="data_train = (data_raw - B) / A, when the model has no Rescaling layer",
    )
    p.add_argument("--map", choices=DEVICES, help="store a mapping for this device")
    p.add_argument("--hw-only", action="store_true", help="refuse software or split mappings")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("check", help="check a Keras model's Akida compatibility")
    p.add_argument("-m", "--model", required=True, help="Keras model (.keras)")
    p.add_argument("--stage", choices=["float", "quantized"], help="default: from the layers")
    p.add_argument("--device", default="AKD1000", choices=DEVICES, help="mapping limits")
    p.add_argument("--hw-only", action="store_true", help="several sequences are an error")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("report", help="fit report: NPs, memory, SynOps, sequences, energy")
    p.add_argument("-m", "--model", required=True, help="program file (.akp) or Keras model")
    p.add_argument("--device", default="AKD1000", choices=DEVICES)
    p.add_argument("--mode", default="AllNps", choices=["AllNps", "Minimal", "HwPr"])
    p.add_argument("--dataset", choices=["digits", "mnist"], help="measure SynOps on test data")
    p.add_argument("--samples", type=int, default=200, help="frames to measure SynOps on")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_report)


@contextmanager
def _bar(total: int, desc: str, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A tqdm progress bar on stderr (silent with --json)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, disable=quiet, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


def _load_keras(path: str) -> Any:
    from akida_rt.tools.quantized_layers import load_model

    return load_model(path)


def cmd_quantize(args: argparse.Namespace) -> int:
    from akida_rt.tools import datasets, training
    from akida_rt.tools.post_training import quantize_model

    data = datasets.load(args.dataset)
    model = _load_keras(args.model)
    samples = data.x_train[: args.samples]
    with _bar(len(samples), "calibrating", args.json) as progress:
        qmodel = quantize_model(
            model,
            samples,
            weight_bits=args.weight_bits,
            activation_bits=args.activation_bits,
            input_weight_bits=args.input_weight_bits,
            percentile=args.percentile,
            progress=progress,
        )
    if args.epochs:
        steps = args.epochs * -(-len(data.x_train) // 32)
        with _bar(steps, "fine-tuning", args.json) as progress:
            training.fit(
                qmodel,
                data.x_train,
                data.y_train,
                epochs=args.epochs,
                learning_rate=2e-4,
                augment=2 if data.name == "digits" else 0,
                progress=progress,
            )
    acc = training.accuracy(training.keras_outputs(qmodel, data.x_test), data.y_test)
    qmodel.save(args.output)
    result = {"output": args.output, "dataset": data.name, "test_accuracy": acc}
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {args.output}; quantized Keras accuracy on {data.name} test: {acc:.4f}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from akida_rt.hardware import spec_by_name
    from akida_rt.tools.converter import convert

    model = _load_keras(args.model)
    device = spec_by_name(args.map) if args.map else None
    scaling = tuple(args.input_scaling) if args.input_scaling else None
    program = convert(model, input_scaling=scaling, device=device, hw_only=args.hw_only)  # type: ignore[arg-type]
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
    from akida_rt.hardware import spec_by_name
    from akida_rt.tools.compatibility import check_model

    model = _load_keras(args.model)
    stage = args.stage or (
        "quantized"
        if any(type(ly).__name__.startswith("Quantized") for ly in model.layers)
        else "float"
    )
    issues = check_model(model, stage=stage, device=spec_by_name(args.device), hw_only=args.hw_only)
    failed = any(i.severity == "error" for i in issues)
    if args.json:
        emit_json({"stage": stage, "ok": not failed, "issues": [i.as_dict() for i in issues]})
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
    from akida_rt.hardware import spec_by_name
    from akida_rt.mapping import MapMode
    from akida_rt.model import Model
    from akida_rt.tools.report import fit_report, report_table

    if args.model.endswith(".keras"):
        from akida_rt.tools.converter import convert

        program = convert(_load_keras(args.model))
    else:
        program = Model(args.model)
    samples = None
    if args.dataset:
        from akida_rt.tools import datasets

        samples = datasets.load(args.dataset).x_test[: args.samples]
    report = fit_report(program, spec_by_name(args.device), samples, mode=MapMode(args.mode))
    if args.json:
        emit_json(report)
    else:
        print(report_table(report))
    return 0
