"""An inference request in akidad as one object: its inputs, its deadline and its state.

A job settles itself exactly once, from whichever thread comes first (a device's worker
with the result or an error, or the event loop at the deadline, or with no device); a
job whose client left is dropped and never answered. Its owner's count of unanswered
requests and queued input bytes change only here, under one lock.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from akida_rt.errors import AkidaError, DaemonError, ErrorKind

from .devices import ProgramKey

Result = np.ndarray | AkidaError


class JobState(enum.Enum):
    WAITING = "waiting"  # queued or running on a device
    ANSWERING = "answering"  # settled: its answer is being written
    ANSWERED = "answered"
    DROPPED = "dropped"  # its client left, or it was taken back: never answered


class JobOwner(Protocol):
    """What a job keeps the books of: its client's unanswered jobs and their input bytes."""

    jobs: set[Job]
    queued_bytes: int


_LOCK = threading.Lock()  # held for a few assignments per settle: one for every job


@dataclass(eq=False)
class Job:
    """One inference request waiting for, or running on, a device.

    Args:
        reply: writes the answer (the outputs or the error); called once, from the
            thread that settles the job (it must be thread-safe).
        on_settled: bookkeeping after the answer, called on the event loop.
        owner: the client whose books the job keeps (None: no books, in tests).
    """

    client_id: int
    key: ProgramKey
    program: bytes
    x: np.ndarray
    predict: bool
    pinned: str | None
    deadline: float  # time.monotonic()
    reply: Callable[[Job, Result], None]
    enqueued: float = field(default_factory=time.monotonic)
    owner: JobOwner | None = None
    on_settled: Callable[[Job, Result], None] | None = None
    attempts: int = 0
    state: JobState = JobState.WAITING
    device: str = ""
    batch_frames: int = 0
    run_s: float = 0.0
    queue_s: float = 0.0
    _timeout: float = 0.0
    _timer: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def frames(self) -> int:
        return int(self.x.shape[0])

    @property
    def cancelled(self) -> bool:
        """Settled or dropped already: a device must never run it."""
        return self.state is not JobState.WAITING

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Enter the owner's books and arm the deadline (loop thread)."""
        self._loop, self._timeout = loop, timeout
        if self.owner is not None:
            with _LOCK:
                self.owner.jobs.add(self)
                self.owner.queued_bytes += self.x.nbytes
        self._timer = loop.call_later(timeout, self._expire)

    def _expire(self) -> None:
        self.settle(
            DaemonError(f"no result within {self._timeout:g} s", ErrorKind.DEADLINE_EXCEEDED)
        )

    def settle(self, result: Result) -> bool:
        """Answer with `result` unless the job was settled or dropped already; True when
        this call answered it. Any thread."""
        with _LOCK:
            if self.state is not JobState.WAITING:
                return False
            self.state = JobState.ANSWERING
            if self.owner is not None:
                self.owner.queued_bytes -= self.x.nbytes
        try:
            self.reply(self, result)  # the answer first: the bookkeeping can wait
        finally:
            with _LOCK:
                self.state = JobState.ANSWERED
                if self.owner is not None:
                    self.owner.jobs.discard(self)
        self._on_loop(self._after, result)
        return True

    def drop(self) -> bool:
        """Never answer: its client left or the scheduler took it back. True when it
        was still waiting. Any thread."""
        with _LOCK:
            if self.state is not JobState.WAITING:
                return False
            self.state = JobState.DROPPED
            if self.owner is not None:
                self.owner.queued_bytes -= self.x.nbytes
                self.owner.jobs.discard(self)
        self._on_loop(self._disarm)
        return True

    def _after(self, result: Result) -> None:
        self._disarm()
        if self.on_settled is not None:
            self.on_settled(self, result)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _on_loop(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        if _in_loop(loop):
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
