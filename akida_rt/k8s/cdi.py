"""CDI (Container Device Interface) specs for the boards of this host, so podman,
containerd and CRI-O users can write `--device brainchip.com/akida=0`.

One CDI device per board, named both by its position ("0", "1", ...) and by its stable
id ("pcie-0000-01-00.0"), plus "all". Each carries the board's device nodes and a
variable `AKIDA_VISIBLE_DEVICES_<ID>=<url>` of its own: a container given two devices gets
both variables (one shared variable would keep only the last device's value), and
akida_rt's discovery merges them.

The spec is written at cdiVersion 0.5.0, the lowest that expresses it (names starting
with a digit and `hostPath` need 0.5.0; per-device annotations would need 0.6.0, which
podman 4.3's CDI library refuses), so podman 4.3 through current accept it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from akida_rt.errors import AkidaError
from akida_rt.k8s.boards import RESOURCE, Board, board_env_name

CDI_VERSION = "0.5.0"  # the oldest spec version with every field we write
DEFAULT_PATH = "/etc/cdi/brainchip.com-akida.yaml"


def _edits(boards: list[Board]) -> dict[str, Any]:
    return {
        "env": [f"{board_env_name(b)}={b.container_url}" for b in boards],
        "deviceNodes": [
            {"path": n.container_path, "hostPath": n.host_path, "permissions": n.permissions}
            for b in boards
            for n in b.nodes
        ],
    }


def spec(boards: list[Board]) -> dict[str, Any]:
    """The CDI spec (a JSON-ready dict) for `boards`.

    Raises:
        AkidaError: no boards (a CDI spec must name at least one device).
    """
    if not boards:
        raise AkidaError(
            "no Akida board with a device node (PCIe /dev/akida*, USB) found, so there is no "
            "CDI spec to write; `akida devices` may still list sim://akd1000/0, the simulated "
            "chip inside each process, which has no node to hand a container (for simulated "
            "boards with nodes: AKIDA_SIM_BOARDS=pcie:1 akida cdi generate --simulated)"
        )
    devices = []
    for index, board in enumerate(boards):
        for name in (str(index), board.id):
            devices.append({"name": name, "containerEdits": _edits([board])})
    devices.append({"name": "all", "containerEdits": _edits(boards)})
    return {"cdiVersion": CDI_VERSION, "kind": RESOURCE, "devices": devices}


def check_target(path: str | os.PathLike[str]) -> Path:
    """`path` as a place to write a spec, or AkidaError naming what is wrong with it."""
    target = Path(path)
    if target.is_dir():
        raise AkidaError(f"{target}: is a directory; give a file name (e.g. {DEFAULT_PATH})")
    if not target.parent.is_dir():
        raise AkidaError(f"{target.parent}: no such directory for the CDI spec")
    return target


def write(document: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a spec atomically (CDI reads JSON and YAML alike; JSON is valid YAML)."""
    target = check_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # runtimes read it as another user
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
