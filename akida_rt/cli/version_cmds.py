"""`akida version`: the versions of akida_rt, its protocols and formats, and each device's firmware."""

from __future__ import annotations

import argparse
import platform
from typing import Any

from akida_rt.cli.output import emit_json


def register(sub: Any) -> None:
    p = sub.add_parser("version", help="versions: akida_rt, protocols, program format, firmware")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_version)


def versions() -> dict[str, Any]:
    """Plain-data versions; `devices` lists the firmware each device found reports."""
    from akida_rt import __version__
    from akida_rt.driver.discovery import devices
    from akida_rt.format.program import FORMAT_VERSION
    from akida_rt.wire.ipc import PROTOCOL

    found = [d.describe() for d in devices()]
    return {
        "akida_rt": __version__,
        "python": platform.python_version(),
        "driver_protocol": "AKD1000 host interface (akida engine 2.19.3 programs)",
        "daemon_protocol": PROTOCOL,
        "program_format": FORMAT_VERSION,
        "devices": [
            {"id": d["id"], "firmware": d["firmware"], "simulated": d["simulated"]} for d in found
        ],
    }


def cmd_version(args: argparse.Namespace) -> int:
    info = versions()
    if args.json:
        emit_json(info)
        return 0
    print(f"akida_rt {info['akida_rt']} (python {info['python']})")
    print(f"driver protocol {info['driver_protocol']}, daemon protocol {info['daemon_protocol']}, "
          f"program format {info['program_format']}")  # fmt: skip
    for d in info["devices"]:
        print(
            f"device {d['id']}: firmware {d['firmware']}{' (simulated)' if d['simulated'] else ''}"
        )
    if not info["devices"]:
        print("no device found")
    return 0
