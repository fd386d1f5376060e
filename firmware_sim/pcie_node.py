"""Simulated PCIe boards behind the file-io seam: a fake sysfs tree and /dev/akidaN nodes.

`SimPcieHost` builds a system root (`sys/` + `dev/`) laid out as Linux shows a PCI
function bound to the akida_dw_edma kernel driver, and one `SimPcieSlot` per Akd1000Chip.
A slot's `provider` answers `open()` on its node path the way the kernel driver does:
`pread`/`pwrite` at device physical addresses move data in 1 KiB DMA chunks. That is
all: registers too are reached by pread/pwrite
at their physical address, a transfer touching the eDMA window 0x20000000-0x203FFFFF is
refused with EINVAL and `mmap` fails with ENODEV, as on akida_dw_edma. The host side mounts it on the node path with
`akida_rt.driver.fileio.mount()`; this module never imports the driver.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

from akida_rt.akd1000.memory_map import EDMA_WINDOW_END, EDMA_WINDOW_START, touches_edma_window
from akida_rt.wire.transport_wire import PCIE_DMA_CHUNK

log = logging.getLogger(__name__)
DRIVER = "akida_dw_edma"
_BAR0_SIZE = 0x80000  # the top-level register block the BAR decodes
_BAR0_BASE = 0xFE00_0000

#: Called with (slot, chunk index) before each DMA chunk; tests use it to fault mid-transfer.
ChunkHook = Callable[["SimPcieSlot", int], None]


class SimNodeHandle:
    """An open file on a simulated /dev/akidaN."""

    def __init__(self, slot: SimPcieSlot, placeholder_fd: int) -> None:
        self._slot = slot
        self._closed = False
        self._generation = slot.generation
        # The placeholder file stands for the node's open file: locks on it are the
        # kernel's own flock semantics, across processes too.
        self._fd = placeholder_fd

    def _check(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self._slot.sync()
        if self._generation != self._slot.generation:  # opened before a removal
            raise OSError(errno.ENODEV, "No such device")

    def _check_window(self, offset: int, n: int) -> None:
        if touches_edma_window(offset, n):
            raise OSError(
                errno.EINVAL,
                f"Invalid argument: {offset:#x}+{n} touches the eDMA window "
                f"{EDMA_WINDOW_START:#x}-{EDMA_WINDOW_END:#x}",
            )

    def pread(self, n: int, offset: int) -> bytes:
        self._check()
        self._check_window(offset, n)
        out = bytearray()
        for index, start in enumerate(range(offset, offset + n, PCIE_DMA_CHUNK)):
            self._slot.before_chunk(index)
            out += self._slot.chip.read(start, min(PCIE_DMA_CHUNK, offset + n - start))
        return bytes(out)

    def pwrite(self, data: bytes, offset: int) -> int:
        self._check()
        self._check_window(offset, len(data))
        for index, start in enumerate(range(0, len(data), PCIE_DMA_CHUNK)):
            self._slot.before_chunk(index)
            self._slot.chip.write(offset + start, bytes(data[start : start + PCIE_DMA_CHUNK]))
        return len(data)

    def mmap(self, length: int, offset: int = 0) -> None:
        """akida_dw_edma has no mmap file operation."""
        self._check()
        raise OSError(errno.ENODEV, "No such device")

    def lock(self) -> None:
        self._check()
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)


class SimNodeProvider:
    """Answers `open()` of one slot's node path, permission checks included."""

    def __init__(self, slot: SimPcieSlot) -> None:
        self._slot = slot

    def open(self, path: str, flags: int) -> SimNodeHandle:
        self._slot.sync()
        # The placeholder file carries the node's owner and mode: opening it for real
        # lets the kernel apply exactly the permission checks a device node gets.
        fd = os.open(path, (flags & os.O_ACCMODE) | os.O_CLOEXEC)
        return SimNodeHandle(self._slot, fd)


