"""The driver's one door to the simulator: the sim:// transport, and simulated boards
plugged in behind the real pcie and usb transports.

The only akida_rt.driver module that imports akida_rt.firmware_sim (a contract in
.importlinter); the production transports and discovery never import this module, they
reach it by name (the "sim" scheme in bus.py, the first discoverer in discovery.py).

sim:// URLs: `sim://akd1000/0` (in-process, one chip per URL per process) and
`sim://akd1000/0?mode=process` (a child process per bus, so a crash is isolated).
Query option: `serial=SIM0001`. The chip is the simulated AKD1000 at the real interface
(firmware_sim/akd1000_chip.py): the same bus a board behind /dev/akidaN answers.
OS errors from the chip are translated here, in one place.

A `SimRack` stands simulated chips behind the operating-system seams instead: PCIe boards get a
fake sysfs tree and a /dev/akidaN node served through `fileio`, USB boards a pyusb backend
and a UART console on a pseudo-terminal, so the pcie/usb/serial code that drives boards
drives them. `$AKIDA_SIM_BOARDS` (e.g. `pcie:2,usb:1`) attaches such boards at the first
discovery of a process (`discover_urls`), so `akida devices` shows them.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, urlsplit

from akida_rt.driver import fileio, serial_console, sysfs
from akida_rt.driver import usb as usb_transport
from akida_rt.driver.bus import Bus

from akida_rt.errors import (
    AkidaError,
    DeviceLost,
    DeviceNotFound,
    TransportError,
    TransportTimeout,
)

if TYPE_CHECKING:
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip
    from akida_rt.firmware_sim.console import SimConsole

log = logging.getLogger(__name__)

KINDS = {"akd1000": "AKD1000"}
MAX_SIM_INDEX = 63  # simulated chips a process may open by URL
_chips: dict[tuple[str, str, str, int], Akd1000Chip] = {}
_chips_lock = threading.Lock()
_rack: SimRack | None = None
_rack_lock = threading.Lock()


def _translate(exc: OSError, where: str) -> NoReturn:
    """Map an OS error of the simulated chip to the akida_rt exception tree."""
    if exc.errno == errno.ENODEV:
        raise DeviceLost(f"{where}: device is gone ({exc.strerror or exc})") from None
    if exc.errno == errno.ETIMEDOUT:
        raise TransportTimeout(f"{where}: transfer timed out ({exc.strerror or exc})") from None
    raise TransportError(f"{where}: {exc.strerror or exc}") from None


def parse_url(url: str) -> dict[str, Any]:
    """Options of a sim:// URL: spec name, index, serial, memory size, mode."""
    parts = urlsplit(url)
    kind = (parts.netloc or "akd1000").lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    spec = KINDS.get(kind)
    if spec is None or query.get("spec", spec) != spec:
        raise DeviceNotFound(f"{url}: unknown simulated device '{kind}'; known: {sorted(KINDS)}")
    index_text = parts.path.strip("/") or "0"
    if not index_text.isdigit():
        raise DeviceNotFound(f"{url}: device index must be a number, got '{index_text}'")
    index = int(index_text)
    if index > MAX_SIM_INDEX:
        raise DeviceNotFound(f"{url}: simulated device index must be 0..{MAX_SIM_INDEX}")
    mode = query.get("mode", "inproc")
    if mode not in ("inproc", "process"):
        raise DeviceNotFound(f"{url}: mode must be 'inproc' or 'process', got '{mode}'")
    return {
        "spec": spec,
        "index": index,
        "serial": query.get("serial", f"SIM{index + 1:04d}"),
        "mem": 0,
        "mode": mode,
    }


def shared_chip(spec: str, serial: str, mem: int, key: str = "") -> Akd1000Chip:
    """The process-wide simulated chip for these options (created on first use)."""
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

    with _chips_lock:
        chip = _chips.get((key, spec, serial, mem))
        if chip is None:
            chip = Akd1000Chip(serial)
            _chips[(key, spec, serial, mem)] = chip
        return chip


def drop_chip(chip: Akd1000Chip) -> None:
    """Power off an in-process chip and forget it (tests open many)."""
    with _chips_lock:
        for key, value in list(_chips.items()):
            if value is chip:
                del _chips[key]
    chip.close()


