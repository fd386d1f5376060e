"""The scheduler: a queue and a worker thread per device, weighted-fair across clients,
batching queued requests for the same program into one forward (so a chain-loaded model
runs each sequence over the whole batch), spreading independent work across devices.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from akida_rt.driver.protocol import DeviceResetError

from akida_rt.errors import AkidaError, DeviceLost, MappingError, StatusError, TransportTimeout

from . import affinity
from .devices import DeviceManager, DeviceSlot, ProgramKey

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2


class JobFailed(StatusError):
    """A request failed on the device side; `status` is the wire Status name."""


@dataclass(eq=False)
class Job:
    """One inference request waiting for, or running on, a device."""

    client_id: int
    key: ProgramKey
    program: bytes
    x: np.ndarray
    predict: bool
    pinned: str | None
    deadline: float
    done: Callable[[Job, Any], None]  # called in the loop thread with an array or an error
    enqueued: float = field(default_factory=time.monotonic)
    attempts: int = 0
    cancelled: bool = False
    device: str = ""
    batch_frames: int = 0
    run_s: float = 0.0
    queue_s: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.x.shape[0])


class DeviceQueue:
    """Per-client FIFOs of one device, served by stride scheduling (weights 2**priority)."""

    def __init__(self) -> None:
        self.fifos: dict[int, deque[Job]] = {}
        self.passes: dict[int, float] = {}
        self.frames = 0
        self.vtime = 0.0

    def push(self, job: Job) -> None:
        fifo = self.fifos.setdefault(job.client_id, deque())
        if not fifo:  # a client coming back does not get credit for its idle time
            self.passes[job.client_id] = max(self.passes.get(job.client_id, 0.0), self.vtime)
        fifo.append(job)
        self.frames += job.frames

    def drop_client(self, client_id: int) -> list[Job]:
        jobs = list(self.fifos.pop(client_id, ()))
        self.passes.pop(client_id, None)
        self.frames -= sum(j.frames for j in jobs)
        return jobs

    def take(self, weights: dict[int, float], max_frames: int, steal: bool = False) -> list[Job]:
        """The next batch: the head of the neediest client, plus the heads of any client
        queued for the same program, up to `max_frames`."""
        order = sorted(
            (c for c, f in self.fifos.items() if f and (not steal or f[0].pinned is None)),
            key=lambda c: (self.passes[c], self.fifos[c][0].enqueued),
        )
        if not order:
            return []
        first = self.fifos[order[0]][0]
        group = (first.key, first.predict)
        batch: list[Job] = []
        frames = 0
        for client in order:
            fifo = self.fifos[client]
            while fifo and (fifo[0].key, fifo[0].predict) == group:
                job = fifo[0]
                if batch and frames + job.frames > max_frames:
                    break
                if steal and job.pinned is not None:
                    break
                fifo.popleft()
                batch.append(job)
                frames += job.frames
                self.passes[client] += job.frames / weights.get(client, 1.0)
            if frames >= max_frames:
                break
        self.frames -= frames
        self.vtime = min((self.passes[c] for c, f in self.fifos.items() if f), default=self.vtime)
        return batch


class Scheduler:
    """Runs jobs on the devices of a DeviceManager.

    Args:
        manager: the devices.
        loop: the event loop that receives results (`Job.done` runs there).
        max_batch_frames: the most frames merged into one forward.
    """

    def __init__(
        self, manager: DeviceManager, loop: asyncio.AbstractEventLoop, max_batch_frames: int
    ) -> None:
        self.manager = manager
        self.loop = loop
        self.max_batch_frames = max_batch_frames
        self.inline_max_s = float(os.environ.get("AKIDAD_INLINE", "0.005"))
        self.weights: dict[int, float] = {}
        self.queues: dict[str, DeviceQueue] = {}
        self.running: dict[str, list[Job]] = {}
        self._cond = threading.Condition()
        self._threads: dict[str, threading.Thread] = {}
        self._since: dict[str, float] = {}
        self._inline_pending: set[str] = set()
        self._stop = False

    # ------------------------------------------------------------- device set
    def attach(self, slot: DeviceSlot) -> None:
        with self._cond:
            self.queues.setdefault(slot.id, DeviceQueue())
            if slot.id not in self._threads or not self._threads[slot.id].is_alive():
                thread = threading.Thread(
                    target=self._worker, args=(slot,), name=f"akidad-{slot.id}", daemon=True
                )
                self._threads[slot.id] = thread
                thread.start()

    def detach(self, slot: DeviceSlot) -> None:
        """A device vanished: move its queue to the remaining devices."""
        with self._cond:
            queue = self.queues.pop(slot.id, None)
            jobs = [j for c in list(queue.fifos) for j in queue.drop_client(c)] if queue else []
            self._cond.notify_all()
        for job in jobs:
            self._requeue(job, f"device {slot.id} vanished")

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ jobs
    def submit(self, job: Job) -> None:
        """Queue a job on the best device (called in the loop thread)."""
        with self._cond:
            slot_id = self._choose(job)
            if slot_id is None:
                self.loop.call_soon(
                    job.done, job, JobFailed("NO_DEVICE", self._no_device_reason(job))
                )
                return
            slot = self.manager.slots[slot_id]
            queue = self.queues[slot_id]
            queue.push(job)
            estimate = slot.cost.get(job.key, 1e9) * min(queue.frames, self.max_batch_frames)
            if (
                self.inline_max_s > 0
                and estimate <= self.inline_max_s
                and slot_id not in self.running
                and slot_id not in self._inline_pending
            ):
                # The device is idle and the work is short: run it on the loop thread once
                # this loop iteration has queued whatever else arrived with it (so it still
                # batches), saving two thread hops per request.
                self._inline_pending.add(slot_id)
                self.loop.call_soon(self._run_inline, slot)
            elif slot_id not in self._inline_pending:
                self._cond.notify_all()

    def run_now(self, job: Job) -> bool:
        """Run `job` on the loop thread before returning, if its device is idle with
        nothing queued and the work is short (no queue, timer or thread hop); False if
        it must be submitted instead."""
        if self.inline_max_s <= 0:
            return False
        with self._cond:
            slot_id = self._choose(job)
            if slot_id is None:
                return False
            slot = self.manager.slots[slot_id]
            if not self._claim(slot, job.key, job.frames, [job]):
                return False
        self._run_guarded(slot, [job], inline=True)
        return True

    def _claim(self, slot: DeviceSlot, key: ProgramKey, frames: int, batch: list[Job]) -> bool:
        """Mark `slot` running `batch` if it is ready and idle with nothing queued, and
        the work is short (call with `_cond` held)."""
        queue = self.queues.get(slot.id)
        if (
            slot.state != "ready"
            or queue is None
            or queue.frames
            or slot.id in self.running
            or slot.id in self._inline_pending
            or slot.cost.get(key, 1e9) * frames > self.inline_max_s
        ):
            return False
        self.running[slot.id] = batch
        self._since[slot.id] = time.monotonic()
        return True

    def _run_inline(self, slot: DeviceSlot) -> None:
        with self._cond:
            self._inline_pending.discard(slot.id)
            queue = self.queues.get(slot.id)
            if slot.id in self.running or queue is None:
                self._cond.notify_all()
                return
            batch = [j for j in queue.take(self.weights, self.max_batch_frames) if not j.cancelled]
            if not batch:
                return
            self.running[slot.id] = batch
            self._since[slot.id] = time.monotonic()
        self._run_guarded(slot, batch, inline=True)

    def _run_guarded(self, slot: DeviceSlot, batch: list[Job], inline: bool = False) -> None:
        """Run a batch the slot is marked running for; a bug fails the batch, never the
        worker, and the slot is released whatever happens."""
        try:
            self._run(slot, batch, inline=inline)
        except Exception as exc:
            log.exception("device %s run error", slot.id)
            self._finish(batch, JobFailed("INTERNAL", f"{type(exc).__name__}: {exc}"))
        finally:
            self.release(slot)

    def _no_device_reason(self, job: Job) -> str:
        if job.pinned:
            return f"device {job.pinned} is not available"
        return "no device is available (none found, and simulated devices are off)"

    def _choose(self, job: Job) -> str | None:
        slots = self.manager.slots
        if len(slots) == 1 and job.pinned is None:  # the common case, on every request
            (only,) = slots.values()
            return only.id if only.state == "ready" and only.id in self.queues else None
        ready = {s.id: s for s in self.manager.ready() if s.id in self.queues}
        if job.pinned is not None:
            return job.pinned if job.pinned in ready else None
        best, best_score = None, None
        for ident, slot in ready.items():
            load = self.queues[ident].frames + sum(j.frames for j in self.running.get(ident, ()))
            score = (load, slot.resident != job.key)
            if best_score is None or score < best_score:
                best, best_score = ident, score
        return best

    def drop_client(self, client_id: int) -> int:
        """Forget a client's queued jobs (its connection closed); returns how many."""
        dropped = 0
        with self._cond:
            for queue in self.queues.values():
                for job in queue.drop_client(client_id):
                    job.cancelled = True
                    dropped += 1
            for jobs in self.running.values():
                for job in jobs:
                    if job.client_id == client_id:
                        job.cancelled = True
            self.weights.pop(client_id, None)
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

    def _requeue(self, job: Job, why: str) -> None:
        job.attempts += 1
        if job.attempts >= MAX_ATTEMPTS or job.pinned is not None:
            self._finish([job], JobFailed("DEVICE_FAILED", why))
            return
        log.info("requeueing a request of client %d: %s", job.client_id, why)
        self.loop.call_soon_threadsafe(self.submit, job)

    def _finish(self, jobs: list[Job], result: Any) -> None:
        self.loop.call_soon_threadsafe(_deliver, jobs, result)

    # ---------------------------------------------------------------- worker
    def _next_batch(self, slot: DeviceSlot) -> list[Job] | None:
        with self._cond:
            while True:
                if self._stop or slot.id not in self.queues:
                    return None
                if slot.id in self.running or slot.id in self._inline_pending:
                    self._cond.wait()
                    continue
                queue = self.queues[slot.id]
                batch = queue.take(self.weights, self.max_batch_frames)
                if not batch:  # idle: help the busiest other device
                    others = [q for k, q in self.queues.items() if k != slot.id and q.frames]
                    if others:
                        batch = max(others, key=lambda q: q.frames).take(
                            self.weights, self.max_batch_frames, steal=True
                        )
                batch = [j for j in batch if not j.cancelled]
                if batch:
                    self.running[slot.id] = batch
                    self._since[slot.id] = time.monotonic()
                    return batch
                self._cond.wait()

    def _worker(self, slot: DeviceSlot) -> None:
        affinity.unpin_thread()  # it was started by the loop thread, maybe pinned
        while (batch := self._next_batch(slot)) is not None:
            self._run_guarded(slot, batch)

    def _run(self, slot: DeviceSlot, batch: list[Job], inline: bool = False) -> None:
        first = batch[0]
        began = time.monotonic()
        start = time.perf_counter()
        try:
            was_resident = slot.resident == first.key
            model = slot.model_for(first.key, first.program)
            x = first.x if len(batch) == 1 else np.concatenate([j.x for j in batch])
            y = model.predict(x) if first.predict else model.forward(x)
        except AkidaError as exc:
            why = self.device_failed(slot, exc)
            if isinstance(why, JobFailed):
                self._finish(batch, why)
            else:
                for job in batch:
                    self._requeue(job, why)
            return
        elapsed = time.perf_counter() - start
        frames = int(x.shape[0])
        outputs: list[Any] = [y]
        if len(batch) > 1:
            outputs, offset = [], 0
            for job in batch:
                outputs.append(y[offset : offset + job.frames])
                offset += job.frames
        for job in batch:
            job.device, job.batch_frames, job.run_s = slot.id, frames, elapsed
            job.queue_s = began - job.enqueued
        slot.resident = first.key
        if inline:
            _deliver_each(batch, outputs)  # answers first: the bookkeeping can wait
        else:
            self.loop.call_soon_threadsafe(_deliver_each, batch, outputs)
        self.account(slot, first.key, frames, elapsed, was_resident)

    def device_failed(self, slot: DeviceSlot, exc: AkidaError) -> str | JobFailed:
        """Deal with a run on `slot` that raised: why, when the request may run again
        (the device timed out and was reset, rebooted, or vanished), or the JobFailed
        when it failed for good."""
        if isinstance(exc, TransportTimeout):
            reset_ok = self.manager.reset(slot)
            return f"device {slot.id} timed out ({exc}); reset={reset_ok}"
        if isinstance(exc, DeviceResetError):
            # The chip rebooted and dropped the command: nothing ran, so retrying is safe;
            # the program is no longer resident.
            slot.resident = None
            return f"device {slot.id} reset itself ({exc})"
        if isinstance(exc, DeviceLost):
            self.manager.mark_lost(slot, str(exc))
            self.detach(slot)
            return f"device {slot.id} vanished: {exc}"
        if isinstance(exc, MappingError):
            return JobFailed("MAPPING_FAILED", str(exc))
        return JobFailed("DEVICE_FAILED", f"device {slot.id}: {exc}")

    def account(
        self, slot: DeviceSlot, key: ProgramKey, frames: int, elapsed: float, was_resident: bool
    ) -> None:
        """Book a finished run: the run-time estimate of `key` and the device meter."""
        per_frame = elapsed / frames
        if was_resident and key in slot.cost_with_load:
            # The estimate came from a run that also loaded the program (31 ms for 2 ms
            # of work on the digits model): replace it rather than let it decay slowly.
            slot.cost_with_load.discard(key)
            slot.cost[key] = per_frame
        else:
            slot.cost[key] = 0.8 * slot.cost.get(key, per_frame) + 0.2 * per_frame
            if not was_resident:
                slot.cost_with_load.add(key)
        slot.meter.busy_s += elapsed
        slot.meter.record(frames, elapsed)

    # ---------------------------------------------------------------- express
    def claim_express(self, key: ProgramKey, pinned: str | None, frames: int) -> DeviceSlot | None:
        """The idle device `key` is resident on, marked running, if the request can run
        right now in the caller's thread (nothing queued there, short work); else None."""
        if self.inline_max_s <= 0:
            return None
        with self._cond:
            for slot in self.manager.slots.values():
                if (
                    slot.resident != key
                    or key not in slot.models
                    or (pinned is not None and pinned != slot.id)
                ):
                    continue
                return slot if self._claim(slot, key, frames, []) else None
        return None

    def run_express(
        self, slot: DeviceSlot, key: ProgramKey, x: np.ndarray, predict: bool
    ) -> tuple[np.ndarray, float]:
        """Run on a slot `claim_express` gave (the caller releases it, whatever happens).
        Returns (outputs, seconds); raises what the device raised."""
        model = slot.models[key]
        start = time.perf_counter()
        y = model.predict(x) if predict else model.forward(x)
        return y, time.perf_counter() - start

    def release(self, slot: DeviceSlot) -> None:
        """The slot is no longer running anything."""
        with self._cond:
            self.running.pop(slot.id, None)
            self._since.pop(slot.id, None)
            # Wake the workers only for queued work (each wake-up costs a GIL hand-off).
            if any(q.frames for q in self.queues.values()):
                self._cond.notify_all()


def _deliver(jobs: list[Job], result: Any) -> None:
    for job in jobs:
        job.done(job, result)


def _deliver_each(jobs: list[Job], results: list[Any]) -> None:
    for job, result in zip(jobs, results, strict=True):
        job.done(job, result)
