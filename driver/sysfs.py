"""PCIe discovery through sysfs: Akida functions by vendor/device id and their /dev/akidaN nodes.

The system root is configurable so tests and demos can point discovery at a fake tree:
`AKIDA_SYSROOT` (default `/`; several roots separated by `os.pathsep`) names directories
holding `sys/` and `dev/`, and `add_sysroot()` adds one at run time (the simulated boards
use it). A node `<root>/dev/akidaN` always belongs to the sysfs tree `<root>/sys`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: (vendor, device) -> model name, as the akida_dw_edma kernel driver binds them.
PCI_IDS: dict[tuple[int, int], str] = {
    (0x1E7C, 0xBCA1): "AKD1000",
    (0x1E7C, 0xA500): "AKD1500",
}
KERNEL_DRIVER = "akida_dw_edma"
NODE_PREFIX = "akida"
#: Used when sysfs gives no BAR0 size (resource file missing or unreadable).
DEFAULT_BAR0_SIZE = 1 << 20

_extra_roots: list[Path] = []
_lock = threading.Lock()


@dataclass(frozen=True)
class PciFunction:
    """One Akida PCI function as sysfs shows it."""

    address: str  # e.g. 0000:01:00.0
    vendor: int
    device: int
    model: str
    sysfs_path: Path
    sysroot: Path
    node: Path | None  # /dev/akidaN, or None when no node is registered
    driver: str | None  # bound kernel driver, or None
    bar0_size: int

    @property
    def pci_id(self) -> str:
        return f"{self.vendor:04x}:{self.device:04x}"


def sysroots() -> list[Path]:
    """Every system root to scan: `$AKIDA_SYSROOT` (default `/`) then added roots."""
    env = os.environ.get("AKIDA_SYSROOT", "/")
    roots = [Path(p) for p in env.split(os.pathsep) if p]
    with _lock:
        return roots + [r for r in _extra_roots if r not in roots]


def add_sysroot(root: str | os.PathLike[str]) -> None:
    """Scan `root` (holding `sys/` and `dev/`) in addition to the configured roots."""
    with _lock:
        path = Path(root)
        if path not in _extra_roots:
            _extra_roots.append(path)


def remove_sysroot(root: str | os.PathLike[str]) -> None:
    """Stop scanning a root added with `add_sysroot()`."""
    with _lock:
        path = Path(root)
        if path in _extra_roots:
            _extra_roots.remove(path)


def _read_hex(path: Path) -> int | None:
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def _bar0_size(dev: Path) -> int:
    try:
        first = (dev / "resource").read_text().splitlines()[0].split()
        start, end = int(first[0], 16), int(first[1], 16)
    except (OSError, IndexError, ValueError):
        return DEFAULT_BAR0_SIZE
    return end - start + 1 if end > start else DEFAULT_BAR0_SIZE


def _node_name(sys_dir: Path, dev: Path) -> str | None:
    """The misc node of a PCI function: `<dev>/misc/akidaN`, else via `class/misc`."""
    misc = dev / "misc"
    if misc.is_dir():
        names = sorted(p.name for p in misc.iterdir() if p.name.startswith(NODE_PREFIX))
        if names:
            return names[0]
    cls = sys_dir / "class" / "misc"
    if cls.is_dir():
        real = dev.resolve()
        for entry in sorted(cls.iterdir()):
            if entry.name.startswith(NODE_PREFIX) and (entry / "device").resolve() == real:
                return entry.name
    return None


def _driver(dev: Path) -> str | None:
    link = dev / "driver"
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return None


def scan(sysroot: str | os.PathLike[str] = "/") -> list[PciFunction]:
    """Akida PCI functions under one system root, in PCI address order."""
    root = Path(sysroot)
    sys_dir = root / "sys"
    devices = sys_dir / "bus" / "pci" / "devices"
    found: list[PciFunction] = []
    try:
        entries = sorted(devices.iterdir())
    except OSError:
        return found
    for dev in entries:
        vendor, device = _read_hex(dev / "vendor"), _read_hex(dev / "device")
        if vendor is None or device is None or (vendor, device) not in PCI_IDS:
            continue
        name = _node_name(sys_dir, dev)
        found.append(
            PciFunction(
                address=dev.name,
                vendor=vendor,
                device=device,
                model=PCI_IDS[(vendor, device)],
                sysfs_path=dev,
                sysroot=root,
                node=root / "dev" / name if name else None,
                driver=_driver(dev),
                bar0_size=_bar0_size(dev),
            )
        )
    return found


def scan_all() -> list[PciFunction]:
    """Akida PCI functions under every configured system root."""
    return [f for root in sysroots() for f in scan(root)]


def sysroot_of_node(node: str | os.PathLike[str]) -> Path:
    """The system root a node belongs to: `/dev/akida0` -> `/`."""
    return Path(os.path.abspath(node)).parent.parent


def function_of_node(node: str | os.PathLike[str]) -> PciFunction | None:
    """The PCI function whose node is `node`, or None if sysfs does not show one."""
    want = Path(os.path.abspath(node))
    for fn in scan(sysroot_of_node(want)):
        if fn.node == want:
            return fn
    return None


def module_loaded(sysroot: str | os.PathLike[str] = "/") -> bool:
    """Whether the akida_dw_edma kernel module is loaded (`/sys/module/<name>` exists)."""
    return (Path(sysroot) / "sys" / "module" / KERNEL_DRIVER).is_dir()


def module_version(sysroot: str | os.PathLike[str] = "/") -> str | None:
    """The loaded kernel module's version string, when it declares one."""
    try:
        return (Path(sysroot) / "sys" / "module" / KERNEL_DRIVER / "version").read_text().strip()
    except OSError:
        return None
