"""AEDAT4 event files through dv-processing (the `[stream]` extra): reader and writer.

dv-processing reads a recording packet by packet, so long recordings never load whole.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import signal
import struct
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
)

log = logging.getLogger(__name__)
ERROR_MARK = b"\xff\xff\xff\xff"  # in place of a packet's count: an error follows
SLOT_EVENTS = 1 << 16  # events per slot of shared memory (1 MiB)


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
    or a hang costs the child, never this process. The child is forked, not started: it
    has dv-processing loaded already (a started interpreter took 0.3 s to import it,
    longer than reading a million events). It writes events into two slots of memory
    shared with this process, in turns, and says on a pipe how many a slot holds; this
    process copies them into its chunks and hands the slot back on a second pipe (a pipe
    carrying the events themselves moved them at 0.6-1.5 GB/s here).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
        stall_s: float = 10.0,
    ) -> None:
        self._child: int | None = None  # the child's pid
        self._fds: tuple[int, int] = (-1, -1)  # its messages, our slot returns
        self.path = str(path)
        self.on_error = OnError(on_error)
        self.chunk_events = max(1, chunk_events)
        self.stall_s = stall_s
        if not os.path.isfile(self.path):
            raise EventFileError(self.path, 0, "no such file")
        _dv()  # loaded here, so that the child has it (or the error is raised here)
        self._shared = mmap.mmap(-1, 2 * SLOT_EVENTS * EVENT_DTYPE.itemsize)
        self._slots = np.frombuffer(self._shared, EVENT_DTYPE).reshape(2, SLOT_EVENTS)
        self._start()
        head = bytearray(8)
        self._read_into(memoryview(head), 0)
        width, height = struct.unpack("<II", head)
        self.sensor = SensorInfo(width, height, "AEDAT4")
        self.guard = TimeGuard(self.path, self.on_error)

    def _start(self) -> None:
        msg_r, msg_w = os.pipe()
        ack_r, ack_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns to the caller's stack
            status = 1
            try:
                os.close(msg_r)
                os.close(ack_w)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 2)
                status = _serve(self.path, msg_w, ack_r, self._slots)
            finally:
                os._exit(status)
        os.close(msg_w)
        os.close(ack_r)
        self._child, self._fds = pid, (msg_r, ack_w)

    def _read_into(self, buf: memoryview, at_event: int) -> None:
        """Fill `buf` from the child, or raise the child's error as an EventFileError."""
        pos = 0
        while pos < len(buf):
            ready, _, _ = select.select([self._fds[0]], [], [], self.stall_s)
            if not ready:
                self.close()
                raise EventFileError(self.path, at_event, f"event {at_event}: dv-processing "
                                     f"made no progress for {self.stall_s:g} s (corrupt file?)")  # fmt: skip
            got = os.readv(self._fds[0], [buf[pos:]])
            if not got:
                self.close()
                raise EventFileError(self.path, at_event, f"event {at_event}: the AEDAT4 "
                                     "reader stopped (dv-processing crashed on this file)")  # fmt: skip
            pos += got
        if bytes(buf[:4]) == ERROR_MARK:
            (length,) = struct.unpack("<I", buf[4:])
            message = bytearray(min(length, 1 << 16))
            self._read_into(memoryview(message), at_event)
            self.close()
            raise EventFileError(self.path, at_event, message.decode(errors="replace"))

    def chunks(self) -> Iterator[np.ndarray]:
        """Chunks of `chunk_events` (the last shorter), filled from the slots in turn, the
        time checked per slot."""
        chunk, held, read, turn = np.empty(self.chunk_events, EVENT_DTYPE), 0, 0, 0
        head = memoryview(bytearray(8))
        while True:
            try:
                self._read_into(head, read)
            except EventFileError as exc:
                if self.on_error is OnError.RAISE:
                    raise
                log.warning("%s (stopping)", exc)
                break
            (count,) = struct.unpack("<Q", head)
            if count == 0:
                break
            if count > SLOT_EVENTS:
                self.close()
                raise EventFileError(self.path, read, f"event {read}: the AEDAT4 reader "
                                     f"sent {count} events for a slot of {SLOT_EVENTS}")  # fmt: skip
            ev = self.guard.check(self._slots[turn, :count], read)
            read += count
            while len(ev):
                take = min(len(ev), self.chunk_events - held)
                chunk[held : held + take] = ev[:take]
                ev, held = ev[take:], held + take
                if held == self.chunk_events:
                    yield chunk
                    chunk, held = np.empty(self.chunk_events, EVENT_DTYPE), 0
            with contextlib.suppress(BrokenPipeError):  # (a child done with the file is gone)
                os.write(self._fds[1], b"\0")  # the slot is ours no more
            turn ^= 1
        if held:
            yield chunk[:held]

    def close(self) -> None:
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._child, signal.SIGKILL)
            os.waitpid(self._child, 0)
            os.close(self._fds[0])
            os.close(self._fds[1])
            self._child, self._fds = None, (-1, -1)

    def __enter__(self) -> Aedat4Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _serve(path: str, fd: int, ack: int, slots: np.ndarray) -> int:
    """Child side: on `fd` the sensor size, then the event count of each slot filled (the
    slots in turn, each reused once `ack` hands it back), then 0; an error as
    (ERROR_MARK, u32 length, message)."""
    out = os.fdopen(fd, "wb", buffering=0)
    read, turn, held, free = 0, 0, 0, 2

    def publish() -> None:
        nonlocal turn, held, free
        out.write(struct.pack("<Q", held))
        turn, held, free = turn ^ 1, 0, free - 1
        if free == 0:  # wait until the reader hands a slot back
            if not os.read(ack, 1):
                raise BrokenPipeError
            free += 1

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
            done = 0
            while done < len(arr):
                take = min(len(arr) - done, SLOT_EVENTS - held)
                part, src = slots[turn, held : held + take], arr[done : done + take]
                part["t"], part["x"], part["y"] = src["timestamp"], src["x"], src["y"]
                part["p"] = src["polarity"] != 0
                held, done = held + take, done + take
                if held == SLOT_EVENTS:
                    publish()
            read += len(arr)
        if held:
            publish()
        out.write(struct.pack("<Q", 0))
    except EventFileError as exc:
        message = str(exc).split(": ", 2)[-1].encode()
        out.write(ERROR_MARK + struct.pack("<I", len(message)) + message)
    except BrokenPipeError:  # the reader was closed
        pass
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
