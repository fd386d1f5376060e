"""Tenant sockets for pods sharing boards through akidad: one folder per share under a
tenant directory, where akidad listens, with the tenant identity the plugin assigns.

The contract with akidad (`akidad --tenant-dir DIR`): every subfolder of DIR holding a
file `tenant` (a decimal uid) gets a socket `akida.sock` from akidad; a client connecting
there is that tenant, whatever its own uid (root in a pod included). Allocate writes a
fresh uid into the share's `tenant` file, so each container is a new tenant: it cannot
read what an earlier holder of the share learned, and akidad's per-uid limits and
fairness apply to it like to any other client.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
TENANT_UIDS = range(1_000_000_000, 2_000_000_000)  # never a real account's uid
TENANT_FILE = "tenant"


def folder_name(device_id: str) -> str:
    """The folder of a share (`<board>::<n>` -> `<board>-<n>`), or of a whole board."""
    return device_id.replace("::", "-")


class Tenants:
    """The tenant directory, as the plugin keeps it."""

    SOCKET = "akida.sock"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def prepare(self, device_ids: list[str]) -> None:
        """Create the folders of these shares (each with a tenant, so akidad serves it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for ident in device_ids:
            folder = self.root / folder_name(ident)
            if not (folder / TENANT_FILE).exists():
                folder.mkdir(exist_ok=True)
                self._write(folder, self._fresh())

    def assign(self, device_id: str) -> tuple[Path, int]:
        """A fresh tenant for the container that gets `device_id`: (its folder, its uid)."""
        folder = self.root / folder_name(device_id)
        folder.mkdir(parents=True, exist_ok=True)
        uid = self._fresh()
        self._write(folder, uid)
        log.info("share %s: tenant uid %d", device_id, uid)
        return folder, uid

    @staticmethod
    def _fresh() -> int:
        return TENANT_UIDS.start + secrets.randbelow(len(TENANT_UIDS))

    @staticmethod
    def _write(folder: Path, uid: int) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tenant.", dir=folder)
        with os.fdopen(fd, "w") as out:
            out.write(f"{uid}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / TENANT_FILE)
