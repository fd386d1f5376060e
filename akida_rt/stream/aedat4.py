"""AEDAT4 event files through dv-processing (the `[stream]` extra): reader and writer.

dv-processing reads a recording packet by packet, so long recordings never load whole.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import (
    DEFAULT_CHUNK,
    EVENT_DTYPE,
    OnError,
    SensorInfo,
    TimeGuard,
    make_events,
    rechunk,
)

log = logging.getLogger(__name__)
ERROR_MARK = b"\xff\xff\xff\xff"  # in place of a packet's count: an error follows
STARTUP_S = 60.0  # allowance for the reader child to start (imports), before stalls count


def _dv() -> Any:
    try:
        import dv_processing
    except ImportError:
        raise EventFileError(
            "AEDAT4", 0, "reading AEDAT4 needs dv-processing: pip install 'akida-rt[stream]'"
        ) from None
    return dv_processing


class Aedat4Reader:
    """An AEDAT4 recording's event stream, in chunks of at most `chunk_events`.

    dv-processing runs in a child process: on some corrupt packets it never returns
    (measured: 64 bytes of 0xff inside an LZ4 packet hang `getNextEventBatch`), so the
    reader gives up when the child makes no progress for `stall_s` seconds, and a crash
    or a hang costs the child, never this process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
        stall_s: float = 10.0,
    ) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self.path = str(path)
        self.on_error = OnError(on_error)
        self.chunk_events = chunk_events
        self.stall_s = stall_s
        if not os.path.isfile(self.path):
            raise EventFileError(self.path, 0, "no such file")
        self._start()
        # The child's start (Python, dv-processing) is not a stall: on a loaded machine it
        # can take longer than stall_s, so the header gets STARTUP_S at least.
        width, height = struct.unpack("<II", self._read(8, 0, max(self.stall_s, STARTUP_S)))
        self.sensor = SensorInfo(width, height, "AEDAT4")
        self.guard = TimeGuard(self.path, self.on_error)

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "akida_rt.stream.aedat4", self.path]
        self._child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL)  # fmt: skip

    def _read(self, n: int, at_event: int, wait_s: float | None = None) -> bytes:
        """`n` bytes from the child, or the child's error as an EventFileError; no byte
        for `wait_s` (default stall_s) seconds is a stall."""
        wait = self.stall_s if wait_s is None else wait_s
        assert self._child is not None and self._child.stdout is not None
        out = self._child.stdout
        data = bytearray()
        while len(data) < n:
            ready, _, _ = select.select([out], [], [], wait)
            if not ready:
                self.close()
                raise EventFileError(self.path, at_event, f"event {at_event}: dv-processing "
                                     f"made no progress for {wait:g} s (corrupt file?)")  # fmt: skip
            chunk = os.read(out.fileno(), n - len(data))
            if not chunk:
                self.close()
                raise EventFileError(self.path, at_event, f"event {at_event}: the AEDAT4 "
                                     "reader stopped (dv-processing crashed on this file)")  # fmt: skip
            data += chunk
        if n == 8 and data[:4] == ERROR_MARK:
            (length,) = struct.unpack("<I", data[4:])
            message = self._read(length, at_event, wait).decode(errors="replace")
            self.close()
            raise EventFileError(self.path, at_event, message)
        return bytes(data)

    def _packets(self) -> Iterator[np.ndarray]:
        read = 0
        while True:
            try:
                (count,) = struct.unpack("<Q", self._read(8, read))
            except EventFileError as exc:
                if self.on_error is OnError.RAISE:
                    raise
                log.warning("%s (stopping)", exc)
                return
            if count == 0:
                return
            ev = np.frombuffer(self._read(count * EVENT_DTYPE.itemsize, read), EVENT_DTYPE)
            yield self.guard.check(ev, read)
            read += count

    def chunks(self) -> Iterator[np.ndarray]:
        return rechunk(self._packets(), self.chunk_events)

    def close(self) -> None:
        if self._child is not None:
            if self._child.poll() is None:
                self._child.kill()
            self._child.wait()
            if self._child.stdout is not None:
                self._child.stdout.close()
            self._child = None

    def __enter__(self) -> Aedat4Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _serve(path: str) -> int:
    """Child side: the sensor size, then each packet as (u64 count, events), then 0;
    an error as (ERROR_MARK, u32 length, message)."""
    out = sys.stdout.buffer
    read = 0
    try:
        dv = _dv()
        try:
            rec = dv.io.MonoCameraRecording(path)
        except RuntimeError as exc:
            raise EventFileError(path, 0, f"not a readable AEDAT4 recording: {exc}") from None
        if not rec.isEventStreamAvailable():
            raise EventFileError(path, 0, "the recording has no event stream")
        width, height = rec.getEventResolution() or (0, 0)
        out.write(struct.pack("<II", int(width), int(height)))
        while True:
            try:
                store = rec.getNextEventBatch()
            except RuntimeError as exc:
                raise EventFileError(path, read, f"event {read}: cannot decode the next "
                                     f"packet: {exc}") from None  # fmt: skip
            if store is None:
                break
            arr = store.numpy()
            ev = make_events(arr["timestamp"], arr["x"], arr["y"], arr["polarity"])
            out.write(struct.pack("<Q", len(ev)) + ev.tobytes())
            read += len(ev)
        out.write(struct.pack("<Q", 0))
    except EventFileError as exc:
        message = str(exc).split(": ", 2)[-1].encode()
        out.write(ERROR_MARK + struct.pack("<I", len(message)) + message)
    out.flush()
    return 0


def write_aedat4(
    path: str | os.PathLike[str], ev: np.ndarray, width: int, height: int, packet: int = 10_000
) -> None:
    """Write time-ordered events as an AEDAT4 file (dv-processing's writer, LZ4)."""
    dv = _dv()
    config = dv.io.MonoCameraWriter.EventOnlyConfig("akida_rt", (width, height))
    writer = dv.io.MonoCameraWriter(str(path), config)
    for start in range(0, len(ev), packet):
        store = dv.EventStore()
        for t, x, y, p in ev[start : start + packet][["t", "x", "y", "p"]].tolist():
            store.push_back(t, x, y, bool(p))
        writer.writeEvents(store)
    del writer  # flushes and closes the file


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1]))
