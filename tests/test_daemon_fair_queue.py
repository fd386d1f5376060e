"""The order a device queue serves in (daemon/fair_queue.py), without a device: tenants
share equally whatever their connection counts and priorities, a tenant's clients share
its part by weight, same-program jobs of every tenant still batch together, and nothing
is kept for a tenant once its last client has gone.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter

import numpy as np
from akida_rt.daemon.devices import ProgramKey
from akida_rt.daemon.fair_queue import DeviceQueue
from akida_rt.daemon.jobs import Job

FRAME = np.zeros((1, 2, 2, 1), dtype=np.uint8)


def _job(client: int, tenant: int, program: str, frames: int = 1, pinned: str | None = None) -> Job:
    x = np.repeat(FRAME, frames, axis=0)
    return Job(client, ProgramKey(program), b"", x, False, pinned, time.monotonic() + 60,
               lambda j, r: None, tenant=tenant)  # fmt: skip


def _flood(queue: DeviceQueue, clients: dict[int, int], n: int, same: bool = False) -> None:
    """`n` one-frame jobs per client (client -> tenant), each of its own program unless
    `same`: every batch then holds one job."""
    for i in range(n):
        for client, tenant in clients.items():
            queue.push(_job(client, tenant, "p" if same else f"p{client}.{i}"))


def _served(queue: DeviceQueue, batches: int, weights: dict[int, float] | None = None,
            max_frames: int = 8) -> list[Job]:  # fmt: skip
    out: list[Job] = []
    for _ in range(batches):
        out += queue.take(weights or {}, max_frames)
    return out


def test_a_tenant_with_four_clients_gets_what_a_tenant_with_one_gets() -> None:
    queue = DeviceQueue()
    _flood(queue, {1: 100, 2: 100, 3: 100, 4: 100, 5: 200}, 50)
    served = _served(queue, 40)
    per_tenant = Counter(j.tenant for j in served)
    assert per_tenant == {100: 20, 200: 20}, per_tenant
    # Within tenant 100, its four clients split its half evenly.
    per_client = Counter(j.client_id for j in served if j.tenant == 100)
    assert set(per_client.values()) == {5}, per_client
    # Strictly alternating between the tenants, one frame each (no run of two).
    tenants = [j.tenant for j in served]
    assert all(a != b for a, b in itertools.pairwise(tenants)), tenants


def test_priority_orders_a_tenants_own_clients_but_buys_nothing_against_others() -> None:
    queue = DeviceQueue()
    _flood(queue, {1: 100, 2: 100, 3: 200}, 60)
    weights = {1: 1.0, 2: 4.0, 3: 1.0}  # priority 0 and 2 in tenant 100, 0 in tenant 200
    served = _served(queue, 40, weights)
    per_tenant = Counter(j.tenant for j in served)
    assert per_tenant == {100: 20, 200: 20}, per_tenant
    per_client = Counter(j.client_id for j in served if j.tenant == 100)
    assert per_client == {1: 4, 2: 16}, per_client
    # A priority-7 client (weight 128) in tenant 200 still gets tenant 200's half only.
    queue = DeviceQueue()
    _flood(queue, {1: 100, 3: 200}, 30)
    served = _served(queue, 20, {1: 1.0, 3: 128.0})
    assert Counter(j.tenant for j in served) == {100: 10, 200: 10}


def test_same_program_jobs_of_every_tenant_batch_together_and_are_charged_by_frames() -> None:
    queue = DeviceQueue()
    _flood(queue, {5: 200}, 3, same=True)  # tenant 200's three frames come first
    _flood(queue, {1: 100, 2: 100, 3: 100, 4: 100}, 40, same=True)
    first = queue.take({}, 8)
    assert len(first) == 8 and len({j.key for j in first}) == 1  # one forward
    assert Counter(j.tenant for j in first) == {200: 3, 100: 5}
    _flood(queue, {5: 200}, 200, same=True)
    batches = [queue.take({}, 8) for _ in range(30)]
    assert all(len(b) == 8 for b in batches)  # batching kept
    per_tenant = Counter(j.tenant for b in batches for j in b)
    # Charged per frame: over many batches each tenant stays within a batch of half.
    assert abs(per_tenant[200] - per_tenant[100]) <= 8 + 5, per_tenant


def test_a_tenant_back_from_idle_gets_no_credit_for_its_idle_time() -> None:
    queue = DeviceQueue()
    _flood(queue, {1: 100}, 200)
    _served(queue, 100)  # tenant 100 alone: 100 frames
    _flood(queue, {2: 200}, 50)
    served = [j.tenant for j in _served(queue, 20)]
    assert served.count(200) == 10, served  # half from now on, not the 100 frames it missed


def test_stealing_skips_pinned_heads_and_chunked_jobs_run_alone() -> None:
    queue = DeviceQueue()
    queue.push(_job(1, 100, "p", pinned="dev-0"))
    queue.push(_job(2, 200, "p"))
    stolen = queue.take({}, 8, steal=True)
    assert [j.client_id for j in stolen] == [2]
    assert [j.client_id for j in queue.take({}, 8)] == [1]
    small = _job(4, 400, "p")
    big = _job(3, 300, "p", frames=2000)  # more frames than one chunk
    queue.push(small)
    queue.push(big)
    assert queue.take({}, 4096) == [small]  # the chunked job never joins a batch
    assert queue.take({}, 4096) == [big]


def test_nothing_is_kept_for_a_tenant_whose_clients_have_all_gone() -> None:
    queue = DeviceQueue()
    _flood(queue, {1: 100, 2: 100, 3: 200}, 5)
    _served(queue, 3)
    assert queue.drop_client(1) and 100 in queue.members
    left = queue.drop_client(2)
    assert len(left) > 0
    assert 100 not in queue.members and 100 not in queue.clients
    assert 100 not in queue.tenants.passes and 1 not in queue.fifos and 2 not in queue.tenant
    queue.drop_client(3)
    assert not (queue.fifos or queue.tenant or queue.members or queue.clients)
    assert not queue.tenants.passes and queue.frames == 0
