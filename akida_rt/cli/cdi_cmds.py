"""`akida cdi generate`: a CDI spec for this host's boards (podman/containerd/CRI-O)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from akida_rt.cli.output import emit_json
from akida_rt.errors import AkidaError


def register(sub: Any) -> None:
    p = sub.add_parser("cdi", help="Container Device Interface specs for this host's boards")
    actions = p.add_subparsers(dest="cdi_action", metavar="ACTION", required=True)
    g = actions.add_parser("generate", help="write (or print) the CDI spec of the boards found")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="write the spec here (e.g. /etc/cdi/brainchip.com-akida.yaml); "
                        "default: print it")  # fmt: skip
    g.add_argument("--simulated", action="store_true",
                   help="include boards that identify as simulated chips")  # fmt: skip
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from akida_rt.k8s import boards, cdi

    if args.output:
        cdi.check_target(args.output)
    found = boards.scan()
    offered = boards.offered(found, args.simulated)
    if found and not offered:
        raise AkidaError(
            f"found {len(found)} board(s), all simulated chips: add --simulated to include them"
        )
    document = cdi.spec(offered)
    if args.output:
        cdi.write(document, args.output)
        names = [d["name"] for d in document["devices"]]
        if args.json:
            emit_json({"path": args.output, "kind": document["kind"], "devices": names})
        else:
            print(f"wrote {args.output}: {document['kind']}={{{','.join(names)}}}")
        return 0
    if args.json:
        emit_json(document)
    else:
        print(json.dumps(document, indent=2))
    return 0
