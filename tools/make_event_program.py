"""The event-model example: train a small CNN on N-MNIST-style event-count frames of real
digits, convert it, and let `akida stream` measure it on a held-out synthetic recording.

    .venv/bin/python -m akida_rt.tools.make_event_program [--dataset digits|mnist]
        [--output PATH] [--workdir DIR] [--seed N]

Steps: event-count frames of every digit through simulated saccades, each training digit
seen by `--copies` cameras drawn from tools/event_augment.TRAIN (contrast threshold, event
rate kept, background rate, hot pixels: 1,900 to 14,000 events a digit); the digits CNN on 34x34x1
inputs trained in float, quantized (8-bit input weights, 4/4 bits), fine-tuned and
converted (~2 minutes) to the v1 form AKD1000 binaries carry; the held-out test digits under
event_augment.HELD_OUT's other settings (program accuracy); the test digits, never trained on, written as one EVT3 recording
with their labels; then `akida stream --window-us 310000 --labels` (one frame per digit)
through akidad when one answers, else in-process. Writes akida_rt/data/dvs_digits_cnn.akp
by default (the program `make demo` streams DVS events through).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "akida_rt" / "data" / "dvs_digits_cnn.akp"
TEST_SEED = 10**6  # event_datasets.load_event_digits's test seeds: the recording repeats them


def stream_accuracy(program: Path, recording: Path, labels: Path) -> dict[str, object]:
    """`akida stream` on the recording, one frame per digit: its summary (with accuracy)."""
    from akida_rt.tools.event_datasets import PRESENTATION_US

    cmd = [sys.executable, "-m", "akida_rt", "stream", "-m", str(program), "--source",
           str(recording), "--window-us", str(PRESENTATION_US), "--labels", str(labels),
           "--json"]  # fmt: skip
    print("$", " ".join(cmd[2:]))
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"akida stream failed: {out.stderr.strip()}")
    summary: dict[str, object] = json.loads(out.stdout.splitlines()[-1])["summary"]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--workdir", type=Path, default=Path("event_example"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, default=2, help="augmented cameras per digit")
    parser.add_argument("--plain", action="store_true", help="no augmentation (the old model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from akida_rt.tools import datasets, models, pipelines
    from akida_rt.tools.datasets import Dataset
    from akida_rt.tools.event_augment import HELD_OUT, TRAIN, varied_frames
    from akida_rt.tools.event_datasets import FRAME_SHAPE, SENSOR, load_event_digits

    from akida_rt.stream.evt3 import write_evt3
    from akida_rt.stream.synthetic import saccade_recording

    images = datasets.load(args.dataset, seed=args.seed)
    if args.plain:
        data = load_event_digits(args.dataset, seed=args.seed)
    else:  # event-rate and sensor-noise augmentation: `copies` cameras per training digit
        xs, ns = zip(*(varied_frames(images.x_train, TRAIN, args.seed + k * 10**5)
                       for k in range(args.copies)), strict=True)  # fmt: skip
        counts = np.concatenate(ns)
        print(f"training events per sample: min {counts.min()}, median {int(np.median(counts))}, "
              f"max {counts.max()} ({counts.max() / counts.min():.1f}x spread)")  # fmt: skip
        xte, _ = varied_frames(images.x_test, TRAIN, TEST_SEED + args.seed)
        data = Dataset(f"{args.dataset}-events-varied", np.concatenate(xs),
                       np.tile(images.y_train, args.copies), xte, images.y_test)  # fmt: skip
    print(f"{data.name}: {len(data.x_train)} train / {len(data.x_test)} test event-count frames "
          f"{FRAME_SHAPE}, mean count {data.x_train.mean():.1f}")  # fmt: skip
    result = pipelines.run_pipeline(
        lambda: models.digits_cnn(input_shape=FRAME_SHAPE, seed=args.seed),
        data,
        pipelines.Recipe(),
        seed=args.seed,
    )
    result.program.name = "dvs_digits_cnn"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result.program.save(args.output)
    print(f"wrote {args.output}: float {result.float_accuracy:.4f}, quantized Keras "
          f"{result.keras_accuracy:.4f}, program {result.program_accuracy:.4f} on the test "
          "frames")  # fmt: skip
    from akida_rt.tools.training import accuracy, program_outputs

    report = {"test": round(result.program_accuracy, 4)}
    for name, var in HELD_OUT.items():
        x, n = varied_frames(images.x_test, var, 2 * TEST_SEED + args.seed)
        report[name] = round(accuracy(program_outputs(result.program, x), images.y_test), 4)
        print(f"held-out {name}: {len(x)} digits, median {int(np.median(n))} events, "
              f"program accuracy {report[name]:.4f}")  # fmt: skip
    print(json.dumps({"held_out_accuracy": report}))
    args.workdir.mkdir(parents=True, exist_ok=True)
    events, _ = saccade_recording(images.x_test[..., 0], seed=TEST_SEED + args.seed)
    recording, labels = args.workdir / "test_digits.raw", args.workdir / "test_labels.npy"
    write_evt3(recording, events, *SENSOR)
    np.save(labels, images.y_test)
    print(f"held-out recording {recording}: {len(images.y_test)} test digits, "
          f"{len(events):,} events")  # fmt: skip
    summary = stream_accuracy(args.output, recording, labels)
    print(json.dumps(summary))
    print(f"akida stream accuracy on the held-out recording: {summary.get('accuracy')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