class SimBus(Bus):
    """A Bus straight onto an in-process Akd1000Chip."""

    def __init__(self, url: str, chip: Akd1000Chip) -> None:
        self.url = url
        self.chip = chip
        self.serial = chip.serial
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise DeviceLost(f"{self.url}: bus is closed")

    def read32(self, addr: int) -> int:
        self._check()
        return int(self.chip.read32(addr))

    def write32(self, addr: int, value: int) -> None:
        self._check()
        self.chip.write32(addr, value)

    def read(self, addr: int, n: int) -> bytes:
        self._check()
        try:
            return bytes(self.chip.read(addr, n))
        except OSError as exc:
            _translate(exc, f"{self.url} read {n} bytes at {addr:#x}")

    def write(self, addr: int, data: bytes) -> None:
        self._check()
        try:
            self.chip.write(addr, data)
        except OSError as exc:
            _translate(exc, f"{self.url} write {len(data)} bytes at {addr:#x}")

    def inject_fault(self, kind: str, count: int = 1) -> None:
        """Test hook: arm a fault on the simulated chip."""
        self.chip.inject_fault(kind, count)

    def close(self) -> None:
        self._closed = True


class ProcessBus(Bus):
    """A Bus onto a Akd1000Chip served by a child process over a socket pair.

    Args:
        url: the sim:// URL (for messages).
        options: parse_url() output.
        io_timeout_s: bound on every request/response exchange.
    """

    def __init__(self, url: str, options: dict[str, Any], io_timeout_s: float = 30.0) -> None:
        from akida_rt.firmware_sim import wire

        self.url = url
        self.serial = options["serial"]
        self._wire = wire
        self._lock = threading.Lock()
        parent, child = socket.socketpair()
        cmd = [
            sys.executable,
            "-m",
            "akida_rt.firmware_sim.server",
            "--fd",
            str(child.fileno()),
            "--serial",
            options["serial"],
        ]
        self.process = subprocess.Popen(cmd, pass_fds=(child.fileno(),), close_fds=True)
        child.close()
        parent.settimeout(io_timeout_s)
        self._sock: socket.socket | None = parent
        log.info("%s: simulator child process pid %d", url, self.process.pid)

    def _call(
        self, op: int, addr: int = 0, value: int = 0, payload: bytes = b"", count: int = 0
    ) -> bytes:
        wire = self._wire
        with self._lock:
            if self._sock is None:
                raise DeviceLost(f"{self.url}: bus is closed")
            try:
                self._sock.sendall(
                    wire.REQUEST.pack(op, count, addr, value, len(payload)) + payload
                )
                err, _, length = wire.RESPONSE.unpack(
                    wire.recv_exact(self._sock, wire.RESPONSE.size)
                )
                data = wire.recv_exact(self._sock, length) if length else b""
            except TimeoutError:
                self._drop()
                raise TransportTimeout(
                    f"{self.url}: simulator process did not answer within {self._sock_timeout()} s"
                ) from None
            except (EOFError, OSError) as exc:
                self._drop()
                code = self.process.poll()
                raise DeviceLost(
                    f"{self.url}: simulator process is gone (exit code {code}): {exc}"
                ) from None
        if err:
            _translate(OSError(err, data.decode(errors="replace")), f"{self.url}")
        return data

    def _sock_timeout(self) -> float | None:
        return self._sock.gettimeout() if self._sock is not None else None

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def read32(self, addr: int) -> int:
        return int.from_bytes(self._call(self._wire.Op.READ32, addr), "little")

    def write32(self, addr: int, value: int) -> None:
        self._call(self._wire.Op.WRITE32, addr, value)

    def read(self, addr: int, n: int) -> bytes:
        return self._call(self._wire.Op.READ, addr, n)

    def write(self, addr: int, data: bytes) -> None:
        self._call(self._wire.Op.WRITE, addr, 0, bytes(data))

    def inject_fault(self, kind: str, count: int = 1) -> None:
        """Test hook: arm a fault in the child's chip ("crash" kills the child)."""
        if kind == "crash":
            with self._lock:
                if self._sock is not None:
                    self._sock.sendall(
                        self._wire.REQUEST.pack(self._wire.Op.FAULT, 1, 0, 0, 5) + b"crash"
                    )
            self.process.wait(timeout=10)
            return
        self._call(self._wire.Op.FAULT, payload=kind.encode(), count=count)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendall(self._wire.REQUEST.pack(self._wire.Op.CLOSE, 0, 0, 0, 0))
                self._drop()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def open_bus(url: str) -> Bus:
    """Open a sim:// URL (the scheme's opener in akida_rt.driver.bus)."""
    options = parse_url(url)
    if options["mode"] == "process":
        return ProcessBus(url, options)
    key = url.split("?", 1)[0]
    return SimBus(url, shared_chip(options["spec"], options["serial"], options["mem"], key))


# ----------------------------------------------- simulated boards behind real transports
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
