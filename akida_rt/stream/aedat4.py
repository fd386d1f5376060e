"""AEDAT4 event files through dv-processing (the `[stream]` extra): reader and writer.

dv-processing reads a recording packet by packet, so long recordings never load whole.
"""

from __future__ import annotations

import logging
import os
import select
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream import dv_server
from akida_rt.stream.events import (
    DEFAULT_CHUNK,
    EVENT_DTYPE,
    OnError,
    SensorInfo,
    TimeGuard,
)

log = logging.getLogger(__name__)


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

    dv-processing runs in a child process (akida_rt.stream.dv_server): on some corrupt
    packets it never returns, holding the GIL (measured: 64 bytes of 0xff inside an LZ4
    packet hang `getNextEventBatch`), so the reader gives up when the child makes no
    progress for `stall_s` seconds, and a crash or a hang costs the child, never this
    process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
        stall_s: float = 10.0,
    ) -> None:
        self._child: dv_server.DvServer | None = None
        self.path = str(path)
        self.on_error = OnError(on_error)
        self.chunk_events = max(1, chunk_events)
        self.stall_s = stall_s
        if not os.path.isfile(self.path):
            raise EventFileError(self.path, 0, "no such file")
        self._child = dv_server.take(_dv())
        self._child.request(self.path)
        head = bytearray(8)
        self._read_into(memoryview(head), 0)
        width, height = struct.unpack("<II", head)
        self.sensor = SensorInfo(width, height, "AEDAT4")
        self.guard = TimeGuard(self.path, self.on_error)

    def _read_into(self, buf: memoryview, at_event: int) -> None:
        """Fill `buf` from the child, or raise the child's error as an EventFileError."""
        assert self._child is not None
        fd, pos = self._child.msg, 0
        while pos < len(buf):
            ready, _, _ = select.select([fd], [], [], self.stall_s)
            if not ready:
                self.close()
                raise EventFileError(self.path, at_event, f"event {at_event}: dv-processing "
                                     f"made no progress for {self.stall_s:g} s (corrupt file?)")  # fmt: skip
            got = os.readv(fd, [buf[pos:]])
            if not got:
                self.close()
                raise EventFileError(self.path, at_event, f"event {at_event}: the AEDAT4 "
                                     "reader stopped (dv-processing crashed on this file)")  # fmt: skip
            pos += got
        if bytes(buf[:4]) == dv_server.ERROR_MARK:
            (length,) = struct.unpack("<I", buf[4:])
            message = bytearray(min(length, 1 << 16))
            self._read_into(memoryview(message), at_event)
            self._done()
            raise EventFileError(self.path, at_event, message.decode(errors="replace"))

    def chunks(self) -> Iterator[np.ndarray]:
        """Chunks of `chunk_events` (the last shorter), filled from the child's slots in
        turn, the time checked per slot."""
        chunk, held, read, turn = np.empty(self.chunk_events, EVENT_DTYPE), 0, 0, 0
        head = memoryview(bytearray(8))
        while self._child is not None:
            try:
                self._read_into(head, read)
            except EventFileError as exc:
                if self.on_error is OnError.RAISE:
                    raise
                log.warning("%s (stopping)", exc)
                break
            (count,) = struct.unpack("<Q", head)
            if count == 0:
                self._done()
                break
            if count > dv_server.SLOT_EVENTS:
                self.close()
                raise EventFileError(self.path, read, f"event {read}: the AEDAT4 reader "
                                     f"sent {count} events for a slot of {dv_server.SLOT_EVENTS}")  # fmt: skip
            ev = self.guard.check(self._child.slots[turn, :count], read)
            read += count
            while len(ev):
                take = min(len(ev), self.chunk_events - held)
                chunk[held : held + take] = ev[:take]
                ev, held = ev[take:], held + take
                if held == self.chunk_events:
                    yield chunk
                    chunk, held = np.empty(self.chunk_events, EVENT_DTYPE), 0
            self._child.give_back()
            turn ^= 1
        if held:
            yield chunk[:held]

    def _done(self) -> None:
        """The file was read to its end (or to the error the child reported): the child
        serves the next one."""
        if self._child is not None:
            dv_server.put_back(self._child)
            self._child = None

    def close(self) -> None:
        """Stop reading; a child stopped mid-file is killed (it is never reused)."""
        if self._child is not None:
            self._child.kill()
            self._child = None

    def __enter__(self) -> Aedat4Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


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