class SimPcieSlot:
    """One simulated PCI function: its sysfs entries, its node and its chip."""

    def __init__(self, host: SimPcieHost, chip: Akd1000Chip, index: int) -> None:
        self.host, self.chip, self.index = host, chip, index
        self.address = f"0000:{index + 1:02x}:00.0"
        self.node_name = f"akida{index}"
        self.node_path = host.root / "dev" / self.node_name
        self.sysfs_path = host.root / "sys" / "bus" / "pci" / "devices" / self.address
        self.provider = SimNodeProvider(self)
        self.chunk_hook: ChunkHook | None = None
        self.node_mode = 0o660
        self._plugged = False
        self.generation = 0  # counts removals; handles opened before one are dead
        self._lock = threading.Lock()

    def before_chunk(self, index: int) -> None:
        if self.chunk_hook is not None:
            self.chunk_hook(self, index)

    def sync(self) -> None:
        """Make sysfs and /dev follow the chip, as hotplug does (called on every access)."""
        if self.chip.present != self._plugged:
            if self.chip.present:
                self._attach()
            else:
                self._detach()

    def unplug(self) -> None:
        """Surprise removal: the chip vanishes, then sysfs and the node do."""
        self.chip.unplug()
        self.sync()

    def replug(self) -> None:
        """The board comes back at the same address, freshly booted."""
        self.chip.replug()
        self.sync()

    def _attach(self) -> None:
        with self._lock:
            root = self.host.root / "sys"
            real = root / "devices" / "pci0000:00" / f"0000:00:{self.index + 1:02x}.0"
            dev = real / self.address
            dev.mkdir(parents=True, exist_ok=True)
            files = {
                "vendor": f"0x{self.chip.vendor_id:04x}",
                "device": f"0x{self.chip.device_id:04x}",
                "subsystem_vendor": f"0x{self.chip.vendor_id:04x}",
                "subsystem_device": "0x0000",
                "class": "0x120000",  # processing accelerator
                "resource": f"0x{_BAR0_BASE + self.index * _BAR0_SIZE:016x} "
                f"0x{_BAR0_BASE + (self.index + 1) * _BAR0_SIZE - 1:016x} 0x0000000000040200",
            }
            for name, text in files.items():
                (dev / name).write_text(text + "\n")
            _symlink(self.sysfs_path, dev)
            if self.host.driver_loaded:
                drivers = root / "bus" / "pci" / "drivers" / DRIVER
                drivers.mkdir(parents=True, exist_ok=True)
                _symlink(dev / "driver", drivers)
                misc = dev / "misc" / self.node_name
                misc.mkdir(parents=True, exist_ok=True)
                (misc / "dev").write_text(f"10:{120 + self.index}\n")
                self.node_path.parent.mkdir(parents=True, exist_ok=True)
                self.node_path.touch()
                os.chmod(self.node_path, self.node_mode)
            self._plugged = True
        log.info("sim pcie: %s (%s) attached", self.address, self.chip.serial)

    def _detach(self) -> None:
        with self._lock:
            self.node_path.unlink(missing_ok=True)
            target = self.sysfs_path.resolve() if self.sysfs_path.is_symlink() else None
            self.sysfs_path.unlink(missing_ok=True)
            if target is not None:
                shutil.rmtree(target.parent, ignore_errors=True)
            self._plugged = False
            self.generation += 1
        log.info("sim pcie: %s (%s) removed", self.address, self.chip.serial)


def _symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


class SimPcieHost:
    """A fake system root holding simulated Akida PCI functions.

    Args:
        root: an empty directory; `sys/` and `dev/` are created in it.
        driver_loaded: whether akida_dw_edma is "loaded" (module dir, bound driver and
            node present); without it sysfs shows the functions but no node exists.
        module_version: the version the fake kernel module reports.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        driver_loaded: bool = True,
        module_version: str = "sim",
    ) -> None:
        self.root = Path(root)
        self.driver_loaded = driver_loaded
        self.slots: list[SimPcieSlot] = []
        (self.root / "sys" / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
        (self.root / "dev").mkdir(parents=True, exist_ok=True)
        if driver_loaded:
            module = self.root / "sys" / "module" / DRIVER
            module.mkdir(parents=True, exist_ok=True)
            (module / "version").write_text(module_version + "\n")

    def add(self, chip: Akd1000Chip) -> SimPcieSlot:
        """Plug `chip` into the next free slot (addresses 0000:01:00.0, 0000:02:00.0, ...)."""
        slot = SimPcieSlot(self, chip, len(self.slots))
        self.slots.append(slot)
        slot.sync()
        return slot

    def slot(self, serial: str) -> SimPcieSlot:
        """The slot whose chip has `serial`."""
        for slot in self.slots:
            if slot.chip.serial == serial:
                return slot
        raise KeyError(serial)
