"""The state directory: per-uid blobs (learned weights, per program hash and device),
each written atomically (temp file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from akida_rt.errors import DaemonError
from akida_rt.program import atomic_write

log = logging.getLogger(__name__)
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_BLOB = 256 << 20


class StateStore:
    """Blobs under `<root>/users/<uid>/<key>`; one uid never reads another's (bar root).

    Args:
        root: the state directory (created 0700 when missing).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clean_temps()

    def _clean_temps(self) -> None:
        for tmp in self.root.glob("users/*/.*.tmp"):
            log.info("removing leftover temp file %s from an interrupted write", tmp)
            tmp.unlink(missing_ok=True)

    def _path(self, uid: int, key: str) -> Path:
        if not KEY.match(key):
            raise DaemonError(
                f"bad state key {key[:64]!r}: use 1-200 of A-Z a-z 0-9 . _ - "
                "not starting with . _ or -"
            )
        return self.root / "users" / str(uid) / key

    def put(self, uid: int, key: str, data: bytes) -> None:
        """Store durably; returns only once the data and the rename are on disk."""
        if len(data) > MAX_BLOB:
            raise DaemonError(f"state blob of {len(data)} bytes is over {MAX_BLOB}")
        path = self._path(uid, key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, mode=0o600)

    def get(self, uid: int, key: str) -> bytes | None:
        try:
            return self._path(uid, key).read_bytes()
        except FileNotFoundError:
            return None

    def keys(self, uid: int) -> list[str]:
        folder = self.root / "users" / str(uid)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
