"""A control socket for simulated boards living in another process, so a test can pull
them out and plug them back in from outside (the device plugin's health tests).

`$AKIDA_SIM_CONTROL=PATH` makes the process that attaches `$AKIDA_SIM_BOARDS` serve it.
One request per connection, one line each way: `unplug SERIAL`, `replug SERIAL`,
`hang SERIAL` (the firmware stops answering commands from the next one on) or `recover
SERIAL` (faults cleared and the chip rebooted, as a watchdog would), answered by `ok ...`
or `err <what went wrong>`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from akida_rt.firmware_sim.pcie_node import SimPcieHost
    from akida_rt.firmware_sim.usb_backend import SimUsbBackend

log = logging.getLogger(__name__)
OPS = ("unplug", "replug", "hang", "recover")


class RackControl:
    """Serves unplug/replug requests for the boards of one pcie host and one usb backend."""

    def __init__(self, path: str | os.PathLike[str], pcie: SimPcieHost, usb: SimUsbBackend):
        self.path = Path(path)
        self._pcie, self._usb = pcie, usb
        self.path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._sock.listen(4)
        self._thread = threading.Thread(target=self._serve, name="sim-control", daemon=True)
        self._thread.start()
        log.info("simulated boards: control socket %s", self.path)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                try:
                    line = conn.makefile("r").readline().strip()
                    conn.sendall((self.handle(line) + "\n").encode())
                except OSError as exc:
                    log.debug("control connection failed: %s", exc)

    def handle(self, line: str) -> str:
        """Answer one request line."""
        op, _, serial = line.partition(" ")
        if op not in OPS or not serial:
            return f"err unknown request {line!r}; expected one of {', '.join(OPS)} SERIAL"
        try:
            slot = self._pcie.slot(serial)
        except KeyError:
            slot = None
        try:
            if op in ("hang", "recover"):
                chip = slot.chip if slot is not None else self._usb.board(serial).chip
                if op == "hang":
                    chip.inject_fault("hang")
                else:
                    chip.clear_faults()
                    chip.reboot()
            elif slot is not None:
                slot.unplug() if op == "unplug" else slot.replug()
            elif op == "unplug":
                self._usb.unplug(serial)
            else:
                self._usb.replug(serial)
        except (KeyError, StopIteration):
            return f"err no simulated board with serial {serial!r} to {op}"
        log.warning("simulated board %s: %s", serial, op)
        return f"ok {op} {serial}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self.path.unlink(missing_ok=True)


def request(path: str | os.PathLike[str], line: str, timeout_s: float = 5.0) -> str:
    """Send one request to a control socket; its answer without the newline."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        return sock.makefile("r").readline().strip()
