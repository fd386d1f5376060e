"""The scheduler in-process, on a real simulated AKD1000 (no sockets: the daemon-level
behaviour is tested over the real socket elsewhere): device work only on the device's
worker, the device freed before answers go out, deadlines honoured without the device.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
from akida_rt.daemon.devices import DeviceManager, DeviceSlot, ProgramKey
from akida_rt.daemon.scheduler import Job, Scheduler

from akida_rt.model import zoo

MODEL = zoo.digits_cnn(seed=0)
PROGRAM = MODEL.to_bytes()
KEY = ProgramKey("digits")


def _x(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (1, *MODEL.input_shape), dtype=np.uint8)


async def _scheduler(max_batch_frames: int = 8) -> tuple[Scheduler, DeviceSlot]:
    manager = DeviceManager(1)
    scheduler = Scheduler(manager, asyncio.get_running_loop(), max_batch_frames)
    appeared, _ = manager.rescan()
    for slot in appeared:
        scheduler.attach(slot)
    return scheduler, appeared[0]


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.005)


def test_device_work_runs_only_on_the_worker_and_the_device_is_free_before_the_answer() -> None:
    async def main() -> None:
        scheduler, slot = await _scheduler()
        loop_thread = threading.current_thread()
        device_threads: set[threading.Thread] = set()
        run = slot.device.run_sequences

        def spy(*args: Any, **kwargs: Any) -> Any:
            device_threads.add(threading.current_thread())
            return run(*args, **kwargs)

        slot.device.run_sequences = spy  # type: ignore[method-assign]
        answers: list[tuple[np.ndarray, bool, threading.Thread]] = []

        def done(job: Job, result: Any) -> None:
            busy = slot.id in scheduler.running
            answers.append((result, busy, threading.current_thread()))

        for i in range(4):
            x = _x(i)
            scheduler.submit(Job(1, KEY, PROGRAM, x, False, None, time.monotonic() + 30, done))
            await _until(lambda i=i: len(answers) > i)
            result, busy, thread = answers[i]
            assert np.array_equal(result, MODEL.forward(x))
            assert not busy, "the answer went out while the device was still marked running"
            assert thread is not loop_thread  # the worker answers: no hop through the loop
        assert device_threads and loop_thread not in device_threads
        stats = await asyncio.wait_for(scheduler.call(slot, "stats", _summary_thread), 10)
        assert stats is not loop_thread
        scheduler.stop()

    asyncio.run(main())


def _summary_thread(slot: DeviceSlot) -> threading.Thread:
    slot.device_summary()
    return threading.current_thread()


def test_a_queued_job_past_its_deadline_never_reaches_the_device() -> None:
    async def main() -> None:
        scheduler, slot = await _scheduler()
        answers: list[Any] = []
        done = lambda job, result: answers.append(result)  # noqa: E731
        scheduler.submit(Job(1, KEY, PROGRAM, _x(0), False, None, time.monotonic() + 30, done))
        await _until(lambda: answers)
        frames = slot.meter.frames
        expired = Job(1, KEY, PROGRAM, _x(1), False, None, time.monotonic() - 1, done)
        cancelled = Job(2, KEY, PROGRAM, _x(2), False, None, time.monotonic() + 30, done)
        cancelled.drop()  # its client left
        scheduler.submit(expired)
        scheduler.submit(cancelled)
        scheduler.submit(Job(3, KEY, PROGRAM, _x(3), False, None, time.monotonic() + 30, done))
        await _until(lambda: len(answers) == 2)
        await asyncio.sleep(0.1)
        assert len(answers) == 2  # the expired and cancelled jobs got no answer from here
        assert slot.meter.frames == frames + 1  # only the live job ran on the device
        assert scheduler.outstanding() == 0
        scheduler.stop()

    asyncio.run(main())


def test_cancel_takes_an_answered_job_off_a_busy_queue() -> None:
    async def main() -> None:
        scheduler, slot = await _scheduler()
        gate = threading.Event()
        held = scheduler.call(slot, "hold", lambda s: gate.wait(10))  # the worker is busy
        answers: list[Any] = []
        job = Job(1, KEY, PROGRAM, _x(0), False, None, time.monotonic() + 30,
                  lambda j, r: answers.append(r))  # fmt: skip
        scheduler.submit(job)
        assert scheduler.queued_frames(slot.id) == 1
        scheduler.cancel(job)
        assert scheduler.queued_frames(slot.id) == 0 and scheduler.outstanding() == 0
        gate.set()
        await held
        await asyncio.sleep(0.1)
        assert answers == []
        scheduler.stop()

    asyncio.run(main())


def test_a_client_weight_buys_proportional_device_share_within_its_tenant() -> None:
    async def main() -> None:
        scheduler, slot = await _scheduler(max_batch_frames=1)
        scheduler.weights.update({1: 1.0, 2: 4.0})
        gate = threading.Event()
        held = scheduler.call(slot, "hold", lambda s: gate.wait(10))
        order: list[int] = []
        for _ in range(20):  # both queue 20 different programs' worth of single frames
            for client in (1, 2):
                key = ProgramKey(f"p{client}")
                job = Job(client, key, PROGRAM, _x(client), False, None, time.monotonic() + 60,
                          lambda j, r: order.append(j.client_id), tenant=1000)  # fmt: skip
                scheduler.submit(job)
        gate.set()
        await held
        await _until(lambda: len(order) == 40, 120)
        first = order[:15]
        assert first.count(2) >= 2.5 * first.count(1), order
        scheduler.stop()

    asyncio.run(main())
