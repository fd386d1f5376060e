"""What a device's worker does with its next piece of work (`Work`): a device task, or a
batch of jobs run as one forward, in chunks, or as queued device work; faults and retries."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from akida_rt.errors import (
    AkidaError,
    DaemonError,
    DeviceError,
    DeviceLost,
    DeviceResetError,
    ErrorKind,
    TransportTimeout,
)

from .devices import DeviceManager, DeviceSlot
from .fair_queue import DeviceQueue
from .jobs import RUN_CHUNK_FRAMES, Job, Result

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2


@dataclass
class DeviceTask:
    """A device task: `fn(slot)` on the worker, its value or error settling `future`."""

    fn: Callable[[DeviceSlot], Any]
    future: asyncio.Future[Any]

    def run(self, scheduler: WorkerRuns, slot: DeviceSlot) -> None:
        try:
            value = self.fn(slot)
        except Exception as exc:
            value = exc
        scheduler.loop.call_soon_threadsafe(settle, self.future, value)


@dataclass
class JobBatch:
    """Jobs for one program, run as one forward."""

    jobs: list[Job]

    def run(self, scheduler: WorkerRuns, slot: DeviceSlot) -> None:
        try:
            scheduler._run(slot, self.jobs)
        except Exception as exc:  # a bug fails the batch, never the worker
            log.exception("device %s run error", slot.id)
            scheduler._release(slot)
            scheduler._finish(
                self.jobs, DaemonError(f"{type(exc).__name__}: {exc}", ErrorKind.INTERNAL)
            )


Work = DeviceTask | JobBatch


class WorkerRuns:
    """The Scheduler's worker side (a base class of it): runs a batch on a device, frees
    the device, answers the jobs, and recovers a failing device."""

    manager: DeviceManager
    loop: asyncio.AbstractEventLoop
    queues: dict[str, DeviceQueue]
    running: dict[str, list[Job]]
    _cond: threading.Condition
    _since: dict[str, float]

    def detach(self, slot: DeviceSlot) -> None:
        """A device vanished (the Scheduler's)."""
        raise NotImplementedError

    def submit(self, job: Job) -> None:
        """Queue a job again (the Scheduler's)."""
        raise NotImplementedError

    def _account(self, runs: list[tuple[Job, int]], elapsed: float) -> None:
        """Charge a run to the jobs' tenants (the Scheduler's)."""
        raise NotImplementedError

    def _release(self, slot: DeviceSlot) -> None:
        with self._cond:
            self.running.pop(slot.id, None)
            self._since.pop(slot.id, None)

    def _run(self, slot: DeviceSlot, batch: list[Job]) -> None:
        first = batch[0]
        if first.work is not None:
            self._run_work(slot, first)
            return
        if first.chunked:
            self._run_chunk(slot, first)
            return
        began = time.monotonic()
        start = time.perf_counter()
        try:
            model = slot.model_for(first.key, first.program)
            x = first.x if len(batch) == 1 else np.concatenate([j.x for j in batch])
            y = model.predict(x) if first.predict else model.forward(x)
        except AkidaError as exc:
            self._release(slot)
            self._failed(slot, batch, exc)
            return
        elapsed = time.perf_counter() - start
        slot.resident = first.key
        self._release(slot)  # free before the answers go out
        frames = int(x.shape[0])
        outputs: list[Result] = []
        offset = 0
        for job in batch:
            outputs.append(y[offset : offset + job.frames])
            offset += job.frames
            job.device, job.batch_frames, job.run_s = slot.id, frames, elapsed
            job.queue_s = began - job.enqueued
        deliver(batch, outputs)
        slot.meter.busy_s += elapsed
        slot.meter.record(frames, elapsed)
        self._account([(j, j.frames) for j in batch], elapsed)

    def _run_chunk(self, slot: DeviceSlot, job: Job) -> None:
        """The next RUN_CHUNK_FRAMES frames of a large request; back to the head of its
        client's FIFO until the last chunk, which answers it."""
        began = time.monotonic()
        start = time.perf_counter()
        try:
            model = slot.model_for(job.key, job.program)
            x = job.x[job.offset : job.offset + RUN_CHUNK_FRAMES]
            job.parts.append(model.predict(x) if job.predict else model.forward(x))
        except AkidaError as exc:
            self._release(slot)
            self._failed(slot, [job], exc)
            return
        elapsed = time.perf_counter() - start
        slot.resident = job.key
        job.offset += len(x)
        job.run_s += elapsed
        job.queue_s = job.queue_s or began - job.enqueued
        slot.meter.busy_s += elapsed
        slot.meter.record(len(x), elapsed)
        self._account([(job, len(x))], elapsed)
        self._release(slot)
        if job.offset < job.frames:
            with self._cond:
                queue = self.queues.get(slot.id)
                if queue is not None and not job.cancelled:
                    queue.push_front(job)
                    self._cond.notify_all()
            return
        y = np.concatenate(job.parts)
        job.parts.clear()
        job.device, job.batch_frames = slot.id, job.frames
        deliver([job], [y])

    def _run_work(self, slot: DeviceSlot, job: Job) -> None:
        """Device work queued like inference (a fit): its value or error answers it."""
        assert job.work is not None
        began = time.monotonic()
        start = time.perf_counter()
        value: Any
        try:
            value = job.work(slot, job)
        except AkidaError as exc:
            value = exc
        except Exception as exc:  # a bug fails the work, never the worker
            log.exception("device %s work error", slot.id)
            value = DaemonError(f"{type(exc).__name__}: {exc}", ErrorKind.INTERNAL)
        finally:
            self._release(slot)
        job.device, job.batch_frames = slot.id, job.frames
        job.run_s, job.queue_s = time.perf_counter() - start, began - job.enqueued
        slot.meter.busy_s += job.run_s
        self._account([(job, job.frames)], job.run_s)
        job.settle(value, claimed=True)

    def _failed(self, slot: DeviceSlot, batch: list[Job], exc: AkidaError) -> None:
        """A run on `slot` raised: recover the device and run the batch again where that
        is safe (it timed out and was reset, rebooted, or vanished), else fail it."""
        if isinstance(exc, DeviceError):  # the device's fault, not the request's
            slot.record_fault(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TransportTimeout):
            why = f"device {slot.id} timed out ({exc}); reset={self.manager.reset(slot)}"
        elif isinstance(exc, DeviceResetError):
            # The chip rebooted and dropped the command: nothing ran, so retrying is safe;
            # the program is no longer resident.
            slot.resident = None
            why = f"device {slot.id} reset itself ({exc})"
        elif isinstance(exc, DeviceLost):
            self.manager.mark_lost(slot, str(exc))
            self.detach(slot)
            why = f"device {slot.id} vanished: {exc}"
        else:
            self._finish(batch, DaemonError(f"device {slot.id}: {exc}", exc.kind))
            return
        for job in batch:
            self._retry(job, why)

    def _retry(self, job: Job, why: str) -> None:
        job.attempts += 1
        if job.attempts >= MAX_ATTEMPTS or job.pinned is not None:
            self._finish([job], DaemonError(why, ErrorKind.DEVICE_FAILED))
            return
        log.info("requeueing a request of client %d: %s", job.client_id, why)
        self.loop.call_soon_threadsafe(self.submit, job)

    def _finish(self, jobs: list[Job], error: AkidaError) -> None:
        deliver(jobs, [error] * len(jobs))


def deliver(jobs: list[Job], results: list[Result]) -> None:
    for job, result in zip(jobs, results, strict=True):
        job.settle(result)


def settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
