"""`akida import` and `akida export`: BrainChip MetaTF models (.fbz, Akida 1.0) to akida_rt
program files and back, bit-exact.

BrainChip's `akida` package (the [metatf] extra) is imported inside the command only.
"""

from __future__ import annotations

import argparse
from typing import Any

from akida_rt.cli.output import emit_json


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="import a MetaTF model (.fbz, AKD1000 v1) as a program")
    p.add_argument("model", help="MetaTF model file (.fbz)")
    p.add_argument("-o", "--output", required=True, help="program file to write (.akp)")
    p.add_argument("--map", choices=["AKD1000", "TwoNodesIP"], help="store a mapping")
    p.add_argument("--mode", default="AllNps", choices=["AllNps", "Minimal", "HwPr"])
    p.add_argument("--hw-only", action="store_true", help="refuse software or split mappings")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("export", help="export a program as a MetaTF model (.fbz, AKD1000 v1)")
    p.add_argument("program", help="program file (.akp)")
    p.add_argument("-o", "--output", required=True, help="MetaTF model file to write (.fbz)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_export)


def cmd_import(args: argparse.Namespace) -> int:
    from akida_rt.mapping.hardware import spec_by_name
    from akida_rt.mapping.mapper import MapMode
    from akida_rt.tools.metatf import import_model

    model = import_model(args.model)
    if args.map:
        model.map(spec_by_name(args.map), hw_only=args.hw_only, mode=MapMode(args.mode))
    model.save(args.output)
    result = {
        "output": args.output,
        "layers": len(model.layers),
        "sequences": len(model.sequences),
        "nps": sum(s.np_count for s in model.sequences),
        "mapped": args.map,
    }
    if args.json:
        emit_json(result)
    else:
        where = f", mapped on {args.map}: {result['nps']} NPs" if args.map else ""
        print(f"wrote {args.output}: {result['layers']} layers{where}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from akida_rt.tools.metatf_export import export_file

    out = export_file(args.program, args.output)
    result = {
        "output": args.output,
        "layers": len(out.layers),
        "learning": out.learning is not None,
    }
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {args.output}: {result['layers']} v1 layers")
    return 0
