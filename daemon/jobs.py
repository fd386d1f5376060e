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
from typing import Any, Protocol

import numpy as np

from akida_rt.errors import AkidaError, DaemonError, ErrorKind

from .budgets import Budgets, Kind
from .devices import ProgramKey

Result = np.ndarray | AkidaError


class JobState(enum.Enum):
    WAITING = "waiting"  # queued or running on a device
    COMMITTING = "committing"  # work that changes state (a fit) is keeping its result
    ANSWERING = "answering"  # settled: its answer is being written
    ANSWERED = "answered"
    DROPPED = "dropped"  # its client left, or it was taken back: never answered


class JobOwner(Protocol):
    """What a job keeps the books of: its client's unanswered jobs and their input bytes."""

    jobs: set[Job]
    queued_bytes: int
    uid: int


# A request of more frames runs a chunk at a time, going back to its queue between chunks:
# others wait for one chunk, not for millions of frames (128 MiB of 6x6 images)
RUN_CHUNK_FRAMES = 1024
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
    budgets: Budgets | None = None  # the owner's uid's queued-input budget
    tenant: int | None = None  # who the scheduler charges (the owner's uid when None)
    # Device work instead of a forward (a fit): work(slot, job) on the device's worker,
    # alone in its batch; its value or error answers the job.
    work: Callable[[Any, Job], Any] | None = None
    offset: int = 0  # frames run so far, when it runs in chunks (scheduler.RUN_CHUNK_FRAMES)
    parts: list[np.ndarray] = field(default_factory=list)  # and their outputs
    attempts: int = 0
    state: JobState = JobState.WAITING
    device: str = ""
    batch_frames: int = 0
    run_s: float = 0.0
    queue_s: float = 0.0
    _timeout: float = 0.0
    _timer: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def __post_init__(self) -> None:
        if self.tenant is None and self.owner is not None:
            self.tenant = self.owner.uid

    @property
    def frames(self) -> int:
        return int(self.x.shape[0])

    @property
    def pending(self) -> int:
        """Frames not run yet."""
        return self.frames - self.offset

    @property
    def chunked(self) -> bool:
        """Runs a chunk at a time (more frames than one chunk, or some run already)."""
        return self.work is None and (self.offset > 0 or self.frames > RUN_CHUNK_FRAMES)

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
                if self.budgets is not None:
                    self.budgets.add(Kind.QUEUED, self.owner.uid, self.x.nbytes)
        self._timer = loop.call_later(timeout, self._expire)

    def _expire(self) -> None:
        self.settle(
            DaemonError(f"no result within {self._timeout:g} s", ErrorKind.DEADLINE_EXCEEDED)
        )

    def commit(self) -> bool:
        """Work that changes state claims the job before it keeps its result: False when
        the deadline (or the client leaving) settled it first, and the work must undo
        what it did. After True, only `settle(..., claimed=True)` answers it."""
        with _LOCK:
            if self.state is not JobState.WAITING:
                return False
            self.state = JobState.COMMITTING
            return True

    def settle(self, result: Any, *, claimed: bool = False) -> bool:
        """Answer with `result` (a Result, or the value of `work`) unless the job was
        settled or dropped already; True when this call answered it. Any thread.
        `claimed`: the caller is the work that committed it."""
        with _LOCK:
            may = (JobState.WAITING, JobState.COMMITTING) if claimed else (JobState.WAITING,)
            if self.state not in may:
                return False
            self.state = JobState.ANSWERING
            self._unqueue()
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
            self._unqueue()
            if self.owner is not None:
                self.owner.jobs.discard(self)
        self._on_loop(self._disarm)
        return True

    def _unqueue(self) -> None:
        """Its inputs leave the owner's books (under _LOCK)."""
        if self.owner is not None:
            self.owner.queued_bytes -= self.x.nbytes
            if self.budgets is not None:
                self.budgets.sub(Kind.QUEUED, self.owner.uid, self.x.nbytes)

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
