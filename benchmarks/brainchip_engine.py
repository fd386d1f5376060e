"""Any v1 MetaTF model through BrainChip's own Akida Engine on our simulated AKD1000.

Usage: python benchmarks/brainchip_engine.py MODEL.fbz [--inputs N] [--seed S] [--json]

akida maps the model on its virtual AKD1000; each hardware sequence's program binary is
programmed by BrainChip's engine (built from the akida wheel, tests/brainchip_engine/)
into the simulated chip (firmware_sim/akd1000_chip.py) and run on N random inputs;
software sequences run on akida_rt's integer engine. Printed: the fraction of samples
bit-identical to akida's software forward and to akida_rt's engine, and the host
accesses per phase. Our own driver (driver/akd1000_host.py) runs the same programs on a
fresh simulated chip through the PCIe transport's code path and is reported next to it,
with whether its accesses equal the engine's one for one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.brainchip_engine.harness import EngineUnavailable, forward_mapped, skip_reason


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


def ours_mapped(model: Any, x: np.ndarray, chip: Any, batch_size: int = 16) -> tuple[Any, Any]:
    """(outputs, host) of akida_rt's driver over `chip`: hardware sequences chain-loaded by
    Akd1000Host, software ones on akida_rt's integer engine (as forward_mapped does)."""
    from akida_rt.driver.akd1000_host import Akd1000Host
    from akida_rt.tools.metatf import import_model

    from akida_rt.engine.integer import Engine

    host = Akd1000Host(chip, desc="akida_rt/NSoC_v2", trace=True)
    imported, y = None, np.asarray(x)
    for seq in model.sequences:
        if str(seq.backend).endswith("Hardware"):
            host.program(bytes(seq.program))
            host.set_batch_size(batch_size)
            y = host.forward(y.astype(np.uint8))
        else:
            imported = imported or import_model(model)
            by_name = {layer.name: layer for layer in imported.layers}
            names = [layer.name for p in seq.passes for layer in p.layers]
            y = Engine([by_name[n] for n in names]).run(y.astype(np.float32))
    return np.asarray(y), host


def _same_accesses(engine_trace: Any, host: Any) -> bool:
    key = [(a.phase, a.op, a.addr, a.size, a.value) for a in engine_trace or ()]
    return key == [(a.phase, a.op, a.addr, a.size, a.value) for a in host.log.trace or ()]


def run(path: Path, n: int, seed: int) -> dict[str, Any]:
    import akida
    from akida_rt.tools.metatf import import_model

    theirs = akida.Model(str(path))
    x = _inputs(theirs, n, seed)
    expected = theirs.forward(x)
    ours = import_model(str(path)).forward(x)
    theirs.map(akida.AKD1000())
    result = forward_mapped(theirs, x, _chip(), trace=True)
    got = result.outputs
    mine, host = ours_mapped(theirs, x, _chip())
    sequences = [str(s.backend).rsplit(".", 1)[-1] for s in theirs.sequences]
    return {
        "model": path.name,
        "inputs": n,
        "sequences": sequences,
        "brainchip_engine": {
            "identical_to_akida": _fraction(got, expected),
            "identical_to_akida_rt": _fraction(got, ours),
            "accesses": {k: v.accesses for k, v in result.counts.items()},
            "bytes_written": {k: v.bytes_written for k, v in result.counts.items()},
            "accesses_per_input": result.counts["inference"].accesses / n,
        },
        "akida_rt_driver": {
            "identical_to_akida": _fraction(mine, expected),
            "identical_to_akida_rt": _fraction(mine, ours),
            "accesses": {k: v.accesses for k, v in host.counts.items()},
            "bytes_written": {k: v.bytes_written for k, v in host.counts.items()},
            "accesses_per_input": host.counts["inference"].accesses / n,
            "same_accesses_as_engine": _same_accesses(result.trace, host),
        },
    }


def _print(r: dict[str, Any]) -> None:
    print(f"{r['model']}: {r['inputs']} inputs, sequences {', '.join(r['sequences'])}")
    for name, key in (
        ("BrainChip's engine", "brainchip_engine"),
        ("akida_rt driver", "akida_rt_driver"),
    ):
        e = r[key]
        print(f" {name}")
        print(f"  bit-identical to akida forward   {e['identical_to_akida']:.3f}")
        print(f"  bit-identical to akida_rt engine {e['identical_to_akida_rt']:.3f}")
        for phase, count in e["accesses"].items():
            print(
                f"  {phase:<10} {count:>6} accesses {e['bytes_written'][phase]:>10} bytes written"
            )
        print(f"  per input  {e['accesses_per_input']:>6.1f} accesses")
    same = r["akida_rt_driver"]["same_accesses_as_engine"]
    print(f" accesses one for one the engine's: {'yes' if same else 'no'}")


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
