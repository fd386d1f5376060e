"""Learned state in akidad: fit, info, export, import and reset of a session's learning
layer, per (program hash, device id, owner uid), durable in the state store.

Every operation is device work on the device's worker (Scheduler.call); a fit is
acknowledged only after the new state is written atomically and fsynced, and a model is
restored from the store when its worker builds it, before it serves anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from akida_rt.errors import AkidaError, DaemonError, ErrorKind, LearningError
from akida_rt.format.inputs import check_input
from akida_rt.learning import edge as learning
from akida_rt.model.model import Model
from akida_rt.wire.proto import daemon_pb2 as dpb

from .budgets import Budgets
from .config import Config
from .devices import DeviceManager, DeviceSlot, ProgramKey
from .jobs import Job
from .scheduler import Scheduler
from .sessions import Client, Session
from .store import StateStore
from .worker_runs import settle

log = logging.getLogger(__name__)
RECENT_UPDATES = 16  # fit ids remembered per state, so a client's retry applies once


def state_key(content_hash: str, device_id: str) -> str:
    """The store key of a program's learned state on a device (the uid is the folder)."""
    return f"learn.{content_hash}.{hashlib.sha256(device_id.encode()).hexdigest()[:16]}"


class LearningHost(Protocol):
    """What the learning operations use of the controller (daemon/controller.py)."""

    config: Config
    manager: DeviceManager
    scheduler: Scheduler
    store: StateStore
    sessions: dict[int, Session]
    budgets: Budgets

    def check_open(self) -> None: ...

    def check_queued(self, client: Client, nbytes: int) -> None: ...

    def session_of(self, client: Client, session_id: int) -> Session: ...


