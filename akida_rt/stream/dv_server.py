"""dv-processing in forked children that decode AEDAT4 files into memory shared with this
process, one file at a time, kept between files (akida_rt.stream.aedat4 reads through them).

A child is forked, not started: it has dv-processing loaded already (a started interpreter
took 0.3 s to import it, longer than reading a million events), and one child serves file
after file, so a file costs a request, not a fork (8 ms) and a teardown (4 ms). Events
travel through two slots of shared memory, in turns: the child fills a slot and writes its
event count on its pipe; the reader copies the events and hands the slot back with one
byte on the other pipe (a pipe carrying the events themselves moved them at 0.6-1.5 GB/s
here). A child whose file was not read to its end, that stalled or that died is killed and
never reused.

Messages from the child: (u32 width, u32 height) when a file is open, then (u64 count) per
filled slot, then a u64 0; an error instead as (ERROR_MARK, u32 length, message).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import struct
import threading
import weakref
from typing import Any

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import EVENT_DTYPE

SLOT_EVENTS = 1 << 16  # events per slot of shared memory (1 MiB)
ERROR_MARK = b"\xff\xff\xff\xff"  # in place of a count: an error follows
REQUEST, RETURN = b"R", b"\0"  # to the child: read a file; a slot handed back


class DvServer:
    """One forked child and the pipes and slots it shares with this process."""

    def __init__(self, dv: Any) -> None:
        self.shared = mmap.mmap(-1, 2 * SLOT_EVENTS * EVENT_DTYPE.itemsize)
        self.slots = np.frombuffer(self.shared, EVENT_DTYPE).reshape(2, SLOT_EVENTS)
        msg_r, msg_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns to the caller's stack
            status = 1
            try:
                os.close(msg_r)
                os.close(ctl_w)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 2)
                status = _serve(dv, msg_w, ctl_r, self.slots)
            finally:
                os._exit(status)
        os.close(msg_w)
        os.close(ctl_r)
        self.pid: int | None = pid
        self.msg, self.ctl = msg_r, ctl_w
        _servers.add(self)

    def request(self, path: str) -> None:
        name = os.fsencode(path)
        os.write(self.ctl, REQUEST + struct.pack("<I", len(name)) + name)

    def give_back(self) -> None:
        """Hand back the slot last read (a child done with its file may be reading the next
        request already, or be gone)."""
        with contextlib.suppress(BrokenPipeError):
            os.write(self.ctl, RETURN)

    def alive(self) -> bool:
        return self.pid is not None and os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def kill(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.forget()

    def forget(self) -> None:
        """Close this process's ends (a forked process must not use its parent's children)."""
        if self.pid is not None:
            os.close(self.msg)
            os.close(self.ctl)
            self.pid = None


_servers: weakref.WeakSet[DvServer] = weakref.WeakSet()
_idle: list[DvServer] = []
_lock = threading.Lock()


def take(dv: Any) -> DvServer:
    """An idle child, or a new one."""
    with _lock:
        while _idle:
            server = _idle.pop()
            if server.alive():
                return server
            server.kill()
    return DvServer(dv)


def put_back(server: DvServer) -> None:
    """A child that read a file to its end (or to an error it reported) serves the next."""
    with _lock:
        _idle.append(server)


def _after_fork_in_child() -> None:
    for server in list(_servers):
        server.forget()
    _idle.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _read_exact(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _serve(dv: Any, out: int, ctl: int, slots: np.ndarray) -> int:
    """Child side: file after file, until this process closes its end."""
    free = 2
    while (byte := _read_exact(ctl, 1)) is not None:
        if byte == RETURN:
            free = min(2, free + 1)
            continue
        head = _read_exact(ctl, 4)
        name = _read_exact(ctl, struct.unpack("<I", head)[0]) if head else None
        if byte != REQUEST or name is None:
            return 1
        try:
            # the slots still out come back (RETURN) before the next request
            free = _serve_file(dv, os.fsdecode(name), out, ctl, slots, free)
        except BrokenPipeError:  # the reader is gone
            return 0
    return 0


def _serve_file(dv: Any, path: str, out: int, ctl: int, slots: np.ndarray, free: int) -> int:
    """One file's events into the slots, in turns from the first; the slots free after."""
    read, turn, held = 0, 0, 0

    def publish() -> None:
        nonlocal turn, held, free
        os.write(out, struct.pack("<Q", held))
        turn, held, free = turn ^ 1, 0, free - 1
        while free == 0:  # wait until the reader hands a slot back
            byte = _read_exact(ctl, 1)
            if byte != RETURN:
                raise BrokenPipeError
            free += 1

    try:
        try:
            rec = dv.io.MonoCameraRecording(path)
        except RuntimeError as exc:
            raise EventFileError(path, 0, f"not a readable AEDAT4 recording: {exc}") from None
        if not rec.isEventStreamAvailable():
            raise EventFileError(path, 0, "the recording has no event stream")
        width, height = rec.getEventResolution() or (0, 0)
        os.write(out, struct.pack("<II", int(width), int(height)))
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
        os.write(out, struct.pack("<Q", 0))
    except EventFileError as exc:
        message = str(exc).split(": ", 2)[-1].encode()
        os.write(out, ERROR_MARK + struct.pack("<I", len(message)) + message)
    return free
