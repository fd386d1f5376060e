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
from typing import Any

from akida_rt.errors import (
    DaemonError,
    ErrorKind,
)

from .devices import DeviceManager, DeviceSlot
from .fair_queue import DeviceQueue, tenant_of
from .jobs import Job, Result
from .worker_runs import DeviceTask, JobBatch, Work, WorkerRuns, settle

__all__ = ["DeviceQueue", "Job", "Result", "Scheduler"]
log = logging.getLogger(__name__)


class Scheduler(WorkerRuns):
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
            self.loop.call_soon_threadsafe(settle, future, gone)
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
                    return DeviceTask(fn, future)
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
                    return JobBatch(batch)
                self._cond.wait()

    def _worker(self, slot: DeviceSlot) -> None:
        while (work := self._next(slot)) is not None:
            work.run(self, slot)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved; whoever waits still gets it
