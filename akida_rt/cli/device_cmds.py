"""`akida devices`, and reading `akida run`'s input (.npy arrays and images)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from akida_rt.cli.output import emit_json, table
from akida_rt.errors import InputError
from akida_rt.stream.image_files import read_image


def register(sub: Any) -> None:
    p = sub.add_parser("devices", help="list Akida devices (the simulated AKD1000 if none)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--host", metavar="akida+tls://HOST:PORT",
                   help="list the boards of a remote akidad (mutual TLS) instead")  # fmt: skip
    for part in ("cert", "key", "ca"):
        p.add_argument(f"--tls-{part}", default="", metavar="FILE", help=f"TLS {part} for --host")
    p.set_defaults(func=cmd_devices)


def _remote_devices(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A remote daemon's boards, in the fields a local listing has."""
    from akida_rt.client.client import Client

    with Client(args.host, cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca,
                retry_s=0, name="akida-devices") as client:  # fmt: skip
        return [{**d["device"], "id": d["id"], "state": d["state"]} for d in client.devices()]


def cmd_devices(args: argparse.Namespace) -> int:
    from akida_rt.driver.discovery import devices

    listed = _remote_devices(args) if args.host else [d.describe() for d in devices()]
    if args.json:
        emit_json(listed)
        return 0
    rows = [
        [d["id"], d["kind"], "yes" if d["simulated"] else "no", d["name"], d["version"],
         str(d["nodes"]), str(d["nps"]), d["firmware"]]
        for d in listed
    ]  # fmt: skip
    header = ["ID", "KIND", "SIMULATED", "DEVICE", "VERSION", "NODES", "NPS", "FIRMWARE"]
    print(table(rows, header))
    return 0


def load_input(path: str, shape: tuple[int, int, int]) -> np.ndarray:
    """A uint8 NHWC batch from a .npy file or an image (resized to the model input)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such input file")
    if file.suffix.lower() == ".npy":
        try:
            arr = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npy array: {exc}") from None
    else:
        arr = read_image(file, shape)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim == 4 and len(arr) == 0:
        raise InputError(
            f"{path}: the array holds no frames (shape {arr.shape}); give at least one"
        )
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(shape):
        raise InputError(
            f"{path}: input shape {tuple(arr.shape)} does not match the model input "
            f"(N, {', '.join(map(str, shape))})"
        )
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or (
            arr.size and (arr.min() < 0 or arr.max() > 255 or not np.all(np.mod(arr, 1) == 0))
        ):
            raise InputError(f"{path}: values must be integers in 0..255, got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    return arr
