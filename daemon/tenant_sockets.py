"""Tenant sockets (`akidad --tenant-dir DIR`): a listening socket in each subfolder of DIR
that names a tenant, whose clients are that tenant whatever uid they run as.

The Kubernetes device plugin keeps DIR: one subfolder per share of a board, holding a
file `tenant` (a decimal uid, rewritten with a fresh one at each allocation) and mounted
alone into the pod. A pod running as root is then a tenant like any other: sessions,
learned state, `akida stats` visibility and the per-uid limits follow the tenant uid,
never 0. A folder without a valid `tenant` file gets no socket; a connection made after
the file became unreadable is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
SOCKET = "akida.sock"
TENANT_FILE = "tenant"
TENANT_UIDS = range(1_000_000_000, 2_000_000_000)  # as the plugin assigns them
SCAN_S = 1.0
_warned: set[Path] = set()


def tenant_uid(folder: Path) -> int | None:
    """The uid in `folder/tenant`, or None when missing, not a tenant uid, or when the
    folder or file could have been written by anyone but root or akidad's own user."""
    path = folder / TENANT_FILE
    try:
        for st in (os.stat(folder), os.stat(path)):
            if st.st_uid not in (0, os.getuid()) or st.st_mode & 0o022:
                if path not in _warned:  # once, not at every scan
                    _warned.add(path)
                    log.warning("%s: not trusted (owner uid %d, mode %o); ignored",
                                path, st.st_uid, st.st_mode & 0o777)  # fmt: skip
                return None
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) in TENANT_UIDS else None


class TenantSockets:
    """The listeners of one tenant directory.

    Args:
        root: the tenant directory.
        add: called with (listening socket, its folder) when a listener opens.
        remove: called with the listening socket before it closes.
    """

    def __init__(
        self,
        root: Path,
        add: Callable[[socket.socket, Path], None],
        remove: Callable[[socket.socket], None],
    ) -> None:
        self.root = root
        self._add, self._remove = add, remove
        self.listening: dict[Path, socket.socket] = {}

    def scan(self) -> dict[str, int | None] | None:
        """Open a socket for each new tenant folder; close those whose folder went.
        Returns each folder's name and the uid its tenant file names (None: no valid
        one), or None when DIR could not be read."""
        try:
            uids = {p: tenant_uid(p) for p in self.root.iterdir() if p.is_dir()}
        except OSError as exc:
            log.warning("tenant directory %s: %s", self.root, exc.strerror)
            uids = None
        folders = {p for p, uid in (uids or {}).items() if uid}
        for folder in sorted(folders - set(self.listening)):
            path = folder / SOCKET
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a stale socket of an earlier run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.bind(str(path))
                os.chmod(path, 0o666)  # the folder's mount is the access control
                sock.listen(16)
            except OSError as exc:
                sock.close()
                log.warning("tenant socket %s: %s", path, exc.strerror)
                continue
            self.listening[folder] = sock
            self._add(sock, folder)
            log.info("tenant socket %s (uid %s)", path, tenant_uid(folder))
        for folder in sorted(set(self.listening) - folders):
            self._close(folder)
        return None if uids is None else {p.name: uid for p, uid in uids.items()}

    def _close(self, folder: Path) -> None:
        sock = self.listening.pop(folder)
        self._remove(sock)
        sock.close()
        with contextlib.suppress(OSError):
            (folder / SOCKET).unlink()
        log.info("tenant socket %s closed", folder / SOCKET)

    def close(self) -> None:
        for folder in list(self.listening):
            self._close(folder)