class LearnedStates:
    """The learning operations of the controller."""

    def __init__(self, ctl: LearningHost) -> None:
        self.ctl = ctl

    # ------------------------------------------------------------- restoring
    def restore(self, slot: DeviceSlot, key: ProgramKey, model: Model) -> None:
        """Apply the stored state of `key` on `slot` to a model just built (worker thread)."""
        if key.owner < 0:
            return
        blob = self.ctl.store.get(key.owner, state_key(key.content_hash, slot.id))
        if blob is None:
            return
        try:
            msg = learning.decode_state(blob, "stored learned state")
            model.restore_learned(msg, key.content_hash, "stored learned state")
        except LearningError as exc:  # the owner can still serve, reset or learn anew
            log.warning(
                "not restoring the stored learned state of %s on %s for uid %d: %s; the "
                "program serves its own state until a fit or reset replaces it",
                key.content_hash[:12], slot.id, key.owner, exc,
            )  # fmt: skip
            return
        log.info(
            "restored learned state of %s on %s for uid %d (%d samples)",
            key.content_hash[:12], slot.id, key.owner, msg.learning.samples,
        )  # fmt: skip

    # ------------------------------------------------------------ operations
    async def fit(
        self,
        client: Client,
        session_id: int,
        x: np.ndarray,
        labels: list[int],
        timeout_ms: int,
        update_id: int,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Learn `x`; returns (potentials, state) once the new state is durable."""
        session = self._learning_session(client, session_id)
        check_input(x, session.input_shape, session.input_bits, "fit")
        most = self.ctl.config.max_fit_frames
        if x.shape[0] > most:
            raise DaemonError(
                f"a fit of {x.shape[0]} samples; at most {most} per fit (max_fit_frames): "
                "split it into several fits"
            )
        assert session.learning is not None
        labels_arr = None if not labels else np.asarray(labels, np.int64)
        y = learning.check_labels(session.learning, labels_arr, x.shape[0])

        def work(model: Model, slot: DeviceSlot, job: Job) -> tuple[np.ndarray, dict[str, Any]]:
            key = state_key(session.key.content_hash, slot.id)
            before = model.learned_state(session.key.content_hash)
            recent = list(self._recent(slot, session, key))
            if update_id and update_id in recent:
                return np.zeros((0, 0), np.int32), model.learning_info() or {}
            try:
                pots = model.fit(x, y)
                if not job.commit():  # the deadline answered it while it ran: undo
                    raise DaemonError("the fit ran past its deadline; nothing was learned",
                                      ErrorKind.DEADLINE_EXCEEDED)  # fmt: skip
                recent = ([update_id] if update_id else []) + recent
                self._save(session, slot, model, recent[:RECENT_UPDATES])
                slot.resident = session.key  # learned in device memory, nothing reloaded
            except BaseException:
                model.restore_learned(before, session.key.content_hash, "rollback")
                raise
            return pots, model.learning_info() or {}

        result: tuple[np.ndarray, dict[str, Any]] = await self._queued(
            client, session, x, work, timeout_ms
        )
        return result

    async def _queued(
        self,
        client: Client,
        session: Session,
        x: np.ndarray,
        work: Callable[[Model, DeviceSlot, Job], Any],
        timeout_ms: int,
    ) -> Any:
        """Queue `work` as a job of the client on the session's device: weighted-fair
        with its inference (frames: the samples), with the same deadline rules."""
        cfg = self.ctl.config
        if timeout_ms > cfg.max_timeout_ms:
            raise DaemonError(
                f"timeout_ms {timeout_ms} is over max_timeout_ms {cfg.max_timeout_ms}"
            )
        self.ctl.check_queued(client, x.nbytes)
        slot = self.ctl.manager.slots.get(session.pinned or "")
        if slot is None or slot.state != "ready":
            raise DaemonError(f"device {session.pinned} is not available", ErrorKind.NO_DEVICE)
        timeout = (timeout_ms or cfg.default_timeout_ms) / 1e3
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()

        def run(s: DeviceSlot, job: Job) -> Any:
            if session.session_id not in self.ctl.sessions:
                raise DaemonError("the learning session closed", ErrorKind.DEADLINE_EXCEEDED)
            model = s.model_for(session.key, session.program)
            s.resident = None  # unknown until the work says (a fit leaves its model resident)
            return work(model, s, job)

        def reply(job: Job, result: Any) -> None:  # any thread, once
            loop.call_soon_threadsafe(settle, answer, result)

        now = time.monotonic()
        job = Job(client.client_id, session.key, session.program, x, False, session.pinned,
                  now + timeout, reply, now, owner=client, budgets=self.ctl.budgets,
                  work=run)  # fmt: skip
        job.start(loop, timeout)
        self.ctl.scheduler.submit(job)
        try:
            return await answer
        except asyncio.CancelledError:
            self.ctl.scheduler.cancel(job)  # the connection closed: never run it
            raise

    async def state(
        self, client: Client, session_id: int, op: int, data: bytes, num_classes: int = 0
    ) -> tuple[dict[str, Any], bytes]:
        """INFO, EXPORT, IMPORT or RESET the session's learned state on its device, or
        ADD_CLASSES: the program grown by `num_classes` classes, with that state."""
        session = self._learning_session(client, session_id)
        digest = session.key.content_hash
        incoming = None
        if op == dpb.LearnState.IMPORT:
            incoming = learning.decode_state(data, "imported learned state")
            if incoming.program_hash != digest:
                raise LearningError(
                    f"the imported state was learned on program {incoming.program_hash[:12]}, "
                    f"this session runs program {digest[:12]}: import it onto that program"
                )

        def work(model: Model, slot: DeviceSlot) -> tuple[dict[str, Any], bytes]:
            key = state_key(digest, slot.id)
            if op == dpb.LearnState.ADD_CLASSES:
                grown = Model(session.program)
                grown.restore_learned(model.learned_state(digest), digest, "learned state")
                grown.add_classes(num_classes)
                return grown.learning_info() or {}, grown.to_bytes()
            if op == dpb.LearnState.EXPORT:
                return model.learning_info() or {}, learning.encode_state(
                    model.learned_state(digest)
                )
            if op in (dpb.LearnState.IMPORT, dpb.LearnState.RESET):
                before = model.learned_state(digest)
                source = incoming or Model(session.program).learned_state(digest)
                try:
                    model.restore_learned(source, digest, "imported learned state")
                    if op == dpb.LearnState.RESET:
                        self.ctl.store.delete(session.client.uid, key)
                    else:
                        self._save(session, slot, model, [])
                except BaseException:
                    model.restore_learned(before, digest, "rollback")
                    raise
            return model.learning_info() or {}, b""

        result: tuple[dict[str, Any], bytes] = await self._on_worker(client, session, work, 0)
        return result

    # ------------------------------------------------------------------ helpers
    def _learning_session(self, client: Client, session_id: int) -> Session:
        self.ctl.check_open()
        session = self.ctl.session_of(client, session_id)
        if session.learning is None:
            raise LearningError(
                f"program '{session.name}' is not compiled for learning: compile it with "
                "AkidaUnsupervised and save it, then load it again"
            )
        return session

    async def _on_worker(
        self,
        client: Client,
        session: Session,
        work: Callable[[Model, DeviceSlot], Any],
        timeout_ms: int,
    ) -> Any:
        cfg = self.ctl.config
        if timeout_ms > cfg.max_timeout_ms:
            raise DaemonError(
                f"timeout_ms {timeout_ms} is over max_timeout_ms {cfg.max_timeout_ms}"
            )
        timeout = (timeout_ms or cfg.default_timeout_ms) / 1e3
        deadline = time.monotonic() + timeout
        slot = self.ctl.manager.slots.get(session.pinned or "")
        if slot is None or slot.state != "ready":
            raise DaemonError(f"device {session.pinned} is not available", ErrorKind.NO_DEVICE)

        def run(s: DeviceSlot) -> Any:
            if time.monotonic() > deadline or session.session_id not in self.ctl.sessions:
                raise DaemonError("the learning request expired or its session closed",
                                  ErrorKind.DEADLINE_EXCEEDED)  # fmt: skip
            model = s.model_for(session.key, session.program)
            s.resident = None  # unknown until the work says (a fit leaves its model resident)
            return work(model, s)

        future = self.ctl.scheduler.call(slot, ("learn", secrets.randbits(64)), run)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise DaemonError(
                f"no answer within {timeout:g} s", ErrorKind.DEADLINE_EXCEEDED
            ) from None
        except AkidaError:
            raise
        except Exception as exc:
            raise DaemonError(
                f"learning failed: {type(exc).__name__}: {exc}", ErrorKind.INTERNAL
            ) from exc

    def _recent(self, slot: DeviceSlot, session: Session, key: str) -> list[int]:
        blob = self.ctl.store.get(session.client.uid, key)
        return list(learning.decode_state(blob).recent_updates) if blob else []

    def _save(self, session: Session, slot: DeviceSlot, model: Model, recent: list[int]) -> None:
        """Write the state durably (atomic write, fsync) under the owner's quotas."""
        msg = model.learned_state(session.key.content_hash)
        msg.recent_updates[:] = recent
        blob = learning.STATE_MAGIC + msg.SerializeToString()
        cfg = self.ctl.config
        self.ctl.store.put(
            session.client.uid, state_key(session.key.content_hash, slot.id), blob,
            cfg.max_state_keys_per_uid, cfg.max_state_bytes_per_uid,
        )  # fmt: skip
