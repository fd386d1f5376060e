"""A daemon job settles itself exactly once: racing workers and its deadline answer it
once, a dropped job is never answered, and its owner's books return to zero."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from akida_rt.daemon.devices import ProgramKey
from akida_rt.daemon.jobs import Job, JobState

from akida_rt.errors import DaemonError, ErrorKind


@dataclass
class Owner:
    jobs: set[Job] = field(default_factory=set)
    queued_bytes: int = 0
    uid: int = 1000


def _job(owner: Owner, answers: list[Any], settled: list[Any]) -> Job:
    x = np.zeros((2, 4, 4, 1), np.uint8)
    return Job(1, ProgramKey("p"), b"", x, False, None, time.monotonic() + 5,
               lambda job, result: answers.append(result), owner=owner,
               on_settled=lambda job, result: settled.append(result))  # fmt: skip


def test_racing_settles_answer_once_and_the_books_balance() -> None:
    async def main() -> None:
        owner, answers, settled = Owner(), [], []
        job = _job(owner, answers, settled)
        job.start(asyncio.get_running_loop(), 0.05)
        assert owner.jobs == {job} and owner.queued_bytes == job.x.nbytes
        wins: list[bool] = []
        threads = [threading.Thread(target=lambda i=i: wins.append(job.settle(np.full(1, i))))
                   for i in range(8)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await asyncio.sleep(0.2)  # past the deadline: the timer finds it settled
        assert wins.count(True) == 1 and len(answers) == 1 and len(settled) == 1
        assert job.state is JobState.ANSWERED and job.cancelled
        assert owner.jobs == set() and owner.queued_bytes == 0

    asyncio.run(main())


def test_the_deadline_settles_a_job_nobody_answered() -> None:
    async def main() -> None:
        owner, answers, settled = Owner(), [], []
        job = _job(owner, answers, settled)
        job.start(asyncio.get_running_loop(), 0.02)
        await asyncio.sleep(0.2)
        assert len(answers) == 1 and isinstance(answers[0], DaemonError)
        assert answers[0].kind is ErrorKind.DEADLINE_EXCEEDED and "0.02 s" in str(answers[0])
        assert not job.settle(np.zeros(1)) and len(answers) == 1
        assert owner.jobs == set() and owner.queued_bytes == 0

    asyncio.run(main())


def test_a_dropped_job_is_never_answered() -> None:
    async def main() -> None:
        owner, answers, settled = Owner(), [], []
        job = _job(owner, answers, settled)
        job.start(asyncio.get_running_loop(), 0.02)
        assert job.drop() and not job.drop()
        await asyncio.sleep(0.1)
        assert not job.settle(np.zeros(1))
        assert answers == [] and settled == [] and job.state is JobState.DROPPED
        assert owner.jobs == set() and owner.queued_bytes == 0

    asyncio.run(main())
