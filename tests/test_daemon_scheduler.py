"""The scheduler in-process, on a real simulated AKD1000 (no sockets: the daemon-level
behaviour is tested over the real socket elsewhere): run-time estimates and the lone
request fast path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from akida_rt.daemon.devices import DeviceManager, ProgramKey
from akida_rt.daemon.scheduler import Job, Scheduler

from akida_rt import zoo


def _job(key: ProgramKey, program: bytes, x: np.ndarray, answers: list[Any]) -> Job:
    loop = asyncio.get_running_loop()
    return Job(1, key, program, x, False, None, loop.time() + 30,
               lambda job, result: answers.append((job, result)))  # fmt: skip


async def _run_two() -> tuple[Scheduler, Any, list[Any], ProgramKey, np.ndarray]:
    model = zoo.digits_cnn(seed=0)
    program = model.to_bytes()
    x = np.random.default_rng(0).integers(0, 256, (1, *model.input_shape), dtype=np.uint8)
    manager = DeviceManager(1)
    scheduler = Scheduler(manager, asyncio.get_running_loop(), max_batch_frames=8)
    appeared, _ = manager.rescan()
    for slot in appeared:
        scheduler.attach(slot)
    key = ProgramKey("digits")
    answers: list[Any] = []
    for i in range(2):  # one after the other: the second finds the program resident
        scheduler.submit(_job(key, program, x, answers))
        for _ in range(3000):
            if len(answers) > i:
                break
            await asyncio.sleep(0.01)
    return scheduler, appeared[0], answers, key, model.forward(x)


def test_a_run_that_loaded_the_program_does_not_set_the_run_time_estimate() -> None:
    async def go() -> tuple[Any, ...]:
        result = await _run_two()
        result[0].stop()
        return result

    _, slot, answers, key, expected = asyncio.run(go())
    assert len(answers) == 2
    (first, y1), (second, y2) = answers
    assert np.array_equal(y1, expected) and np.array_equal(y2, expected)
    # The first run loaded the program; the estimate is the second, resident run alone.
    assert first.run_s > second.run_s
    assert slot.cost[key] == second.run_s
    assert key not in slot.cost_with_load


def test_a_lone_request_on_an_idle_device_runs_before_run_now_returns() -> None:
    async def go() -> tuple[bool, list[Any], np.ndarray]:
        scheduler, _, answers, key, expected = await _run_two()
        program = answers[0][0].program
        scheduler.inline_max_s = 60.0  # "short work" whatever the load on this machine
        mine: list[Any] = []
        ran = scheduler.run_now(_job(key, program, answers[0][0].x, mine))
        scheduler.stop()
        return ran, mine, expected

    ran, mine, expected = asyncio.run(go())
    assert ran
    assert len(mine) == 1 and np.array_equal(mine[0][1], expected)
