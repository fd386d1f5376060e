"""The controller: akidad's operations as plain methods (clients, sessions, programs,
inference, state, stats). It does not know it is called over a socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from akida_rt import __version__
from akida_rt.errors import AkidaError, DaemonError, ErrorKind
from akida_rt.format import program as fmt
from akida_rt.format.inputs import check_input
from akida_rt.mapping.mapper import MapMode, map_layers
from akida_rt.model.model import Model

from .budgets import Budgets, Kind
from .config import Config
from .devices import DeviceManager, ProgramKey
from .jobs import Job, Result
from .learning import LearnedStates
from .scheduler import Scheduler
from .sessions import Client, Session
from .store import StateStore
from .tenant_ledger import TenantLedger

log = logging.getLogger(__name__)
MAX_PRIORITY = 7
STATS_WAIT_S = 0.5  # how long `stats` waits for a device's fresh counters


class Controller:
    """akidad's operations. All methods run in the event-loop thread."""

    def __init__(
        self, config: Config, manager: DeviceManager, scheduler: Scheduler, store: StateStore
    ) -> None:
        self.config = config
        self.manager = manager
        self.scheduler = scheduler
        self.store = store
        self.clients: dict[int, Client] = {}
        self.sessions: dict[int, Session] = {}
        self.draining = False
        self.started = time.time()
        self._next_client = 1
        self._templates: dict[str, Model] = {}
        self._device_stats: dict[str, dict[str, Any]] = {}
        self.budgets = Budgets(lambda: self.config)
        self.learned = LearnedStates(self)
        self.ledger: TenantLedger | None = None  # with a tenant directory (tenant_ledger.py)
        manager.prepare_model = self.learned.restore  # learned state before a model serves

    # --------------------------------------------------------------- clients
    def connect(self, pid: int, uid: int, gid: int) -> Client:
        client = Client(self._next_client, pid, uid, gid)
        self._next_client += 1
        self.clients[client.client_id] = client
        self.scheduler.join(client.client_id, uid)  # the tenant is the uid it acts as
        return client

    def disconnect(self, client: Client) -> None:
        """Release at once everything the client held: queued work, timers, sessions."""
        dropped = self.scheduler.drop_client(client.client_id)
        for job in list(client.jobs):
            job.drop()
        for sid in list(client.sessions):
            self._close_session(sid)
        self.clients.pop(client.client_id, None)
        if self.ledger is not None:
            self.ledger.client_left(client.uid)
        log.info(
            "client %d (pid %d uid %d) gone: %d queued request(s) dropped",
            client.client_id, client.pid, client.uid, dropped,
        )  # fmt: skip

    def has_client(self, uid: int) -> bool:
        return any(c.uid == uid for c in self.clients.values())

    def hello(self, client: Client, name: str, priority: int, protocol: int) -> dict[str, Any]:
        from akida_rt.wire import ipc

        if protocol != ipc.PROTOCOL:
            theirs = ipc.PROTOCOLS.get(protocol, f"protocol {protocol}")
            raise DaemonError(
                f"this client speaks akidad {theirs} and akidad {__version__} speaks "
                f"{ipc.PROTOCOLS[ipc.PROTOCOL]}: use the akida_rt of the daemon's version",
                ErrorKind.PROTOCOL_MISMATCH,
            )
        if not 0 <= priority <= MAX_PRIORITY:
            raise DaemonError(f"priority {priority} is outside 0..{MAX_PRIORITY}")
        client.name, client.priority = name[:64], priority
        self.scheduler.weights[client.client_id] = float(2**priority)
        return {"version": __version__, "pid": os.getpid(), "client_id": client.client_id}

    # --------------------------------------------------------------- devices
    def list_devices(self) -> list[dict[str, Any]]:
        out = []
        for slot in list(self.manager.slots.values()):
            info = slot.describe()
            info["queued"] = self.scheduler.queued_frames(slot.id)
            out.append(info)
        return out

    # -------------------------------------------------------------- sessions
    def _session(self, client: Client, session_id: int) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise DaemonError(
                f"no session {session_id}; load a program first", ErrorKind.NO_SESSION
            )
        if session.client.uid != client.uid:
            raise DaemonError(
                f"session {session_id} belongs to another user", ErrorKind.PERMISSION_DENIED
            )
        return session

    async def load(
        self, client: Client, program: bytes, device: str, map_mode: str, hw_only: bool
    ) -> Session:
        """Check a program's bytes, map it and open a session on it."""
        self._check_open()
        if len(client.sessions) >= self.config.max_sessions_per_client:
            raise DaemonError(
                f"this client has {len(client.sessions)} sessions open, the limit "
                f"(max_sessions_per_client); unload one first",
                ErrorKind.QUOTA_EXCEEDED,
            )
        try:
            mode = MapMode(map_mode or MapMode.AllNps.value)
        except ValueError:
            raise DaemonError(
                f"map_mode {map_mode!r}: use one of {[m.value for m in MapMode]}"
            ) from None
        # The header's hash names a program only once the payload is checked against it
        # (a header alone must not reach a template another client loaded).
        digest = fmt.content_hash(program)
        template = self._templates.get(digest)
        if template is None or await asyncio.to_thread(_payload_hash, program) != digest:
            template = await asyncio.to_thread(Model, program)  # checks header, hash, payload
            template = self._templates.setdefault(digest, template)
        targets = [s for s in self.manager.ready() if not device or s.id == device]
        if not targets:
            why = self.scheduler.no_device_reason(device or None)
            raise DaemonError(why, ErrorKind.NO_DEVICE)
        plans = await asyncio.to_thread(
            map_layers, template.layers, targets[0].spec, hw_only=hw_only, mode=mode
        )
        self._check_open()
        # A learning program has one state per (program, device, owner): its model is the
        # owner's own, on one device.
        learns = template.learning is not None and template.learning.enabled
        session = Session(
            session_id=secrets.randbits(63),
            client=client,
            key=ProgramKey(digest, mode.value, hw_only, client.uid if learns else -1),
            program=program,
            name=template.name,
            input_shape=template.input_shape,
            input_bits=template.input_bits,
            output_shape=tuple(template.output_shape),
            sequences=len(plans),
            pinned=device or (targets[0].id if learns else None),
            learning=template.learning if learns else None,
        )
        self.sessions[session.session_id] = session
        client.sessions.add(session.session_id)
        log.info(
            "client %d loaded %s (%s) as session %d",
            client.client_id, session.name, digest[:12], session.session_id,
        )  # fmt: skip
        return session

    def unload(self, client: Client, session_id: int) -> None:
        session = self._session(client, session_id)
        if session.client is not client:
            raise DaemonError(
                f"session {session_id} belongs to another client", ErrorKind.PERMISSION_DENIED
            )
        self._close_session(session_id)

    def _close_session(self, session_id: int) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        session.client.sessions.discard(session_id)
        key = session.key
        if any(s.key == key for s in self.sessions.values()):
            return
        for slot in list(self.manager.slots.values()):  # the devices' workers free it
            future = self.scheduler.call(slot, ("release", key), lambda s: s.release(key))
            future.add_done_callback(_log_failure)
        if not any(s.key.content_hash == key.content_hash for s in self.sessions.values()):
            self._templates.pop(key.content_hash, None)

    # ------------------------------------------------------------- inference
    def infer(
        self,
        client: Client,
        session_id: int,
        x: np.ndarray,
        predict: bool,
        timeout_ms: int,
        reply: Callable[[Result, Job], None],
    ) -> None:
        """Queue an inference; `reply(outputs or the error, job)` is called exactly once
        (the job settles itself), by the deadline at the latest, from the device's worker
        thread (results, device errors) or the loop thread (deadline, no device): it must
        be thread-safe. Not called if the client leaves first."""
        self._check_open()
        session = self._session(client, session_id)
        cfg = self.config
        if len(client.jobs) >= cfg.max_in_flight or (
            client.queued_bytes + x.nbytes > cfg.max_queued_bytes
        ):
            raise DaemonError(
                f"{len(client.jobs)} requests ({client.queued_bytes} input bytes) of this client "
                f"are unanswered (max_in_flight={cfg.max_in_flight}, max_queued_bytes="
                f"{cfg.max_queued_bytes}); read answers before sending more",
                ErrorKind.TOO_MANY_REQUESTS,
            )
        self.check_queued(client, x.nbytes)
        if timeout_ms > cfg.max_timeout_ms:
            raise DaemonError(
                f"timeout_ms {timeout_ms} is over max_timeout_ms {cfg.max_timeout_ms}"
            )
        check_input(x, session.input_shape, session.input_bits, session.name)
        timeout = (timeout_ms or cfg.default_timeout_ms) / 1e3
        start = time.perf_counter()

        def books(job: Job, result: Result) -> None:  # loop, after the answer
            if isinstance(result, AkidaError):
                client.meter.errors += 1
                self.scheduler.cancel(job)
            else:
                client.meter.record(job.frames, time.perf_counter() - start)

        now = time.monotonic()
        job = Job(client.client_id, session.key, session.program, x, predict, session.pinned,
                  now + timeout, lambda job, result: reply(result, job), now, owner=client,
                  on_settled=books, budgets=self.budgets)  # fmt: skip
        job.start(asyncio.get_running_loop(), timeout)
        self.scheduler.submit(job)

    def check_queued(self, client: Client, nbytes: int) -> None:
        """Refuse `nbytes` more queued input of `client`'s uid past its budget, or past the
        total when that uid holds at least its share of it (TOO_MANY_REQUESTS)."""
        why = self.budgets.over(Kind.QUEUED, client.uid, nbytes)
        if not why:
            return
        per_uid, total = self.budgets.limits(Kind.QUEUED)
        mine = self.budgets.used(Kind.QUEUED, client.uid) + nbytes
        share = total // max(1, self.budgets.holders(Kind.QUEUED))
        if mine > per_uid or mine > share:
            raise DaemonError(f"{why}; read answers before sending more",
                              ErrorKind.TOO_MANY_REQUESTS)  # fmt: skip

    # ----------------------------------------------------------------- state
    async def put_state(self, client: Client, key: str, data: bytes) -> None:
        cfg = self.config
        await asyncio.to_thread(self.store.put, client.uid, key, data,
                                cfg.max_state_keys_per_uid, cfg.max_state_bytes_per_uid)  # fmt: skip

    def get_state(self, client: Client, key: str, owner: int | None) -> bytes:
        uid = client.uid if owner is None else owner
        if uid != client.uid and client.uid != 0:
            raise DaemonError(
                f"state of uid {uid} is not readable by uid {client.uid}",
                ErrorKind.PERMISSION_DENIED,
            )
        data = self.store.get(uid, key)
        if data is None:
            raise DaemonError(f"no state '{key}' for uid {uid}", ErrorKind.NOT_FOUND)
        return data

    async def delete_state(self, client: Client, key: str) -> None:
        if not await asyncio.to_thread(self.store.delete, client.uid, key):
            raise DaemonError(f"no state '{key}' for uid {client.uid}", ErrorKind.NOT_FOUND)

    # ----------------------------------------------------------------- stats
    async def stats(self, viewer: Client | None) -> dict[str, Any]:
        """Counters per device and per client, taken now; then each device's worker reads
        its driver counters (a busy or hung device keeps its last ones, and says so).
        Other users' clients are shown only to root, the daemon's own user, and the
        operator's metrics endpoint (`viewer` None)."""
        slots = list(self.manager.slots.values())
        everyone = viewer is None or viewer.uid in (0, os.getuid())
        out: dict[str, Any] = {
            "daemon": {
                "pid": os.getpid(),
                "version": __version__,
                "draining": self.draining,
                "uptime_s": round(time.time() - self.started, 3),
                "config_generation": self.config.generation,
                "max_batch_frames": self.config.max_batch_frames,
            },
            "devices": [
                {
                    "id": slot.id,
                    "name": slot.spec.name,
                    "kind": slot.kind,
                    "simulated": slot.simulated,
                    "state": slot.state,
                    "health": slot.health()[0],
                    "queued_frames": self.scheduler.queued_frames(slot.id),
                    "meter": slot.meter.snapshot(),
                }
                for slot in slots
            ],
            "clients": [
                {
                    "client_id": c.client_id,
                    "pid": c.pid,
                    "uid": c.uid,
                    "name": c.name,
                    "priority": c.priority,
                    "sessions": len(c.sessions),
                    "in_flight": len(c.jobs),
                    "meter": c.meter.snapshot(),
                }
                for c in self.clients.values()
                if everyone or c.uid == viewer.uid  # type: ignore[union-attr]
            ],
            "tenants": [
                {"uid": uid, "clients": n, "frames": frames, "device_s": round(busy, 6)}
                for uid, (frames, busy, n) in sorted(self.scheduler.tenant_usage().items())
                if everyone or uid == viewer.uid  # type: ignore[union-attr]
            ],
            "sessions": len(self.sessions),
            "outstanding": self.scheduler.outstanding(),
        }
        fresh = [self.scheduler.call(s, "stats", _device_summary) for s in slots]
        await asyncio.wait(fresh, timeout=STATS_WAIT_S)
        for slot, future, entry in zip(slots, fresh, out["devices"], strict=True):
            if future.done() and not future.cancelled() and future.exception() is None:
                self._device_stats[slot.id] = future.result()
            entry["driver"] = self._device_stats.get(slot.id, {})
            entry["driver_fresh"] = future.done()
        return out

    def unanswered(self) -> int:
        """Inference requests not answered yet, queued, running or being written (drain
        waits for them)."""
        return sum(len(c.jobs) for c in self.clients.values())

    def session_of(self, client: Client, session_id: int) -> Session:
        """The session `session_id` if `client`'s uid may use it."""
        return self._session(client, session_id)

    def check_open(self) -> None:
        self._check_open()

    def _check_open(self) -> None:
        if self.draining:
            raise DaemonError(
                "akidad is shutting down and takes no new work", ErrorKind.SHUTTING_DOWN
            )


def _payload_hash(program: bytes) -> str:
    return hashlib.sha256(memoryview(program)[fmt.HEADER.size :]).hexdigest()


def _device_summary(slot: Any) -> dict[str, Any]:
    summary: dict[str, Any] = slot.device_summary()
    return summary


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("releasing a program failed: %s", future.exception())
