"""Live event sources: a Prophesee RAW byte stream (EVT2, EVT2.1 or EVT3, as a camera's
driver or `metavision` tools write it) from a TCP socket, a FIFO or a pipe, and
dv-processing's network event stream (`dv://HOST:PORT`, an iniVation camera or DV).

Each is an EventReader whose chunks arrive as the bytes do: read only when the consumer
asks for the next chunk, so a slow model holds the sender back (TCP's window, the pipe's
buffer) instead of queueing without bound. A TCP or DV source that disconnects or stalls
reconnects for `reconnect_s` seconds before it gives up; times after a reconnection that
go back are shifted to follow on (a restarted camera's clock starts again).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import stat
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from akida_rt.errors import EventFileError, SourceError
from akida_rt.stream.events import OnError, SensorInfo, TimeGuard, make_events
from akida_rt.stream.prophesee import MAX_HEADER, Decoder, sensor_info

log = logging.getLogger(__name__)
READ_BYTES = 1 << 20  # at most this much per read: a chunk as soon as bytes are there


def is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _decoder_for(fmt: str) -> tuple[type[Decoder], np.dtype]:
    if fmt == "EVT2":
        from akida_rt.stream.evt2 import WORD, Evt2Decoder

        return Evt2Decoder, WORD
    if fmt == "EVT2.1":
        from akida_rt.stream.evt21 import WORD as WORD21
        from akida_rt.stream.evt21 import Evt21Decoder

        return Evt21Decoder, WORD21
    from akida_rt.stream.evt3 import WORD as WORD3
    from akida_rt.stream.evt3 import Evt3Decoder

    return Evt3Decoder, WORD3


class RawStream:
    """A RAW byte stream: the `%` header, then words, from `connect()` (called again to
    reconnect; returns a readable file descriptor's owner).

    Args:
        name: the source as the user gave it (for messages).
        connect: opens the stream; returns an object with fileno() and close().
        fmt, sensor: used when the stream has no header.
        stall_s: no byte for this long is a stall (then reconnect, or SourceError).
        reconnect_s: how long to try reconnecting after a disconnect or stall (0: never).
    """

    def __init__(
        self,
        name: str,
        connect: Any,
        *,
        on_error: OnError | str = OnError.RAISE,
        fmt: str = "",
        sensor: tuple[int, int] | None = None,
        stall_s: float = 5.0,
        reconnect_s: float = 0.0,
    ) -> None:
        self.path = name
        self.on_error = OnError(on_error)
        self._connect, self._fmt_hint, self._sensor_hint = connect, fmt, sensor
        self.stall_s, self.reconnect_s = stall_s, reconnect_s
        self.skipped: dict[str, int] = {}
        self.reconnects = 0
        self._conn = connect()
        self._pending = b""
        self._open_segment()

    # the RawReader interface the decoders report to
    def bad(self, offset: int, what: str, count: int = 1) -> None:
        if self.on_error is OnError.RAISE:
            raise EventFileError(self.path, offset, what)
        if what not in self.skipped:
            log.warning("%s: at %d: %s (skipping such words)", self.path, offset, what)
        self.skipped[what] = self.skipped.get(what, 0) + count

    def _read(self, n: int) -> bytes:
        """Up to n bytes as soon as some are there; b"" at the end; SourceError on a stall."""
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        fd = self._conn.fileno()
        ready, _, _ = select.select([fd], [], [], self.stall_s)
        if not ready:
            raise SourceError(f"{self.path}: no data for {self.stall_s:g} s (the source stalled)")
        try:
            return os.read(fd, n)
        except OSError as exc:
            if isinstance(exc, ConnectionResetError):
                return b""
            raise SourceError(f"{self.path}: {exc.strerror or exc}") from None

    def _open_segment(self) -> None:
        """Read the header (if any) of a new connection; set up the decoder."""
        fields: dict[str, str] = {}
        buf, self._pending, pos = self._pending, b"", 0
        while True:
            while len(buf) <= pos and (more := self._read(4096)):
                buf += more
            if buf[pos : pos + 1] != b"%":
                break
            while (nl := buf.find(b"\n", pos)) < 0:
                if len(buf) > MAX_HEADER:
                    raise EventFileError(self.path, pos, "the RAW header does not end within 1 MiB")
                if not (more := self._read(4096)):
                    raise EventFileError(self.path, len(buf), "the stream ends inside its header")
                buf += more
            text = buf[pos + 1 : nl].decode("ascii", "replace").strip()
            pos = nl + 1
            if text == "end":
                break
            key, _, value = text.partition(" ")
            fields[key.lower()] = value.strip()
        self._pending = buf[pos:]
        if not fields and not self._fmt_hint:
            raise SourceError(f"{self.path}: the stream has no RAW header naming its format; "
                              "add ?format=evt3 (or evt2, evt21) to the source")  # fmt: skip
        info = sensor_info(fields, self.path, self._fmt_hint)
        if self._sensor_hint:
            info = SensorInfo(*self._sensor_hint, info.format)
        self.sensor = info
        self.t0 = int(fields.get("t0", "0") or 0)
        cls, self.word = _decoder_for(info.format)
        self.decode = cls(self)  # type: ignore[arg-type]
        self.guard = TimeGuard(self.path, self.on_error)
        self.offset = pos

    def _reconnect(self, why: str) -> bool:
        if self.reconnect_s <= 0:
            return False
        self._conn.close()
        deadline = time.monotonic() + self.reconnect_s
        while time.monotonic() < deadline:
            try:
                self._conn = self._connect()
            except OSError:
                time.sleep(0.05)
                continue
            self.reconnects += 1
            log.warning("%s: %s; reconnected", self.path, why)
            self._pending = b""
            return True
        return False

    def chunks(self) -> Iterator[np.ndarray]:
        tail = b""
        shift = 0  # added to times after a reconnection that go back
        last = None
        while True:
            try:
                data = self._read(READ_BYTES)
            except SourceError as exc:
                if self._reconnect(str(exc).split(": ", 1)[-1]):
                    data = None
                else:
                    raise
            if data is None or not data:
                if data is not None and not self._reconnect("the sender closed the stream"):
                    if tail:
                        self.bad(self.offset, "the stream ends inside a word (truncated)")
                    return
                tail = b""
                self._open_segment()
                continue
            data = tail + data
            size = self.word.itemsize
            whole = len(data) - len(data) % size
            tail = data[whole:]
            words = np.frombuffer(data, self.word, whole // size)
            w, h = self.sensor.width, self.sensor.height
            ev = self.decode.clean(words, self.offset, w, h, -(1 << 63))
            offsets: np.ndarray | int = self.offset
            if ev is None:  # something to report: decode again with each word's offset
                ev, offsets = self.decode(words, self.offset)
            self.offset += whole
            if len(ev) == 0:
                continue
            ev["t"] += self.t0 + shift
            if last is not None and int(ev["t"][0]) < last and self.guard.last < -(1 << 62):
                shift += last - int(ev["t"][0]) + 1  # a new segment's clock restarted
                ev["t"] += last - int(ev["t"][0]) + 1
            ev = self.guard.check(ev, offsets)
            if len(ev):
                last = int(ev["t"][-1])
                yield ev

    def close(self) -> None:
        self._conn.close()


class _Fd:
    """A raw file descriptor with fileno() and close()."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def tcp_connector(host: str, port: int, timeout: float = 5.0) -> Any:
    def connect() -> socket.socket:
        return socket.create_connection((host, port), timeout=timeout)

    return connect


def fifo_connector(path: str) -> Any:
    """Opens the FIFO (or any readable file) for reading; blocks until a writer opens it."""

    def connect() -> _Fd:
        return _Fd(os.open(path, os.O_RDONLY))

    return connect


def stdin_connector(stream: BinaryIO | None = None) -> Any:
    import sys

    fd = (stream or sys.stdin.buffer).fileno()
    return lambda: _Fd(os.dup(fd))


class DvNetworkStream:
    """dv-processing's network event stream (`dv.io.NetworkReader`, from DV or a
    `dv.io.NetworkWriter`) as an EventReader; reconnects like RawStream."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_error: OnError | str = OnError.RAISE,
        stall_s: float = 5.0,
        reconnect_s: float = 0.0,
        sensor: tuple[int, int] | None = None,
        path: str = "",
    ) -> None:
        self.path = path or f"dv://{host}:{port}"
        try:
            import dv_processing as dv
        except ImportError:
            raise SourceError(
                f"{self.path}: needs dv-processing: pip install 'akida-rt[stream]'"
            ) from None
        self._dv, self.host, self.port = dv, host, port
        self.stall_s, self.reconnect_s = stall_s, reconnect_s
        self.reconnects = 0
        self.guard = TimeGuard(self.path, OnError(on_error))
        self._reader = self._open()
        size = self._reader.getEventResolution() if self._reader.isEventStreamAvailable() else None
        w, h = sensor or (tuple(size) if size else (0, 0))
        self.sensor = SensorInfo(int(w), int(h), "DV")

    def _connect(self) -> Any:
        """The dv-processing reader (raises RuntimeError when it cannot be had)."""
        return self._dv.io.NetworkReader(self.host, self.port)

    def _open(self) -> Any:
        try:
            return self._connect()
        except RuntimeError as exc:
            first = (str(exc).splitlines() or ["refused"])[0].split(" [")[0]
            raise SourceError(f"{self.path}: cannot connect ({first[:120]})") from None

    def chunks(self) -> Iterator[np.ndarray]:
        waited = time.monotonic()
        while True:
            try:
                store = self._reader.getNextEventBatch()
                running = self._reader.isRunning()
            except RuntimeError:
                store, running = None, False
            if store is not None and len(store):
                arr = store.numpy()
                ev = make_events(arr["timestamp"], arr["x"], arr["y"], arr["polarity"])
                waited = time.monotonic()
                ev = self.guard.check(ev, 0)
                if len(ev):
                    yield ev
                continue
            stalled = time.monotonic() - waited > self.stall_s
            if not running or stalled:
                why = "stalled" if running else "disconnected"
                if not self._retry():
                    if not running:
                        return  # the sender ended the stream
                    raise SourceError(f"{self.path}: no events for {self.stall_s:g} s ({why})")
                waited = time.monotonic()
                continue
            time.sleep(0.001)

    def _retry(self) -> bool:
        deadline = time.monotonic() + self.reconnect_s
        while time.monotonic() < deadline:
            try:
                self._reader = self._connect()
                self.reconnects += 1
                log.warning("%s: reconnected", self.path)
                return True
            except RuntimeError:
                time.sleep(0.1)
        return False

    def close(self) -> None:
        self._reader = None


class DvCameraStream(DvNetworkStream):
    """An iniVation camera on USB (DVXplorer, DAVIS, DVS128) through dv-processing's
    camera driver, `inivation:` (the first one found) or `inivation:SERIAL`; a camera
    that is unplugged is reopened like a dropped network stream."""

    def __init__(self, serial: str = "", **kw: Any) -> None:
        self.serial = serial
        super().__init__("", 0, path=f"inivation:{serial}", **kw)

    def _connect(self) -> Any:
        camera = self._dv.io.camera
        if not self.serial:
            if not camera.discover():
                raise RuntimeError("no iniVation camera found on USB")
            return camera.open()
        return camera.open(self.serial)

    def _open(self) -> Any:
        try:
            return self._connect()
        except (RuntimeError, IndexError) as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.startswith("RuntimeError: ")]
            why = lines[0].removeprefix("RuntimeError: ") if lines else str(exc).splitlines()[0]
            raise SourceError(
                f"{self.path}: cannot open the camera ({why[:120]}); check the USB cable and "
                "udev permissions, or stream from DV with dv://HOST:PORT"
            ) from None
