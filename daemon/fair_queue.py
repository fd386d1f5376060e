"""A device's queue: per-client FIFOs served fairly at two levels, between tenants (the
uid a client acts as) and then between one tenant's clients (weights 2**priority).

Stride scheduling at both levels, in frames: a batch charges each of its jobs' frames to
the job's tenant (every tenant weighs 1) and, divided by the client's weight, to the
client within its tenant. Opening more connections, or declaring a higher priority, buys
a tenant nothing against other tenants; priority orders a tenant's own clients only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from .jobs import RUN_CHUNK_FRAMES, Job

__all__ = ["DeviceQueue", "tenant_of"]
K = TypeVar("K", bound=Hashable)


def tenant_of(job: Job) -> int:
    """The tenant a job is charged to: its owner's uid; a job without one (in-process
    tests) is a tenant of its own client (negative: never a uid)."""
    return job.tenant if job.tenant is not None else -job.client_id


class Stride(Generic[K]):
    """Passes of the members of one level; `vtime`, the least pass of those with work,
    is where a member coming back from idle starts (no credit for idle time)."""

    def __init__(self) -> None:
        self.passes: dict[K, float] = {}
        self.vtime = 0.0

    def wake(self, member: K) -> None:
        self.passes[member] = max(self.passes.get(member, 0.0), self.vtime)

    def resume(self, member: K) -> None:
        """Back at work without having been idle (a chunked job): keep its pass."""
        self.passes.setdefault(member, self.vtime)

    def charge(self, member: K, amount: float) -> None:
        self.passes[member] += amount

    def settle(self, busy: Iterable[K]) -> None:
        self.vtime = min((self.passes[m] for m in busy), default=self.vtime)

    def forget(self, member: K) -> None:
        self.passes.pop(member, None)


class DeviceQueue:
    """Per-client FIFOs of one device, grouped by tenant, served by two-level stride
    scheduling (tenants equally, then a tenant's clients by weight)."""

    def __init__(self) -> None:
        self.fifos: dict[int, deque[Job]] = {}
        self.tenant: dict[int, int] = {}  # client -> tenant, while the client has a FIFO
        self.members: dict[int, set[int]] = {}  # tenant -> its clients with a FIFO here
        self.tenants: Stride[int] = Stride()
        self.clients: dict[int, Stride[int]] = {}  # per tenant: its clients' passes
        self.frames = 0

    # -------------------------------------------------------------- queueing
    def _fifo(self, job: Job) -> tuple[int, deque[Job]]:
        client, tenant = job.client_id, tenant_of(job)
        fifo = self.fifos.get(client)
        if fifo is None:
            fifo = self.fifos[client] = deque()
            self.tenant[client] = tenant
            self.members.setdefault(tenant, set()).add(client)
            self.clients.setdefault(tenant, Stride())
        return self.tenant[client], fifo

    def _busy(self, tenant: int) -> bool:
        return any(self.fifos[c] for c in self.members.get(tenant, ()))

    def push(self, job: Job) -> None:
        tenant, fifo = self._fifo(job)
        if not self._busy(tenant):  # a tenant coming back gets no credit for idle time
            self.tenants.wake(tenant)
        if not fifo:  # nor does a client within its tenant
            self.clients[tenant].wake(job.client_id)
        fifo.append(job)
        self.frames += job.pending

    def push_front(self, job: Job) -> None:
        """A chunked job back at the head of its client's FIFO, for its next chunk."""
        tenant, fifo = self._fifo(job)
        self.tenants.resume(tenant)
        self.clients[tenant].resume(job.client_id)
        fifo.appendleft(job)
        self.frames += job.pending

    def discard(self, job: Job) -> bool:
        fifo = self.fifos.get(job.client_id)
        if fifo is None or job not in fifo:
            return False
        fifo.remove(job)
        self.frames -= job.pending
        return True

    def drop_client(self, client_id: int) -> list[Job]:
        """Forget a client (its connection closed), and its tenant with its last client."""
        jobs = list(self.fifos.pop(client_id, ()))
        self.frames -= sum(j.pending for j in jobs)
        tenant = self.tenant.pop(client_id, None)
        if tenant is not None:
            self.clients[tenant].forget(client_id)
            self.members[tenant].discard(client_id)
            if not self.members[tenant]:
                del self.members[tenant], self.clients[tenant]
                self.tenants.forget(tenant)
        return jobs

    # ---------------------------------------------------------------- taking
    def order(self, steal: bool = False) -> list[int]:
        """Clients with work, in serving order: tenants by pass, then each tenant's
        clients by pass (ties: the oldest head first). Stealing skips pinned heads."""
        ready: dict[int, list[int]] = {}
        for client, fifo in self.fifos.items():
            if fifo and (not steal or fifo[0].pinned is None):
                ready.setdefault(self.tenant[client], []).append(client)
        head = lambda c: self.fifos[c][0].enqueued  # noqa: E731
        out: list[int] = []
        for tenant in sorted(
            ready, key=lambda t: (self.tenants.passes[t], min(head(c) for c in ready[t]))
        ):
            inner = self.clients[tenant].passes
            out.extend(sorted(ready[tenant], key=lambda c: (inner[c], head(c))))
        return out

    def _charge(self, client: int, frames: int, weights: dict[int, float]) -> None:
        tenant = self.tenant[client]
        self.tenants.charge(tenant, frames)
        self.clients[tenant].charge(client, frames / weights.get(client, 1.0))

    def _settle(self) -> None:
        busy = [t for t in self.members if self._busy(t)]
        self.tenants.settle(busy)
        for tenant in busy:
            self.clients[tenant].settle(c for c in self.members[tenant] if self.fifos[c])

    def take(self, weights: dict[int, float], max_frames: int, steal: bool = False) -> list[Job]:
        """The next batch: the head of the neediest tenant's neediest client, plus the
        heads of any client (of any tenant) queued for the same program, in serving
        order, up to `max_frames`; each job charged to its client and tenant."""
        order = self.order(steal)
        if not order:
            return []
        first = self.fifos[order[0]][0]
        if first.work is not None or first.chunked:  # device work (a fit), a chunk: alone
            self.fifos[order[0]].popleft()
            self.frames -= first.pending
            step = min(first.pending, RUN_CHUNK_FRAMES) if first.chunked else first.frames
            self._charge(order[0], step, weights)
            self._settle()
            return [first]
        group = (first.key, first.predict)
        batch: list[Job] = []
        frames = 0
        for client in order:
            fifo = self.fifos[client]
            while fifo and (fifo[0].key, fifo[0].predict) == group:
                job = fifo[0]
                if job.work is not None or job.chunked or (steal and job.pinned is not None):
                    break  # alone in a batch of its own; or pinned elsewhere
                if batch and frames + job.frames > max_frames:
                    break
                fifo.popleft()
                batch.append(job)
                frames += job.frames
                self._charge(client, job.frames, weights)
            if frames >= max_frames:
                break
        self.frames -= frames
        self._settle()
        return batch
