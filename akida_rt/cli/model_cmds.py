"""`akida summary` and `akida sample`: inspect (and map) a program; copy out the sample one."""

from __future__ import annotations

import argparse
from typing import Any

from akida_rt.cli.args import output_file
from akida_rt.cli.output import emit_json
from akida_rt.data import DVS_PROGRAM, SAMPLE_PROGRAM, dvs_program, sample_program
from akida_rt.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("summary", help="print a program's summary (optionally mapped)")
    p.add_argument("-m", "--model", required=True, help="program file")
    p.add_argument(
        "--map", metavar="DEVICE", help="map onto a device description (AKD1000, TwoNodesIP)"
    )
    p.add_argument("--mode", default="AllNps", choices=["AllNps", "Minimal", "HwPr"])
    p.add_argument("--hw-only", action="store_true", help="fail instead of splitting")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="MESH.png",
                   help="with --map: draw the NP mesh, each layer's NPs coloured (matplotlib)")  # fmt: skip
    p.set_defaults(func=cmd_summary)
    s = sub.add_parser("sample", help="copy the sample program (a digits CNN) to a file")
    s.add_argument("-o", "--output",
                   help=f"where to write it (default: ./{SAMPLE_PROGRAM}, or ./{DVS_PROGRAM})")  # fmt: skip
    s.add_argument("--dvs", action="store_true",
                   help="the event-camera sample: 34x34x1 event-count frames (akida stream)")  # fmt: skip
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_sample)


def model_description(model: Any) -> dict[str, Any]:
    """Plain-data description of a (possibly mapped) model."""
    return {
        "name": model.name,
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "layers": [layer.describe() for layer in model.layers],
        "sequences": [
            {
                "name": s.name,
                "backend": s.backend.value,
                "passes": s.passes,
                "nps": s.np_count,
                "program_bytes": len(s.program),
                "layers": s.layer_names,
                "placements": [
                    {
                        "layer": p.layer,
                        "np_type": p.np_type,
                        "nps": [[n.col, n.row, n.id] for n in p.nps],
                    }
                    for p in s.plan.placements
                ],
            }
            for s in model.sequences
        ],
    }


def cmd_summary(args: argparse.Namespace) -> int:
    from akida_rt.mapping.hardware import spec_by_name
    from akida_rt.mapping.mapper import MapMode
    from akida_rt.model.model import Model

    if args.map is not None and not args.map.strip():
        raise InputError("--map '': name a device description, e.g. --map AKD1000")
    if args.plot is not None:
        from akida_rt.plots import check_png

        if not args.map:
            raise InputError(f"--plot {args.plot}: the mesh needs a mapping; add --map AKD1000")
        check_png("--plot", args.plot)
    model = Model(args.model)
    spec = None
    if args.map:
        spec = spec_by_name(args.map)
        model.map(spec, hw_only=args.hw_only, mode=MapMode(args.mode))
    if args.json:
        emit_json(model_description(model))
    else:
        model.summary()
    if args.plot is not None:
        from akida_rt.plots import mesh

        coloured = mesh(model, spec, args.plot)
        if not args.json:
            print(f"wrote {args.plot}: {coloured} NPs coloured by layer")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import shutil

    source = dvs_program() if args.dvs else sample_program()
    output = args.output or (DVS_PROGRAM if args.dvs else SAMPLE_PROGRAM)
    shutil.copyfile(source, output_file(output))
    shape = [34, 34, 1] if args.dvs else [32, 32, 1]
    if args.json:
        emit_json({"output": output, "input_shape": shape, "classes": 10})
    elif args.dvs:
        print(f"wrote {output}: a digits CNN for event cameras (34x34x1 event counts, 10 "
              f"classes); try: akida stream -m {output} --source EVENTS.raw")  # fmt: skip
    else:
        print(f"wrote {output}: a digits CNN (input 32x32x1 uint8, 10 classes); "
              f"try: akida run -m {output}")  # fmt: skip
    return 0
