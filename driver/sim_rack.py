"""Simulated boards plugged in behind the real pcie and usb transports (`SimRack`): fake
sysfs, /dev/akidaN, a pyusb backend and a console, so the board drivers drive them.

With the sim:// transport (sim_transport.py), the only akida_rt.driver module that imports
akida_rt.firmware_sim (a contract in .importlinter); production modules never import it.
PCIe boards get a fake sysfs tree and a /dev/akidaN node served through `fileio`, USB boards
a pyusb backend and a UART console on a pseudo-terminal. `$AKIDA_SIM_BOARDS` (e.g.
`pcie:2,usb:1`) attaches such boards at the first discovery of a process (`discover_urls`,
named in driver/discovery.py), so `akida devices` shows them.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from akida_rt.driver import fileio, serial_console, sysfs
from akida_rt.driver import usb as usb_transport

from akida_rt.errors import (
    AkidaError,
    DeviceNotFound,
)

if TYPE_CHECKING:
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip
    from akida_rt.firmware_sim.console import SimConsole

log = logging.getLogger(__name__)

_rack: SimRack | None = None
_rack_lock = threading.Lock()


class SimRack:
    """A set of simulated boards plugged into this process's seams.

    Args:
        root: directory for the fake system root (a temporary one when None).
        driver_loaded: whether the fake sysfs shows akida_dw_edma loaded.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, driver_loaded: bool = True):
        from akida_rt.firmware_sim.pcie_node import SimPcieHost
        from akida_rt.firmware_sim.usb_backend import SimUsbBackend

        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="akida-sim-"))
        self.pcie = SimPcieHost(self.root, driver_loaded=driver_loaded)
        self.usb = SimUsbBackend()
        self.chips: list[Akd1000Chip] = []
        self.consoles: dict[str, SimConsole] = {}
        sysfs.add_sysroot(self.root)
        usb_transport.add_backend(self.usb)

    def _chip(self, serial: str, spec: str, device_id: int | None, mem: int | None) -> Akd1000Chip:
        from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

        if spec != "AKD1000":
            raise DeviceNotFound(f"simulated board '{spec}': only AKD1000 is simulated")
        chip = Akd1000Chip(serial)
        if device_id is not None:
            chip.device_id = device_id
        self.chips.append(chip)
        return chip

    def add_pcie(
        self,
        serial: str | None = None,
        spec: str = "AKD1000",
        device_id: int | None = None,
        mem: int | None = None,
    ) -> str:
        """Plug a simulated PCIe board in; returns its `pcie://` URL."""
        serial = serial or f"SIMP{len(self.pcie.slots) + 1:04d}"
        chip = self._chip(serial, spec, device_id, mem)
        slot = self.pcie.add(chip)
        fileio.mount(str(slot.node_path), slot.provider)
        return f"pcie://{slot.node_path}"

    def add_usb(
        self,
        serial: str | None = None,
        spec: str = "AKD1000",
        device_id: int | None = None,
        mem: int | None = None,
        console: bool = True,
    ) -> str:
        """Plug a simulated USB board in (with its console); returns its `usb://` URL."""
        from akida_rt.firmware_sim.console import SimConsole

        index = sum(1 for c in self.chips if c.serial.startswith("SIMU")) + 1
        chip = self._chip(serial or f"SIMU{index:04d}", spec, device_id, mem)
        self.usb.attach(chip)
        if console:
            con = SimConsole(chip)
            self.consoles[chip.serial] = con
            serial_console.trust_port(con.path)
        return f"usb://{chip.vendor_id:04x}:{chip.device_id:04x}?serial={chip.serial}"

    def chip(self, serial: str) -> Akd1000Chip:
        """The Akd1000Chip with `serial`."""
        for chip in self.chips:
            if chip.serial == serial:
                return chip
        raise KeyError(serial)

    def __enter__(self) -> SimRack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Unplug everything and remove the fake system root."""
        for slot in self.pcie.slots:
            fileio.unmount(str(slot.node_path))
        for con in self.consoles.values():
            serial_console.untrust_port(con.path)
            con.close()
        sysfs.remove_sysroot(self.root)
        usb_transport.remove_backend(self.usb)
        for chip in self.chips:
            chip.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


MAX_SIM_BOARDS = 16  # of each kind: a rack of simulated boards, not a stress test


def parse_config(text: str) -> dict[str, int]:
    """`"pcie:2,usb:1"` (or `"pcie,usb"`) -> {"pcie": 2, "usb": 1}."""
    counts: dict[str, int] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        kind, _, count = item.partition(":")
        if kind not in ("pcie", "usb") or (count and not count.isdigit()):
            raise AkidaError(f"AKIDA_SIM_BOARDS: bad entry {item!r}; expected pcie[:N] or usb[:N]")
        counts[kind] = counts.get(kind, 0) + int(count or 1)
    for kind, n in counts.items():
        if not 1 <= n <= MAX_SIM_BOARDS:
            raise AkidaError(
                f"AKIDA_SIM_BOARDS: {kind}:{n} asks for {n} boards; give 1..{MAX_SIM_BOARDS} "
                f"of each kind, e.g. {kind}:2"
            )
    return counts


def _stable_root(counts: dict[str, int]) -> Path | None:
    """The same system root for the same $AKIDA_SIM_BOARDS in every process, so the pcie://
    ids `akida devices` prints work with --device later; None (a temporary root) when the
    per-user folder is not ours."""
    base = Path(tempfile.gettempdir()) / f"akida-sim-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        st = base.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return base / "-".join(f"{kind}{n}" for kind, n in sorted(counts.items()))


def attach_configured() -> SimRack | None:
    """Attach the boards `$AKIDA_SIM_BOARDS` asks for (once per process)."""
    global _rack
    text = os.environ.get("AKIDA_SIM_BOARDS", "")
    if not text:
        return None
    with _rack_lock:
        if _rack is None:
            counts = parse_config(text)
            rack = SimRack(_stable_root(counts))
            for _ in range(counts.get("pcie", 0)):
                rack.add_pcie()
            for _ in range(counts.get("usb", 0)):
                rack.add_usb()
            atexit.register(rack.close)
            control = os.environ.get("AKIDA_SIM_CONTROL")
            if control:  # tests pull these boards out from another process
                from akida_rt.firmware_sim.control import RackControl

                atexit.register(RackControl(control, rack.pcie, rack.usb).close)
            _rack = rack
            log.info("simulated boards attached: %s (root %s)", counts, rack.root)
        return _rack


def discover_urls() -> list[str]:
    """The discoverer of simulated boards (first in akida_rt.driver.discovery.DISCOVERERS).

    Attaches the boards `$AKIDA_SIM_BOARDS` asks for and lists no URL of its own: the
    boards sit behind the pcie and usb seams, where those transports' discoverers find
    them as they find boards. Without the variable it does nothing (no simulator loads).
    """
    attach_configured()
    return []
