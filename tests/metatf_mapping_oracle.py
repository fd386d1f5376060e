"""BrainChip's AKD1000 allocation of the conformance models, read in child processes.

Child processes, because akida 2.19.3 segfaults on a broken akida.Model (one left behind
by a refused `Model.add`, which metatf_models.build no longer keeps): a child that dies is
started again after the model that killed it, and that model's allocation is None.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MODES = ("AllNps", "Minimal", "HwPr")
ROOT = Path(__file__).resolve().parent.parent


def _child(start: int) -> None:
    """Map models start.. on akida.AKD1000() in every mode; one JSON line per model."""
    import akida

    from tests.metatf_models import N_MODELS, akida_allocation, build, random_spec

    for seed in range(start, N_MODELS):
        print(json.dumps({"start": seed}), flush=True)
        out: dict[str, Any] = {}
        for mode in MODES:
            model = build(random_spec(seed))
            model.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode))
            out[mode] = {k: v for k, v in akida_allocation(model).items() if v[0]}
        print(json.dumps({"seed": seed, "alloc": out}), flush=True)


def brainchip_allocations(n_models: int) -> dict[int, dict[str, dict[str, list]] | None]:
    """{seed: {mode: {layer: [NP count, NP type]}}} for seeds 0..n_models-1 (None: akida
    crashed mapping it)."""
    result: dict[int, dict[str, dict[str, list]] | None] = {}
    start = 0
    while start < n_models:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from tests.metatf_mapping_oracle import _child; _child({start})",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        last = start
        for line in proc.stdout.splitlines():
            msg = json.loads(line)
            if "alloc" in msg:
                result[msg["seed"]] = msg["alloc"]
            last = msg.get("start", last)
        if proc.returncode == 0:
            break
        result[last] = None  # killed by this model
        start = last + 1
    return result
