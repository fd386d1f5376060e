"""The controller: akidad's operations as plain methods (clients, sessions, programs,
inference, state, stats). It does not know it is called over a socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from akida_rt import __version__
from akida_rt import program as fmt
from akida_rt.errors import AkidaError, DaemonError, MappingError, StatusError
from akida_rt.mapping import MapMode, map_layers
from akida_rt.model import Model

from . import affinity
from .config import Config
from .devices import DeviceManager, ProgramKey
from .metrics import Meter
from .scheduler import Job, JobFailed, Scheduler
from .store import StateStore

log = logging.getLogger(__name__)
MAX_PRIORITY = 7
U8 = np.dtype(np.uint8)


class Refused(StatusError, DaemonError):
    """A request the controller turns down; `status` is the wire Status name."""


@dataclass(eq=False)
class Client:
    """One connection: who is on the other end and what it owns."""

    client_id: int
    pid: int
    uid: int
    gid: int
    name: str = ""
    priority: int = 0
    connected: float = field(default_factory=time.time)
    sessions: set[int] = field(default_factory=set)
    meter: Meter = field(default_factory=Meter)
    in_flight: int = 0


@dataclass(eq=False)
class Session:
    """A program loaded by a client; requests name it by id."""

    session_id: int
    client: Client
    key: ProgramKey
    program: bytes
    name: str
    input_shape: tuple[int, ...]
    input_bits: int
    output_shape: tuple[int, ...]
    output_uint8: bool
    sequences: int
    pinned: str | None


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

    # --------------------------------------------------------------- clients
    def connect(self, pid: int, uid: int, gid: int) -> Client:
        client = Client(self._next_client, pid, uid, gid)
        self._next_client += 1
        self.clients[client.client_id] = client
        self.scheduler.weights[client.client_id] = 1.0
        return client

    def disconnect(self, client: Client) -> None:
        """Release everything the client owned: queued work, sessions, programs."""
        dropped = self.scheduler.drop_client(client.client_id)
        for sid in list(client.sessions):
            self._close_session(sid)
        self.clients.pop(client.client_id, None)
        log.info(
            "client %d (pid %d uid %d) gone: %d queued request(s) dropped",
            client.client_id,
            client.pid,
            client.uid,
            dropped,
        )

    def hello(self, client: Client, name: str, priority: int) -> dict[str, Any]:
        if not 0 <= priority <= MAX_PRIORITY:
            raise Refused("BAD_INPUT", f"priority {priority} is outside 0..{MAX_PRIORITY}")
        client.name, client.priority = name[:64], priority
        self.scheduler.weights[client.client_id] = float(2**priority)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "client_id": client.client_id,
            "uid": client.uid,
            "loop_cpus": affinity.loop_cpus(),
        }

    # --------------------------------------------------------------- devices
    def list_devices(self) -> list[dict[str, Any]]:
        out = []
        for slot in self.manager.slots.values():
            info = slot.describe()
            info["queued"] = self.scheduler.queued_frames(slot.id)
            out.append(info)
        return out

    # -------------------------------------------------------------- sessions
    def _session(self, client: Client, session_id: int) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise Refused("NO_SESSION", f"no session {session_id}; load a program first")
        if session.client.uid != client.uid:
            raise Refused("PERMISSION_DENIED", f"session {session_id} belongs to another user")
        return session

    async def load(
        self, client: Client, program: bytes, device: str, map_mode: str, hw_only: bool
    ) -> Session:
        """Parse and check a program, open a session on it."""
        self._check_open()
        try:
            mode = MapMode(map_mode or MapMode.AllNps.value)
        except ValueError:
            raise Refused(
                "BAD_INPUT", f"map_mode {map_mode!r}: use one of {[m.value for m in MapMode]}"
            ) from None
        digest = fmt.content_hash(program)
        template = self._templates.get(digest)
        if template is None:
            try:
                template = await asyncio.to_thread(Model, program)
            except AkidaError as exc:
                raise Refused("BAD_PROGRAM", str(exc)) from None
            self._templates[digest] = template
        targets = [s for s in self.manager.ready() if not device or s.id == device]
        if not targets:
            raise Refused(
                "NO_DEVICE",
                f"device {device!r} is not available"
                if device
                else "no device is available (none found, and simulated devices are off)",
            )
        try:
            plans = map_layers(template.layers, targets[0].spec, hw_only=hw_only, mode=mode)
        except MappingError as exc:
            raise Refused("MAPPING_FAILED", str(exc)) from None
        last = template.layers[-1]
        session = Session(
            session_id=secrets.randbits(63),
            client=client,
            key=ProgramKey(digest, mode.value, hw_only),
            program=program,
            name=template.name,
            input_shape=tuple(template.input_shape),
            input_bits=template.input_bits,
            output_shape=tuple(template.output_shape),
            output_uint8=bool(last.activation),
            sequences=len(plans),
            pinned=device or None,
        )
        self.sessions[session.session_id] = session
        client.sessions.add(session.session_id)
        log.info(
            "client %d loaded %s (%s) as session %d",
            client.client_id,
            session.name,
            digest[:12],
            session.session_id,
        )
        return session

    def unload(self, client: Client, session_id: int) -> None:
        session = self._session(client, session_id)
        if session.client is not client:
            raise Refused("PERMISSION_DENIED", f"session {session_id} belongs to another client")
        self._close_session(session_id)

    def _close_session(self, session_id: int) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        session.client.sessions.discard(session_id)
        if not any(s.key == session.key for s in self.sessions.values()):
            for slot in list(self.manager.slots.values()):
                slot.release(session.key)
            if not any(
                s.key.content_hash == session.key.content_hash for s in self.sessions.values()
            ):
                self._templates.pop(session.key.content_hash, None)

    # ------------------------------------------------------------- inference
    def check_input(self, session: Session, x: np.ndarray) -> None:
        if x.dtype != np.uint8:
            raise Refused("BAD_INPUT", f"inputs must be uint8, got {x.dtype}")
        if x.ndim != 4 or tuple(x.shape[1:]) != session.input_shape:
            raise Refused(
                "BAD_INPUT",
                f"input shape {tuple(x.shape)} does not match "
                f"(N, {', '.join(map(str, session.input_shape))}) of {session.name}",
            )
        if x.shape[0] == 0:
            raise Refused("BAD_INPUT", "input batch is empty")
        if session.input_bits < 8 and int(x.max()) >= 2**session.input_bits:
            raise Refused(
                "BAD_INPUT",
                f"input values reach {int(x.max())}, above the "
                f"{session.input_bits}-bit range of {session.name}",
            )

    def infer(
        self,
        client: Client,
        session_id: int,
        x: np.ndarray,
        predict: bool,
        timeout_ms: int,
        reply: Callable[[Any, Job], None],
        *,
        alone: bool = False,
    ) -> None:
        """Queue an inference; `reply(outputs or Refused, job)` is called exactly once, in
        the loop thread, by the deadline at the latest. `alone`: nothing else arrived with
        this request, so it may run before this returns if its device is idle."""
        if self.draining:
            self._check_open()
        session = self.sessions.get(session_id)
        if session is None or session.client.uid != client.uid:
            session = self._session(client, session_id)  # raises the precise refusal
        if client.in_flight >= self.config.max_in_flight:
            raise Refused(
                "TOO_MANY_REQUESTS",
                f"{client.in_flight} requests of this client are unanswered "
                f"(max_in_flight={self.config.max_in_flight}); read answers before sending more",
            )
        if not (
            x.dtype is U8 and x.shape[1:] == session.input_shape and x.shape[0]
            and session.input_bits >= 8
        ):  # fmt: skip
            self.check_input(session, x)  # the slow checks, and the precise refusals
        timeout = (timeout_ms or self.config.default_timeout_ms) / 1e3
        start = time.perf_counter()
        timer: asyncio.TimerHandle | None = None
        finished = False

        def done(job: Job, result: Any) -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            client.in_flight -= 1
            if not isinstance(result, Exception):
                reply(result, job)  # the answer first; the bookkeeping can wait
                client.meter.record(job.frames, time.perf_counter() - start)
            elif isinstance(result, JobFailed):
                client.meter.errors += 1
                reply(Refused(result.status, str(result)), job)
            else:
                client.meter.errors += 1
                job.cancelled = True
                reply(result, job)
            if timer is not None:
                timer.cancel()

        now = time.monotonic()
        job = Job(client.client_id, session.key, session.program, x, predict, session.pinned,
                  now + timeout, done, now)  # fmt: skip
        client.in_flight += 1
        ran = alone and self.scheduler.run_now(job)
        if finished:
            return
        # Not answered yet (queued, or run at once but failed over to another attempt).
        expired = f"no result within {timeout:g} s; dropped"
        timer = asyncio.get_running_loop().call_later(
            timeout, lambda: done(job, Refused("DEADLINE_EXCEEDED", expired))
        )
        if not ran:
            self.scheduler.submit(job)

    def infer_express(
        self,
        client: Client,
        session: Session,
        x: np.ndarray,
        predict: bool,
        answer: Callable[[np.ndarray, str, float], None],
    ) -> bool:
        """Run a request now, in this thread, if its program is resident on an idle
        device and this client has nothing else in flight; `answer(outputs, device,
        run_s)` is called before this returns True. False: nothing was done (or the
        device failed in a way a retry may cure: the request then goes through `infer`
        like a new one). Raises Refused when the device failed for good. The caller has
        checked `x` against the session."""
        if self.draining or client.in_flight:
            return False
        frames = x.shape[0]
        slot = self.scheduler.claim_express(session.key, session.pinned, frames)
        if slot is None:
            return False
        start = time.perf_counter()
        try:
            try:
                y, run_s = self.scheduler.run_express(slot, session.key, x, predict)
            except AkidaError as exc:
                why = self.scheduler.device_failed(slot, exc)
                client.meter.errors += 1
                if isinstance(why, JobFailed):
                    raise Refused(why.status, str(why)) from None
                if session.pinned is not None:  # as for a queued request: no other device
                    raise Refused("DEVICE_FAILED", why) from None
                log.info("request of client %d goes round again: %s", client.client_id, why)
                return False
            answer(y, slot.id, run_s)  # the answer first; the bookkeeping can wait
        finally:
            self.scheduler.release(slot)
        self.scheduler.account(slot, session.key, frames, run_s, True)
        client.meter.record(frames, time.perf_counter() - start)
        return True

    # ----------------------------------------------------------------- state
    def put_state(self, client: Client, key: str, data: bytes) -> None:
        self.store.put(client.uid, key, data)

    def get_state(self, client: Client, key: str, owner: int | None) -> bytes:
        uid = client.uid if owner is None else owner
        if uid != client.uid and client.uid != 0:
            raise Refused(
                "PERMISSION_DENIED", f"state of uid {uid} is not readable by uid {client.uid}"
            )
        data = self.store.get(uid, key)
        if data is None:
            raise Refused("NOT_FOUND", f"no state '{key}' for uid {uid}")
        return data

    # ----------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        devices = []
        for slot in self.manager.slots.values():
            devices.append(
                {
                    "id": slot.id,
                    "name": slot.spec.name,
                    "kind": slot.kind,
                    "simulated": slot.simulated,
                    "state": slot.state,
                    "queued_frames": self.scheduler.queued_frames(slot.id),
                    "meter": slot.meter.snapshot(),
                    "driver": slot.device_summary(),
                }
            )
        clients = [
            {
                "client_id": c.client_id,
                "pid": c.pid,
                "uid": c.uid,
                "name": c.name,
                "priority": c.priority,
                "sessions": len(c.sessions),
                "in_flight": c.in_flight,
                "meter": c.meter.snapshot(),
            }
            for c in self.clients.values()
        ]
        return {
            "daemon": {
                "pid": os.getpid(),
                "version": __version__,
                "draining": self.draining,
                "uptime_s": round(time.time() - self.started, 3),
                "config_generation": self.config.generation,
                "max_batch_frames": self.config.max_batch_frames,
            },
            "devices": devices,
            "clients": clients,
            "sessions": len(self.sessions),
            "outstanding": self.scheduler.outstanding(),
        }

    def _check_open(self) -> None:
        if self.draining:
            raise Refused("SHUTTING_DOWN", "akidad is shutting down and takes no new work")
