"""Any v1 MetaTF model through BrainChip's own Akida Engine on our simulated AKD1000.

Usage: python benchmarks/brainchip_engine.py MODEL.fbz [--inputs N] [--seed S] [--json]

akida maps the model on its virtual AKD1000; each hardware sequence's program binary is
programmed by BrainChip's engine (built from the akida wheel, tests/brainchip_engine/)
into the simulated chip (firmware_sim/akd1000_chip.py) and run on N random inputs;
software sequences run on akida_rt's integer engine. Printed: the fraction of samples
bit-identical to akida's software forward and to akida_rt's engine, and the host
accesses per phase; then the same for akida_rt's own driver host
(akida_rt.driver.akd1000_host) on a fresh simulated chip, when the tree has it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.brainchip_engine.harness import EngineSession, EngineUnavailable, chain, skip_reason


def _inputs(model: Any, n: int, seed: int) -> np.ndarray:
    """Random inputs over the model's whole input range (8-bit images or n-bit events)."""
    import akida

    first = model.layers[0]
    image = first.parameters.layer_type == akida.LayerType.InputConvolutional
    bits = 8 if image else int(first.input_bits)
    shape = (n, *map(int, model.input_shape))
    return np.random.default_rng(seed).integers(0, 1 << bits, shape, dtype=np.uint8)


def _fraction(a: np.ndarray, b: np.ndarray) -> float:
    same = [np.array_equal(x, y) for x, y in zip(a, b, strict=True)]
    return sum(same) / len(same)


def _chip() -> Any:
    try:
        from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip
    except ImportError:
        raise SystemExit(
            "brainchip_engine: this tree has no simulated AKD1000 at the real interface "
            "(firmware_sim/akd1000_chip.py)"
        ) from None
    return Akd1000Chip(serial="BENCH1")


def _our_host(chip: Any) -> Any:
    """akida_rt's own driver host on the same chip, when this tree has it."""
    try:
        from akida_rt.driver.akd1000_host import Akd1000Host
    except ImportError:
        return None
    return Akd1000Host(chip, desc="NSoC_v2")


def _figures(got: np.ndarray, expected: np.ndarray, ours: np.ndarray, counts: Any, n: int) -> dict:
    return {
        "identical_to_akida": _fraction(got, expected),
        "identical_to_akida_rt": _fraction(got, ours),
        "accesses": {k: v.accesses for k, v in counts.items()},
        "bytes_written": {k: v.bytes_written for k, v in counts.items()},
        "accesses_per_input": counts["inference"].accesses / n,
    }


def run(path: Path, n: int, seed: int) -> dict[str, Any]:
    import akida
    from akida_rt.tools.metatf import import_model

    theirs = akida.Model(str(path))
    x = _inputs(theirs, n, seed)
    expected = theirs.forward(x)
    ours = import_model(str(path)).forward(x)
    theirs.map(akida.AKD1000())
    result: dict[str, Any] = {
        "model": path.name,
        "inputs": n,
        "sequences": [str(s.backend).rsplit(".", 1)[-1] for s in theirs.sequences],
    }
    with EngineSession(_chip()) as engine:
        got = chain(theirs, x, engine)
        result["brainchip_engine"] = _figures(got, expected, ours, engine.counts, n)
    host = _our_host(_chip())
    if host is None:
        result["akida_rt_driver"] = "not in this tree yet (issue 24, part 2)"
    else:
        try:
            got = chain(theirs, x, host)
            result["akida_rt_driver"] = _figures(got, expected, ours, host.counts, n)
        finally:
            host.close()
    return result


def _print(r: dict[str, Any]) -> None:
    print(f"{r['model']}: {r['inputs']} inputs, sequences {', '.join(r['sequences'])}")
    for host in ("brainchip_engine", "akida_rt_driver"):
        e = r[host]
        if isinstance(e, str):
            print(f"  {host}: {e}")
            continue
        print(f"  {host}: bit-identical to akida forward {e['identical_to_akida']:.3f}, "
              f"to akida_rt's engine {e['identical_to_akida_rt']:.3f}")  # fmt: skip
        for phase, count in e["accesses"].items():
            print(
                f"    {phase:<10} {count:>6} accesses {e['bytes_written'][phase]:>10} bytes written"
            )
        print(f"    per input  {e['accesses_per_input']:>6.1f} accesses")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="a v1 MetaTF model (.fbz)")
    ap.add_argument("--inputs", type=int, default=16, help="random inputs (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        ap.error(f"no such model file: {args.model}")
    reason = skip_reason()
    if reason is not None:
        raise SystemExit(f"brainchip_engine: cannot build BrainChip's engine: {reason}")
    try:
        result = run(args.model, args.inputs, args.seed)
    except EngineUnavailable as exc:
        raise SystemExit(f"brainchip_engine: {exc}") from None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
