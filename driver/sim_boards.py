"""Simulated PCIe and USB boards plugged in behind the real transports' OS seams.

A `SimRack` owns SimChips and stands each behind an operating-system seam: PCIe boards
get a fake sysfs tree (added to the scanned system roots) and a /dev/akidaN node served
through `fileio`; USB boards sit on a pyusb backend (added to the searched backends) and
get a UART console on a pseudo-terminal (trusted by `serial_console`). Discovery and the
pcie/usb/serial transports then find and drive them with the code that drives boards.

`$AKIDA_SIM_BOARDS` (e.g. `pcie:2,usb:1`) attaches boards at the first discovery of the
process, so `akida devices` can show them. The boards live in this process.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from akida_rt.driver import fileio, serial_console, sysfs
from akida_rt.driver import usb as usb_transport

from akida_rt.errors import AkidaError

log = logging.getLogger(__name__)
_default: SimRack | None = None
_lock = threading.Lock()


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
        self.chips: list[Any] = []
        self.consoles: dict[str, Any] = {}
        sysfs.add_sysroot(self.root)
        usb_transport.add_backend(self.usb)

    def _chip(self, serial: str, spec: str, device_id: int | None, mem: int | None) -> Any:
        from akida_rt.firmware_sim.chip import SimChip

        from akida_rt import device_protocol as dp
        from akida_rt.hardware import spec_by_name

        chip = SimChip(
            spec_by_name(spec),
            serial,
            device_id=device_id or dp.DEVICE_ID_AKD1000,
            mem_size=mem or dp.DEFAULT_MEM_SIZE,
        )
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

    def chip(self, serial: str) -> Any:
        """The SimChip with `serial`."""
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


def parse_config(text: str) -> dict[str, int]:
    """`"pcie:2,usb:1"` (or `"pcie,usb"`) -> {"pcie": 2, "usb": 1}."""
    counts: dict[str, int] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        kind, _, count = item.partition(":")
        if kind not in ("pcie", "usb") or (count and not count.isdigit()):
            raise AkidaError(f"AKIDA_SIM_BOARDS: bad entry {item!r}; expected pcie[:N] or usb[:N]")
        counts[kind] = counts.get(kind, 0) + int(count or 1)
    return counts


def attach_configured() -> SimRack | None:
    """Attach the boards `$AKIDA_SIM_BOARDS` asks for (once per process)."""
    global _default
    text = os.environ.get("AKIDA_SIM_BOARDS", "")
    if not text:
        return None
    with _lock:
        if _default is None:
            counts = parse_config(text)
            rack = SimRack()
            for _ in range(counts.get("pcie", 0)):
                rack.add_pcie()
            for _ in range(counts.get("usb", 0)):
                rack.add_usb()
            atexit.register(rack.close)
            _default = rack
            log.info("simulated boards attached: %s (root %s)", counts, rack.root)
        return _default
