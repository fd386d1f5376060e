"""The simulated board's UART console, served on a real pseudo-terminal.

`SimConsole` opens a pty pair (os.openpty); the host opens the slave path (`.path`) with
pyserial as it would /dev/ttyACM0. The board side answers the line protocol of
akida_rt.wire.transport_wire (identify, reset) and writes the firmware's log records (those
of the chip's own serial number) as `log` lines. When the chip is unplugged the pty is
hung up, so the host's reads fail as they do when a USB console disappears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty

from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

from akida_rt.wire import transport_wire as tw

log = logging.getLogger(__name__)


class _Forward(logging.Handler):
    """Copies the simulator's log records about one chip onto its console."""

    def __init__(self, console: SimConsole) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            return
        serial = self._console.chip.serial
        if text.startswith(serial):
            self._console.log(record.levelname, text[len(serial) :].lstrip(" :"))


class SimConsole:
    """A console for `chip` on a pseudo-terminal (call `close()` when done)."""

    def __init__(self, chip: Akd1000Chip) -> None:
        self.chip = chip
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: a UART is 8-bit clean
        self.path = os.ttyname(self._slave)
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self._handler = _Forward(self)
        logging.getLogger("akida_rt.firmware_sim").addHandler(self._handler)
        self._thread = threading.Thread(target=self._serve, name=f"simtty-{chip.serial}")
        self._thread.daemon = True
        self._thread.start()
        self.log("INFO", f"console up on {self.path}")

    def log(self, level: str, text: str) -> None:
        """Write one firmware log line."""
        self._send(f"log {level} {text}\n")

    def _send(self, line: str) -> None:
        with self._write_lock:
            if self._closed.is_set():
                return
            try:
                os.write(self._master, line.encode())
            except OSError as exc:
                log.debug("sim console write failed: %s", exc)

    def _serve(self) -> None:
        buf = b""
        while not self._closed.is_set():
            if not self.chip.present:
                self.hangup()
                return
            try:  # the fd may be closed under us by hangup()
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self._command(raw.strip().decode("ascii", "replace"))

    def _command(self, command: str) -> None:
        if not command:
            return
        if command == "identify":
            self._send(
                tw.format_reply(
                    "identify",
                    {
                        "vendor": f"{self.chip.vendor_id:04x}",
                        "device": f"{self.chip.device_id:04x}",
                        "serial": self.chip.serial,
                        "fw": "none",  # AKD1000 runs no firmware: the host drives its registers
                        "boot": str(self.chip.boot_count),
                    },
                )
            )
        elif command == "reset":
            self.chip.reboot()
            self.log("INFO", f"reset from console: boot {self.chip.boot_count}")
            self._send(tw.format_reply("reset", {"boot": str(self.chip.boot_count)}))
        else:
            self._send(f"err {command} unknown command\n")

    def hangup(self) -> None:
        """The console disappears (board unplugged): the host's reads fail."""
        with self._write_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            logging.getLogger("akida_rt.firmware_sim").removeHandler(self._handler)
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def close(self) -> None:
        """Stop serving and release the pty."""
        self.hangup()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)
