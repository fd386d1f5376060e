"""BrainChip's compiler as a child process: an akida_rt program on stdin, its AKD1000
sequences (layers, backend, program binary) as JSON on stdout.

The core cannot import akida (see .importlinter), so akida_rt.mapping.akd1000_compiler runs
`python -m akida_rt.tools.akd1000_compile --mode AllNps [--hw-only]` and caches the answer.
Exit status 2 and one line on stderr when the model cannot be compiled (the reason).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from akida_rt.tools.metatf_export import MAP_MODES, _akida, export_model

from akida_rt.errors import AkidaError, ConversionError
from akida_rt.model.model import Model

log = logging.getLogger(__name__)


def compile_sequences(model: Model, mode: str, hw_only: bool) -> dict[str, Any]:
    """{"akida": version, "sequences": [{"hardware", "layers", "binary" (base64 or None)}]}
    of `model` mapped by BrainChip's compiler on a virtual AKD1000."""
    akida = _akida()
    if mode not in MAP_MODES:
        raise ConversionError(f"map mode {mode!r}; use one of {', '.join(MAP_MODES)}")
    src = export_model(model)
    try:
        src.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode), hw_only=hw_only)
    except RuntimeError as exc:
        raise ConversionError(
            f"BrainChip's compiler cannot map the model on AKD1000: {exc}"
        ) from None
    out = []
    for seq in src.sequences:
        hardware = str(seq.backend).rsplit(".", 1)[-1] == "Hardware"
        names = [layer.name for p in seq.passes for layer in p.layers]
        program = bytes(seq.program) if hardware and seq.program is not None else None
        out.append({
            "hardware": hardware,
            "layers": names,
            "binary": base64.b64encode(program).decode() if program is not None else None,
        })  # fmt: skip
    return {"akida": str(getattr(akida, "__version__", "")), "sequences": out}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m akida_rt.tools.akd1000_compile")
    parser.add_argument("--mode", default="AllNps", choices=MAP_MODES)
    parser.add_argument("--hw-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        model = Model(sys.stdin.buffer.read())
        result = compile_sequences(model, args.mode, args.hw_only)
    except AkidaError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
