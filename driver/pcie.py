"""PCIe transport: an Akida board through the akida_dw_edma misc device `/dev/akidaN`.

The kernel driver offers `read`, `write` and `llseek` only: no `mmap`, no `ioctl`. The
file position is a chip physical address, so registers too are `pread`/`pwrite` of 4
bytes at their address (0xFCC00000 + offset on an AKD1000), and memory moves in chunks of
at most 1 KiB (the kernel's DMA chunk). A transfer touching the kernel's reserved eDMA
window (0x20000000-0x203FFFFF) is refused here before the kernel would (EINVAL). Every
syscall goes through `akida_rt.driver.fileio`, which the simulated board can serve.

URLs: `pcie:///dev/akida0` (a node), `pcie://0000:01:00.0` (a PCI address).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

from akida_rt.driver import fileio, sysfs, udev
from akida_rt.driver.akd1000_host import desc_for_pci
from akida_rt.driver.bus import Bus

from akida_rt.akd1000.memory_map import (
    CHUNK_SIZE,
    EDMA_WINDOW_END,
    EDMA_WINDOW_START,
    touches_edma_window,
)
from akida_rt.errors import (
    AkidaError,
    DeviceBusy,
    DeviceLost,
    DeviceNotFound,
    PermissionDeniedError,
    TransportError,
    TransportTimeout,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
ALL_ONES = 0xFFFFFFFF
_LOST = {errno.ENODEV, errno.ENXIO, errno.ESHUTDOWN, errno.EBADF, errno.ENOTCONN}


def driver_missing_message(fn: sysfs.PciFunction) -> str:
    """Why a function that sysfs shows has no usable node, and the fix."""
    bound = f"bound to {fn.driver}" if fn.driver else "bound to no driver"
    return (
        f"{fn.model} at PCI {fn.address} ({fn.pci_id}) is present but has no "
        f"/dev/{sysfs.NODE_PREFIX}N node ({bound}): the kernel driver {sysfs.KERNEL_DRIVER} "
        f"is not loaded. Fix: sudo modprobe {sysfs.KERNEL_DRIVER} (build and install it "
        "from BrainChip's akida_dw_edma sources first if modprobe cannot find it)"
    )


def _raise_translated(exc: OSError, where: str, op: str) -> NoReturn:
    """The one place OS errors of this transport become akida_rt errors."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        raise PermissionDeniedError(udev.permission_message(where)) from exc
    if code in _LOST:
        raise DeviceLost(f"{where}: device lost during {op} ({exc.strerror})") from exc
    if code == errno.ETIMEDOUT:
        raise TransportTimeout(f"{where}: DMA timed out during {op}") from exc
    if code == errno.EBUSY:
        raise DeviceBusy(f"{where}: node busy ({exc.strerror}); is the daemon using it?") from exc
    if code == errno.EWOULDBLOCK:
        raise DeviceBusy(
            f"{where}: in use by another program (akidad or an embedded user). Share it "
            "through the daemon (akida_rt.client.client.Client), or stop the other user"
        ) from exc
    if code == errno.ENOENT:
        found = sysfs.scan(sysfs.sysroot_of_node(where))
        fn = next((f for f in found if f.node is None), None)
        if fn is not None:
            raise DeviceNotFound(driver_missing_message(fn)) from exc
        if any(str(f.node) == os.path.abspath(where) for f in found):  # udev made no node
            raise DeviceNotFound(
                f"{where}: sysfs shows the node but it is missing from /dev. "
                "Fix: sudo udevadm trigger --subsystem-match=misc"
            ) from exc
        raise DeviceNotFound(f"{where}: no such device node") from exc
    raise TransportError(f"{where}: {op} failed: {exc.strerror or exc}") from exc


