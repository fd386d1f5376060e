"""The file-io seam under the PCIe transport: open, pread and pwrite of a device node.

On a host with a board these are plain `os` calls on `/dev/akidaN` (akida_dw_edma offers
read, write and llseek only: there is deliberately no mmap and no ioctl here). A node
provider can be mounted on a path so that something else (the simulated board) answers
those calls; the PCIe transport above cannot tell the difference. Errors are raised as `OSError`, exactly
as the kernel reports them; the transport translates them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from typing import Protocol

log = logging.getLogger(__name__)


class Handle(Protocol):
    """An open device node, as a file descriptor is."""

    def pread(self, n: int, offset: int) -> bytes:
        """Read up to `n` bytes at file position `offset`."""
        ...

    def pwrite(self, data: bytes, offset: int) -> int:
        """Write `data` at file position `offset`; returns the count written."""
        ...

    def lock(self) -> None:
        """Take an exclusive advisory lock (flock) without waiting; OSError(EWOULDBLOCK)
        when another open file, in this or another process, holds it."""
        ...

    def close(self) -> None:
        """Close the node (releasing its lock)."""
        ...


class NodeProvider(Protocol):
    """Something that answers `open()` for a mounted path."""

    def open(self, path: str, flags: int) -> Handle:
        """Open `path` with `os.open` flags, raising OSError as the kernel would."""
        ...


class OsHandle:
    """A real file descriptor on a device node."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def pread(self, n: int, offset: int) -> bytes:
        return os.pread(self._fd, n, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        return os.pwrite(self._fd, data, offset)

    def lock(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self) -> None:
        os.close(self._fd)


class OsProvider:
    """The operating system itself."""

    def open(self, path: str, flags: int) -> Handle:
        return OsHandle(os.open(path, flags | os.O_CLOEXEC))


_OS = OsProvider()
_mounts: dict[str, NodeProvider] = {}
_lock = threading.Lock()


def mount(path: str, provider: NodeProvider) -> None:
    """Serve opens of `path` from `provider` instead of the OS."""
    with _lock:
        _mounts[os.path.abspath(path)] = provider
    log.debug("file-io: %s served by %s", path, type(provider).__name__)


def unmount(path: str) -> None:
    """Give `path` back to the OS (no error if it was not mounted)."""
    with _lock:
        _mounts.pop(os.path.abspath(path), None)


def open_node(path: str, flags: int = os.O_RDWR) -> Handle:
    """Open a device node through the seam; raises OSError like `os.open`."""
    with _lock:
        provider = _mounts.get(os.path.abspath(path), _OS)
    return provider.open(path, flags)
