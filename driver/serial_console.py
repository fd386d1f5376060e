"""The board's UART console over pyserial: firmware log lines, identify and reset.

The console is not a Bus: it carries the line protocol of akida_rt.wire.transport_wire.
Firmware log lines are forwarded to the `akida_rt.firmware.<port>` logger; `identify()`
and `reset()` send a command and wait for its reply.

A port is opened only when it is identified as ours: its USB VID:PID is an Akida board's
(serial.tools.list_ports), or it was trusted explicitly with `trust_port()` (the simulated
console's pseudo-terminal) or `$AKIDA_CONSOLE_PORTS`. Anything else (for example a
machine's own /dev/ttyS0) is refused before it is opened. URLs: `serial:///dev/ttyACM0`,
a plain path, or pyserial's `loop://` (unit tests of the line protocol).
"""

from __future__ import annotations

import logging
import os
import queue
import termios
import threading
from typing import Any
from urllib.parse import urlsplit

import serial
import serial.tools.list_ports
from akida_rt.driver import usb_ids

from akida_rt.errors import (
    DeviceError,
    DeviceLost,
    DeviceNotFound,
    PermissionDeniedError,
    TransportTimeout,
)
from akida_rt.wire import transport_wire as tw

log = logging.getLogger(__name__)
_trusted: set[str] = set()
_lock = threading.Lock()
_LEVELS = {name: getattr(logging, name) for name in tw.LOG_LEVELS}


def trust_port(path: str) -> None:
    """Allow `path` to be opened although it has no Akida USB id (a simulator's pty)."""
    with _lock:
        _trusted.add(os.path.realpath(path))


def untrust_port(path: str) -> None:
    """Undo `trust_port()`."""
    with _lock:
        _trusted.discard(os.path.realpath(path))


def _trusted_ports() -> set[str]:
    env = os.environ.get("AKIDA_CONSOLE_PORTS", "")
    with _lock:
        return _trusted | {os.path.realpath(p) for p in env.split(os.pathsep) if p}


def console_ports() -> list[str]:
    """Ports identified as Akida consoles (by USB id, or trusted), without opening any."""
    ours = {
        os.path.realpath(p.device)
        for p in serial.tools.list_ports.comports()
        if p.vid is not None and usb_ids.lookup(p.vid, p.pid or 0) is not None
    }
    return sorted(ours | {p for p in _trusted_ports() if os.path.exists(p)})


def port_of_url(url: str) -> str:
    """The port a console URL names: `serial:///dev/ttyACM0` -> `/dev/ttyACM0`."""
    parts = urlsplit(url)
    if parts.scheme == "serial":
        return parts.path
    return url


def _check_ours(port: str) -> None:
    if port.startswith("loop://"):
        return
    if os.path.realpath(port) not in console_ports():
        raise DeviceNotFound(
            f"{port} is not identified as an Akida console (no Akida USB id, not trusted); "
            "refusing to open it. Trust it explicitly with AKIDA_CONSOLE_PORTS if you are sure."
        )


class Console:
    """An open console: a reader thread forwards log lines and collects replies.

    Args:
        port: an open pyserial port (any `serial.SerialBase`, `loop://` included).
        name: the name used in messages and in the firmware logger's name.
    """

    def __init__(self, port: Any, name: str) -> None:
        self._port = port
        self.name = name
        self.firmware_log = logging.getLogger(
            "akida_rt.firmware." + name.strip("/").replace("/", "_").replace(".", "_")
        )
        self._replies: queue.Queue[tuple[str, str, str]] = queue.Queue()
        self._error: Exception | None = None
        self._closed = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._reader, name=f"console-{name}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        buf = b""
        while not self._closed.is_set():
            try:
                data = self._port.read(self._port.in_waiting or 1)
            except (
                serial.SerialException,
                OSError,
                termios.error,
                TypeError,
                ValueError,
                AttributeError,
            ) as exc:
                if not self._closed.is_set():
                    self._error = exc
                    self._replies.put(("lost", "", str(exc)))
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self._line(raw.rstrip(b"\r").decode("utf-8", "replace"))

    def _line(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind == "log":
            level, _, text = rest.partition(" ")
            self.firmware_log.log(_LEVELS.get(level, logging.INFO), "%s", text)
        elif kind in ("ok", "err"):
            command, _, body = rest.partition(" ")
            self._replies.put((kind, command, body))
        elif line:
            self.firmware_log.info("%s", line)

    def command(self, command: str, timeout: float = 2.0) -> dict[str, str]:
        """Send `command` and return the fields of its `ok` reply."""
        if self._error is not None or self._closed.is_set():
            raise DeviceLost(f"console {self.name}: port is gone ({self._error or 'closed'})")
        while not self._replies.empty():  # stale replies of commands that timed out
            self._replies.get_nowait()
        with self._write_lock:
            try:
                self._port.write(f"{command}\n".encode())
                self._port.flush()
            except (serial.SerialException, OSError, termios.error) as exc:
                raise DeviceLost(f"console {self.name}: write failed ({exc})") from exc
        try:
            kind, name, body = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TransportTimeout(
                f"console {self.name}: no reply to '{command}' in {timeout:.1f} s"
            ) from None
        if kind == "lost":
            raise DeviceLost(f"console {self.name}: port is gone ({body})")
        if kind == "err" or name != command:
            raise DeviceError(f"console {self.name}: '{command}' failed: {body or name}")
        return tw.parse_fields(body)

    def identify(self, timeout: float = 2.0) -> dict[str, str]:
        """The board's identity: vendor, device, serial, firmware version, boot count."""
        return self.command("identify", timeout)

    def reset(self, timeout: float = 5.0) -> dict[str, str]:
        """Hard-reset the board through its console; returns the reply (new boot count)."""
        return self.command("reset", timeout)

    def close(self) -> None:
        """Stop the reader and close the port."""
        if self._closed.is_set():
            return
        self._closed.set()
        if hasattr(self._port, "cancel_read"):
            self._port.cancel_read()
        self._thread.join(timeout=1.0)
        self._port.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_console(url: str, baudrate: int = tw.CONSOLE_BAUD) -> Console:
    """Open the console at `url` after checking the port is an Akida console."""
    port = port_of_url(url)
    _check_ours(port)
    try:
        handle = serial.serial_for_url(port, baudrate=baudrate, timeout=0.2, exclusive=True)
    except serial.SerialException as exc:
        cause = exc.__context__ or exc
        if isinstance(cause, PermissionError) or getattr(exc, "errno", None) == 13:
            from akida_rt.driver import udev

            raise PermissionDeniedError(udev.permission_message(port)) from exc
        raise DeviceNotFound(f"console {port}: cannot open ({exc})") from exc
    return Console(handle, port)
