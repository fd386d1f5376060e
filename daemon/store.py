"""The state directory: per-uid blobs (learned weights, per program hash and device),
each written atomically (temp file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import threading
from pathlib import Path

from akida_rt.errors import DaemonError, ErrorKind
from akida_rt.format.program import atomic_write, fsync_dir

log = logging.getLogger(__name__)
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class StateStore:
    """Blobs under `<root>/users/<uid>/<key>`; one uid never reads another's (bar root).
    Writes are serialised (each runs in a thread of its own, off the event loop), so the
    per-uid quotas hold.

    Args:
        root: the state directory (created 0700 when missing).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
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

    def put(
        self,
        uid: int,
        key: str,
        data: bytes,
        max_keys: int = sys.maxsize,
        max_bytes: int = sys.maxsize,
    ) -> None:
        """Store durably; returns only once the data and the rename are on disk.

        Raises:
            DaemonError: QUOTA_EXCEEDED when the uid would hold more than `max_keys` keys
                or `max_bytes` bytes; BAD_INPUT for a bad key.
        """
        path = self._path(uid, key)
        with self._lock:
            sizes = {p.name: p.stat().st_size for p in self._files(uid)}
            sizes[key] = len(data)
            if len(sizes) > max_keys or sum(sizes.values()) > max_bytes:
                raise DaemonError(
                    f"uid {uid} would hold {len(sizes)} state keys and {sum(sizes.values())} "
                    f"bytes; the limits are {max_keys} keys and {max_bytes} bytes "
                    "(delete_state frees them)",
                    ErrorKind.QUOTA_EXCEEDED,
                )
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(path, data, mode=0o600)

    def delete(self, uid: int, key: str) -> bool:
        """Remove a key durably; False when there was none."""
        path = self._path(uid, key)
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            fsync_dir(path.parent)
        return True

    def get(self, uid: int, key: str) -> bytes | None:
        try:
            return self._path(uid, key).read_bytes()
        except FileNotFoundError:
            return None

    def _files(self, uid: int) -> list[Path]:
        folder = self.root / "users" / str(uid)
        if not folder.is_dir():
            return []
        return [p for p in folder.iterdir() if not p.name.startswith(".")]

    def keys(self, uid: int) -> list[str]:
        return sorted(p.name for p in self._files(uid))

    def drop_uid(self, uid: int) -> int:
        """Delete everything `uid` holds (a tenant whose allocation is gone); returns how
        many keys there were."""
        folder = self.root / "users" / str(int(uid))
        with self._lock:
            if not folder.is_dir():
                return 0
            keys = len(self._files(uid))
            shutil.rmtree(folder)
            fsync_dir(folder.parent)
        return keys
