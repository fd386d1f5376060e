"""The sim:// transport: a bus onto the simulated AKD1000, in this process or in a child
process, the way a board's registers and memory answer behind /dev/akidaN.

With sim_rack.py (simulated boards behind the real pcie and usb transports), the only
akida_rt.driver module that imports akida_rt.firmware_sim (a contract in .importlinter);
the production transports never import it, they reach it by name (the "sim" scheme in
bus.py).

sim:// URLs: `sim://akd1000/0` (in-process, one chip per URL per process) and
`sim://akd1000/0?mode=process` (a child process per bus, so a crash is isolated).
Query option: `serial=SIM0001`. The chip is the simulated AKD1000 at the real interface
(firmware_sim/akd1000_chip.py): the same bus a board behind /dev/akidaN answers.
OS errors from the chip are translated here, in one place.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, urlsplit

from akida_rt.driver.bus import Bus

from akida_rt.errors import (
    DeviceLost,
    DeviceNotFound,
    TransportError,
    TransportTimeout,
)

if TYPE_CHECKING:
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

log = logging.getLogger(__name__)

KINDS = {"akd1000": "AKD1000"}
MAX_SIM_INDEX = 63  # simulated chips a process may open by URL
_chips: dict[tuple[str, str, str, int], Akd1000Chip] = {}
_chips_lock = threading.Lock()


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
