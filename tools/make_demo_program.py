"""Regenerate the demo program akida_rt/data/digits_cnn.akp with this toolchain.

    .venv/bin/python -m akida_rt.tools.make_demo_program [--output PATH] [--seed N]

Trains the digits CNN (float, BN + ReLU6), quantizes it (8-bit input weights, 4-bit
weights and activations, percentile calibration), fine-tunes it, converts it, and checks
that the program agrees with the quantized Keras model before writing it (~1 minute).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "akida_rt" / "data" / "digits_cnn.akp"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from akida_rt.tools import pipelines

    result = pipelines.digits(seed=args.seed)
    if result.agreement.argmax < 0.995:
        print(f"refusing to write: agreement {result.agreement}", file=sys.stderr)
        return 1
    result.program.name = "digits_cnn"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result.program.save(args.output)
    print(
        f"wrote {args.output} ({args.output.stat().st_size} bytes): float {result.float_accuracy:.4f}, "
        f"quantized Keras {result.keras_accuracy:.4f}, program {result.program_accuracy:.4f}, "
        f"argmax agreement {result.agreement.argmax:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