class PcieBus(Bus):
    """A Bus on one /dev/akidaN node: pread/pwrite at chip physical addresses, nothing else.

    Args:
        node: the device node path.
    """

    def __init__(self, node: str | os.PathLike[str]) -> None:
        self.node = str(node)
        self.url = f"pcie://{Path(self.node).absolute()}"
        fn = sysfs.function_of_node(self.node)
        self._sysfs_path = fn.sysfs_path if fn else None
        self.pci_id = (fn.vendor, fn.device) if fn else None
        # No AKD1000 register holds a serial number: the PCI address names the board. The
        # kernel driver's description identifies the chip (IP_VERSION reads 0 on AKD1000).
        self.serial = fn.address if fn else ""
        self.desc = desc_for_pci(*self.pci_id) if self.pci_id else ""
        self._closed = False
        self._lock = threading.Lock()
        with self._translate("open"):
            self._handle = fileio.open_node(self.node, os.O_RDWR)
        try:
            # One owner per board: two hosts programming one chip would corrupt each
            # other's work. The lock goes with the file (and the process).
            with self._translate("lock"):
                self._handle.lock()
        except AkidaError:
            self._handle.close()
            raise
        log.debug("opened %s (sysfs %s)", self.node, self._sysfs_path)

    @contextmanager
    def _translate(self, op: str) -> Iterator[None]:
        if self._closed:
            raise DeviceLost(f"{self.node}: bus is closed")
        try:
            yield
        except OSError as exc:
            _raise_translated(exc, self.node, op)

    def _check_window(self, addr: int, n: int, op: str) -> None:
        if touches_edma_window(addr, n):
            raise TransportError(
                f"{self.node}: {op} of {n} bytes at 0x{addr:08x} touches the kernel driver's "
                f"reserved eDMA window 0x{EDMA_WINDOW_START:08x}-0x{EDMA_WINDOW_END:08x}: "
                "akida_dw_edma refuses it; use scratch memory from 0x24000000"
            )

    def read32(self, addr: int) -> int:
        value = int.from_bytes(self.read(addr, 4), "little")
        # A function that fell off the bus answers all-ones; sysfs tells whether it did.
        if value == ALL_ONES and self._sysfs_path is not None and not self._sysfs_path.exists():
            raise DeviceLost(
                f"{self.node}: device gone (unplugged?): register 0x{addr:x} reads all-ones"
            )
        return value

    def write32(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def read(self, addr: int, n: int) -> bytes:
        self._check_window(addr, n, "read")
        parts: list[bytes] = []
        done = 0
        while done < n:
            want = min(CHUNK_SIZE, n - done)
            with self._translate(f"DMA read of {n} bytes at 0x{addr:x}"):
                chunk = self._handle.pread(want, addr + done)
            if not chunk:
                raise TransportError(f"{self.node}: DMA read at 0x{addr + done:x} returned 0 bytes")
            parts.append(chunk)
            done += len(chunk)
        return b"".join(parts)

    def write(self, addr: int, data: bytes) -> None:
        view = memoryview(bytes(data))
        self._check_window(addr, len(view), "write")
        done = 0
        while done < len(view):
            piece = bytes(view[done : done + CHUNK_SIZE])
            with self._translate(f"DMA write of {len(view)} bytes at 0x{addr:x}"):
                count = self._handle.pwrite(piece, addr + done)
            if count <= 0:
                raise TransportError(f"{self.node}: DMA write at 0x{addr + done:x} wrote nothing")
            done += count

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _quietly(self._handle.close)


def _quietly(func: Callable[[], T]) -> None:
    try:
        func()
    except (OSError, ValueError, BufferError) as exc:
        log.debug("ignored while closing: %s", exc)


def node_of_url(url: str) -> str:
    """The device node a `pcie://` URL names (a path, or a PCI address looked up in sysfs)."""
    parts = urlsplit(url)
    if parts.scheme != "pcie":
        raise DeviceNotFound(f"not a pcie URL: {url!r}")
    if parts.path and parts.path != "/":
        return unquote(parts.path)
    address = parts.netloc
    for fn in sysfs.scan_all():
        if fn.address == address:
            if fn.node is None:
                raise DeviceNotFound(driver_missing_message(fn))
            return str(fn.node)
    raise DeviceNotFound(f"{url}: no Akida PCI function {address!r} in sysfs")


def open_bus(url: str) -> PcieBus:
    """Open `pcie:///dev/akidaN` or `pcie://<pci address>` (the bus scheme opener)."""
    return PcieBus(node_of_url(url))


def discover() -> list[sysfs.PciFunction]:
    """Akida PCI functions under every system root; functions with no node are logged."""
    found = sysfs.scan_all()
    for fn in found:
        if fn.node is None:
            log.warning("%s", driver_missing_message(fn))
    return found


def discover_urls() -> list[str]:
    """`pcie://` URLs of the usable Akida functions (the discovery module's discoverer)."""
    return [f"pcie://{fn.node}" for fn in discover() if fn.node is not None]
