"""The scheduler: a queue and a worker thread per device, fair between tenants and then
weighted-fair between a tenant's clients (fair_queue.py), batching queued requests for
the same program into one forward (so a chain-loaded model runs each sequence over the
whole batch), spreading independent work across devices.

One path for every request: the event loop queues a job and wakes the device's worker;
only workers touch devices (runs, resets, stats, releases), so a hung board stalls its
own requests and nothing else. A worker frees its device, then answers the batch itself
(`Job.done`, which must be thread-safe: a deadline may answer the same job from the
loop), and never runs a job whose deadline has passed or whose client has gone. A
worker's next piece of work is a `Work`: a device task or a batch of jobs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
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
from .fair_queue import DeviceQueue, tenant_of
from .jobs import RUN_CHUNK_FRAMES, Job, Result

__all__ = ["DeviceQueue", "Job", "Result", "Scheduler"]
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2


@dataclass
class _Task:
    """A device task: `fn(slot)` on the worker, its value or error settling `future`."""

    fn: Callable[[DeviceSlot], Any]
    future: asyncio.Future[Any]

    def run(self, scheduler: Scheduler, slot: DeviceSlot) -> None:
        try:
            value = self.fn(slot)
        except Exception as exc:
            value = exc
        scheduler.loop.call_soon_threadsafe(_settle, self.future, value)


@dataclass
class _Batch:
    """Jobs for one program, run as one forward."""

    jobs: list[Job]

    def run(self, scheduler: Scheduler, slot: DeviceSlot) -> None:
        try:
            scheduler._run(slot, self.jobs)
        except Exception as exc:  # a bug fails the batch, never the worker
            log.exception("device %s run error", slot.id)
            scheduler._release(slot)
            scheduler._finish(
                self.jobs, DaemonError(f"{type(exc).__name__}: {exc}", ErrorKind.INTERNAL)
            )


Work = _Task | _Batch


class Scheduler:
    """Runs jobs, and device tasks, on the devices of a DeviceManager.

    Args:
        manager: the devices.
        loop: the event loop (device tasks settle their futures there; retries resubmit).
        max_batch_frames: the most frames merged into one forward (may change at reload).
    """

    def __init__(
        self, manager: DeviceManager, loop: asyncio.AbstractEventLoop, max_batch_frames: int
    ) -> None:
        self.manager = manager
        self.loop = loop
        self.max_batch_frames = max_batch_frames
        self.weights: dict[int, float] = {}
        self.tenants: dict[int, int] = {}  # connected client -> its tenant (uid)
        self.usage: dict[int, list[float]] = {}  # tenant with clients -> [frames, device s]
        self.queues: dict[str, DeviceQueue] = {}
        self.running: dict[str, list[Job]] = {}
        self.tasks: dict[str, dict[Any, tuple[Callable[[DeviceSlot], Any], asyncio.Future[Any]]]]
        self.tasks = {}
        self._cond = threading.Condition()
        self._threads: dict[str, threading.Thread] = {}
        self._since: dict[str, float] = {}
        self._stop = False

    # ------------------------------------------------------------- device set
    def attach(self, slot: DeviceSlot) -> None:
        with self._cond:
            self.queues.setdefault(slot.id, DeviceQueue())
            self.tasks.setdefault(slot.id, {})
            if slot.id not in self._threads or not self._threads[slot.id].is_alive():
                thread = threading.Thread(
                    target=self._worker, args=(slot,), name=f"akidad-{slot.id}", daemon=True
                )
                self._threads[slot.id] = thread
                thread.start()

    def detach(self, slot: DeviceSlot) -> None:
        """A device vanished: move its queue to the remaining devices, fail its tasks."""
        with self._cond:
            queue = self.queues.pop(slot.id, None)
            jobs = [j for c in list(queue.fifos) for j in queue.drop_client(c)] if queue else []
            tasks = self.tasks.pop(slot.id, {})
            self._cond.notify_all()
        gone = DaemonError(f"device {slot.id} vanished", ErrorKind.NO_DEVICE)
        for _, future in tasks.values():
            self.loop.call_soon_threadsafe(_settle, future, gone)
        for job in jobs:
            self._retry(job, f"device {slot.id} vanished")

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    # --------------------------------------------------------------- clients
    def join(self, client_id: int, tenant: int) -> None:
        """A client connected, acting as `tenant` (loop thread); weight 1 until hello."""
        with self._cond:
            self.weights[client_id] = 1.0
            self.tenants[client_id] = tenant
            self.usage.setdefault(tenant, [0, 0.0])

    def tenant_usage(self) -> dict[int, tuple[int, float, int]]:
        """Per tenant with a client connected: frames run, device seconds (a batch's time
        split by frames), connected clients."""
        with self._cond:
            clients = Counter(self.tenants.values())
            return {t: (int(u[0]), u[1], clients[t]) for t, u in self.usage.items()}

    def _account(self, runs: list[tuple[Job, int]], elapsed: float) -> None:
        """Charge a run's frames (per job) and its device time, split by frames, to the
        jobs' tenants (worker thread)."""
        total = max(sum(n for _, n in runs), 1)
        with self._cond:
            for job, frames in runs:
                usage = self.usage.get(tenant_of(job))
                if usage is not None:  # not once its last client has gone
                    usage[0] += frames
                    usage[1] += elapsed * frames / total

    # ------------------------------------------------------------------ work
    def submit(self, job: Job) -> None:
        """Queue a job on the best device and wake its worker (loop thread)."""
        with self._cond:
            slot_id = self._choose(job)
            if slot_id is not None:
                self.queues[slot_id].push(job)
                self._cond.notify_all()
                return
        job.settle(DaemonError(self.no_device_reason(job.pinned), ErrorKind.NO_DEVICE))

    def call(
        self, slot: DeviceSlot, key: Any, fn: Callable[[DeviceSlot], Any]
    ) -> asyncio.Future[Any]:
        """Run `fn(slot)` on the device's worker, before its next batch (loop thread); a
        call with the same `key` already waiting there is shared, not repeated."""
        with self._cond:
            tasks = self.tasks.get(slot.id)
            if tasks is None:
                future = self.loop.create_future()
                future.set_exception(DaemonError(f"device {slot.id} is gone", ErrorKind.NO_DEVICE))
                return future
            if key not in tasks:
                future = self.loop.create_future()
                future.add_done_callback(_retrieved)  # a caller may have stopped waiting
                tasks[key] = (fn, future)
                self._cond.notify_all()
            return tasks[key][1]

    def no_device_reason(self, pinned: str | None) -> str:
        if pinned:
            return f"device {pinned} is not available"
        if not self.manager.simulated and not self.manager.urls:
            return "no device is available (none found, and simulated devices are off)"
        return "no device is available (every device was lost)"

    def _choose(self, job: Job) -> str | None:
        """The ready device with the least work queued or running (where the program is
        resident, on a tie), or the job's pinned device if it is ready."""
        best, best_score = None, None
        for ident, slot in self.manager.slots.items():
            if slot.state != "ready" or ident not in self.queues:
                continue
            if job.pinned is not None:
                if ident == job.pinned:
                    return ident
                continue
            running = self.running.get(ident)
            load = self.queues[ident].frames + (sum(j.frames for j in running) if running else 0)
            score = (load, slot.resident != job.key)
            if best_score is None or score < best_score:
                best, best_score = ident, score
        return best

    def cancel(self, job: Job) -> None:
        """Take a job off its queue now (answered at its deadline, or taken back): a hung
        device must not accumulate the inputs of requests nobody waits for."""
        job.drop()
        with self._cond:
            for queue in self.queues.values():
                if queue.discard(job):
                    return

    def drop_client(self, client_id: int) -> int:
        """Forget a client's queued jobs at once (its connection closed); returns how many."""
        dropped = 0
        with self._cond:
            for queue in self.queues.values():
                for job in queue.drop_client(client_id):
                    job.drop()
                    dropped += 1
            for jobs in self.running.values():
                for job in jobs:
                    if job.client_id == client_id:
                        job.drop()
            self.weights.pop(client_id, None)
            tenant = self.tenants.pop(client_id, None)
            if tenant is not None and tenant not in self.tenants.values():
                self.usage.pop(tenant, None)  # its last client: nothing kept per tenant
        return dropped

    def outstanding(self) -> int:
        with self._cond:
            queued = sum(len(f) for q in self.queues.values() for f in q.fifos.values())
            return queued + sum(len(j) for j in self.running.values())

    def stuck(self, limit_s: float) -> list[str]:
        """Devices whose current batch has run for over `limit_s` seconds."""
        now = time.monotonic()
        with self._cond:
            return [k for k, t in self._since.items() if now - t > limit_s]

    def queued_frames(self, slot_id: str) -> int:
        queue = self.queues.get(slot_id)
        return queue.frames if queue else 0

    # ---------------------------------------------------------------- worker
    def _next(self, slot: DeviceSlot) -> Work | None:
        """The worker's next piece of work: a device task, a batch, or None when the
        worker must stop. Marks the slot running a batch it returns."""
        with self._cond:
            while True:
                if self._stop or slot.id not in self.queues:
                    return None
                tasks = self.tasks[slot.id]
                if tasks:
                    key = next(iter(tasks))
                    fn, future = tasks.pop(key)
                    return _Task(fn, future)
                batch = self.queues[slot.id].take(self.weights, self.max_batch_frames)
                if not batch:  # idle: help the busiest other device
                    others = [q for k, q in self.queues.items() if k != slot.id and q.frames]
                    if others:
                        batch = max(others, key=lambda q: q.frames).take(
                            self.weights, self.max_batch_frames, steal=True
                        )
                now = time.monotonic()
                # Past their deadline: their timers answer them; the device never sees them.
                batch = [j for j in batch if not j.cancelled and j.deadline > now]
                if batch:
                    self.running[slot.id] = batch
                    self._since[slot.id] = now
                    return _Batch(batch)
                self._cond.wait()

    def _worker(self, slot: DeviceSlot) -> None:
        while (work := self._next(slot)) is not None:
            work.run(self, slot)

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
        _deliver(batch, outputs)
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
        _deliver([job], [y])

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
        _deliver(jobs, [error] * len(jobs))


def _deliver(jobs: list[Job], results: list[Result]) -> None:
    for job, result in zip(jobs, results, strict=True):
        job.settle(result)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved; whoever waits still gets it


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
