"""The akidad client: what applications import to run models through the daemon.

    from akida_rt.client.client import Client
    with Client(name="camera") as c:
        model = c.load("digits.akp")
        y = model.forward(frames)        # same integers as Model.forward in-process

Blocking and thread-safe (one request at a time per Client; `forward_many` pipelines).
Tensors over the daemon's threshold travel in a memfd; only the descriptor is sent. When
the daemon restarts, the client reconnects, reloads its programs and retries.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import select
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from akida_rt.client.connection import (
    RETRYABLE,
    Answer,
    Connection,
    has_frame,
    raise_error,
    request,
)
from akida_rt.client.remote_model import RemoteModel
from akida_rt.errors import DaemonError, ErrorKind, RemoteError
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb

__all__ = ["Client", "Collected", "RemoteModel"]


class Client(Connection):
    """A connection to akidad (trust checks, TLS, framing and retry are `Connection`'s,
    whose arguments it takes) and the requests made over it: load, infer, pipelined
    submit/collect, learning, stored state and statistics.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        name: str = "",
        priority: int = 0,
        timeout: float = 30.0,
        retry_s: float = 10.0,
        cert: str = "",
        key: str = "",
        ca: str = "",
    ) -> None:
        self._models: list[RemoteModel] = []
        self._submitted: dict[int, _Submitted] = {}  # by request id, until answered
        self._answered: list[Collected] = []  # answers to submits, for collect()
        super().__init__(path, name=name, priority=priority, timeout=timeout,
                         retry_s=retry_s, cert=cert, key=key, ca=ca)  # fmt: skip

    def _reconnected(self) -> None:
        for model in self._models:  # the daemon restarted: sessions are gone, reload
            model._update(self._roundtrip(model._load).loaded)

    def _closed(self) -> None:
        self._models.clear()
        for entry in self._submitted.values():
            entry.release()
        self._submitted.clear()

    # ------------------------------------------------------------------- API
    def devices(self) -> list[dict[str, Any]]:
        """Devices the daemon serves (simulated ones say so)."""
        devices = self._call(request("list_devices")).devices.devices
        return [json.loads(d.describe_json) for d in devices]

    def stats(self) -> dict[str, Any]:
        """Per-device and per-client counters (what `akida stats --json` prints)."""
        result: dict[str, Any] = json.loads(self._call(request("stats")).stats.json)
        return result

    def load(
        self,
        program: bytes | str | os.PathLike[str] | Any,
        *,
        device: str = "",
        map_mode: str = "AllNps",
        hw_only: bool = False,
    ) -> RemoteModel:
        """Load a program (file bytes, a path, or a Model) and open a session on it."""
        if hasattr(program, "to_bytes"):
            program = program.to_bytes()
        elif not isinstance(program, bytes):
            program = Path(program).read_bytes()
        req = request("load", program=program, device=device, map_mode=map_mode,
                       hw_only=hw_only)  # fmt: skip
        model = RemoteModel(self, req)
        with self._lock:
            model._update(self._call(req).loaded)
            self._models.append(model)
        return model

    def _reload(self, model: RemoteModel, program: bytes) -> None:
        """Open a session on `program` for `model` (same device and mapping), then close
        its old session."""
        req = dpb.Request()
        req.CopyFrom(model._load)
        req.load.program = program
        with self._lock:
            loaded = self._call(req).loaded
            old = model.session
            model._load = req
            model._update(loaded)
            self._call(request("unload", session=old))

    def _unload(self, model: RemoteModel) -> None:
        with self._lock:
            self._call(request("unload", session=model.session))
            self._models.remove(model)

    def put_state(self, key: str, data: bytes) -> None:
        """Store a blob durably in the daemon's state directory, under this user."""
        self._call(request("put_state", key=key, data=data))

    def get_state(self, key: str, owner_uid: int | None = None) -> bytes:
        """A blob of this user's (or, for root, of `owner_uid`'s)."""
        owner = {} if owner_uid is None else {"owner_uid": owner_uid, "has_owner": True}
        return bytes(self._call(request("get_state", key=key, **owner)).state.data)

    def delete_state(self, key: str) -> None:
        """Remove a blob of this user from the daemon's state directory."""
        self._call(request("delete_state", key=key))

    # ------------------------------------------------------------ learning
    def _learn(
        self, model: RemoteModel, x: np.ndarray, labels: Any, timeout: float | None
    ) -> np.ndarray:
        x = np.ascontiguousarray(x)
        if x.dtype != np.uint8 or x.ndim != 4:
            raise DaemonError(f"fit: inputs must be uint8 NHWC frames, got {x.dtype} {x.shape}")
        lab = [] if labels is None else np.atleast_1d(np.asarray(labels)).tolist()
        update_id = int.from_bytes(os.urandom(8), "little") or 1

        def frame(req_id: int) -> bytes:  # the session changes if akidad restarts
            return tf.encode_learn(req_id, model.session, x, lab, update_id=update_id,
                                   timeout_ms=int((timeout or 0) * 1000))  # fmt: skip

        answer = self._reconnecting(lambda: self._exchange(frame, timeout))
        if not isinstance(answer, tf.LearnedFrame):
            raise DaemonError(f"akidad answered a fit with {answer.WhichOneof('body')}")
        return answer.potentials

    def _learn_state(
        self, model: RemoteModel, op: str, data: bytes, num_classes: int = 0
    ) -> tuple[dict[str, Any], bytes]:
        ops = {"info": 0, "export": 1, "import": 2, "reset": 3, "add_classes": 4}
        if op not in ops:
            raise DaemonError(f"learned_state: op {op!r}, use one of {sorted(ops)}")

        def req() -> dpb.Request:  # the session changes if akidad restarts
            return request("learn_state", session=model.session, op=ops[op], data=data,
                           num_classes=num_classes)  # fmt: skip

        resp = self._reconnecting(lambda: self._roundtrip(req())).learn_state
        return json.loads(resp.state_json or "{}"), bytes(resp.data)

    # -------------------------------------------------------------- inference
    def _infer(
        self, model: RemoteModel, xs: list[np.ndarray], predict: bool, timeout: float | None
    ) -> list[Any]:
        """Submit every input, then collect their answers (the daemon batches what queues):
        forward and forward_many are submits, with the same resend after a reconnect."""
        with self._lock:
            handles: list[int] = []
            got: dict[int, Collected] = {}
            others: list[Collected] = []  # a stream's answers stay for its collect()
            try:
                for x in xs:
                    handles.append(self.submit(model, x, predict=predict, timeout=timeout))
                while len(got) < len(handles):
                    for c in self.collect():
                        if c.handle in handles:
                            got[c.handle] = c
                        else:
                            others.append(c)
            finally:
                self._answered[:0] = others
                self._forget(set(handles) - got.keys())
        for h in handles:
            error = got[h].error
            if error is not None:
                raise error
        return [got[h].y for h in handles]

    def _forget(self, handles: set[int]) -> None:
        """Drop submitted requests nobody will collect (their answers are ignored)."""
        for rid, entry in list(self._submitted.items()):
            if entry.handle in handles:
                entry.release()
                del self._submitted[rid]

    def _send_infer(
        self, model: RemoteModel, x: np.ndarray, predict: bool, timeout_ms: int
    ) -> tuple[int, mmap.mmap | None]:
        """Send one infer frame; the tensor goes inline, or in a sealed memfd when it (or
        its answer) is over the daemon's threshold. Returns the request id and the mapped
        memfd."""
        rid = self._next_id()
        size = max(x.nbytes, x.shape[0] * model.output_size * 4) if x.ndim else 0
        if size < self.shm_threshold:
            head, body = tf.infer_parts(rid, model.session, x, predict=predict,
                                        timeout_ms=timeout_ms)  # fmt: skip
            ipc.send_frame(self._socket(), head, body)
            return rid, None
        shm = self._memfd(size)
        try:
            np.frombuffer(shm, dtype=x.dtype, count=x.size)[:] = x.reshape(-1)
            head, _ = tf.infer_parts(rid, model.session, x, predict=predict,
                                     timeout_ms=timeout_ms, in_shm=True,
                                     output_to_shm=True)  # fmt: skip
            ipc.send_frame(self._socket(), head, b"", (shm.fd,))
        except BaseException:
            shm.close()
            raise
        return rid, shm

    # -------------------------------------------------------------- streaming
    def submit(
        self,
        model: RemoteModel,
        x: np.ndarray,
        *,
        predict: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Send one inference and return its handle at once; `collect` returns the answer.

        A window of submits keeps a device busy (akidad batches what is queued) without
        waiting on each answer. The request travels exactly as `forward`'s (a tensor
        frame, or a sealed memfd over the threshold); if the daemon goes away it is sent
        again after the reconnect, under the same handle.
        """
        entry = _Submitted(0, model, np.asarray(x), predict, int((timeout or self.timeout) * 1e3))
        with self._lock:
            self._reconnecting(lambda: self._send_submitted(entry))
            return entry.handle

    def collect(self, wait: float | None = None) -> list[Collected]:
        """Answers to submitted requests that have arrived, in arrival order.

        Args:
            wait: when none has arrived, how long to wait for one (None: until one comes;
                0: only what is already here). Returns [] when nothing is submitted.
        """
        with self._lock:
            if not self._answered and self._submitted:
                self._reconnecting(lambda: self._read_answers(wait))
            answered, self._answered = self._answered, []
            return answered

    @property
    def in_flight(self) -> int:
        """Submitted requests not answered yet."""
        return len(self._submitted)

    def _send_submitted(self, entry: _Submitted) -> None:
        entry.release()
        rid, entry.region = self._send_infer(entry.model, entry.x, entry.predict, entry.timeout_ms)
        entry.handle, entry.sent_on = entry.handle or rid, self._sock
        self._submitted[rid] = entry

    def _read_answers(self, wait: float | None) -> None:
        """Send again what a lost connection dropped, then read at least one answer to a
        submit (or none if `wait` passes first), then whatever else is already here."""
        for rid, entry in list(self._submitted.items()):
            if entry.sent_on is not self._sock:
                del self._submitted[rid]
                self._send_submitted(entry)
        sock = self._socket()
        limit = max(e.timeout_ms for e in self._submitted.values()) / 1e3 + 5.0
        while not self._answered and self._submitted and self._all_sent():
            pending = getattr(sock, "pending", lambda: 0)()  # TLS: bytes already decrypted
            if wait is not None and not (has_frame(self._rbuf) or pending):
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    return
            self._keep(self._recv(limit))  # blocks until an answer, or raises at `limit`
            while has_frame(self._rbuf):
                self._keep(self._recv(limit))
        if not self._all_sent():
            # refused by a daemon that is going away: reconnect, then send them again
            raise RemoteError(ErrorKind.SHUTTING_DOWN, "akidad is shutting down")

    def _all_sent(self) -> bool:
        """No submitted request waits to be sent again."""
        return all(entry.sent_on is not None for entry in self._submitted.values())

    def _keep(self, resp: Answer) -> None:
        """File an answer to a submitted request for collect(); anything else is stale."""
        entry = self._submitted.pop(resp.id, None)
        if entry is None:
            return
        try:
            y = self._answer(entry.model, resp, entry.region)
        except RemoteError as exc:
            entry.region = None
            if exc.kind in RETRYABLE:
                entry.sent_on = None  # sent again after the reconnect
                self._submitted[resp.id] = entry
            else:
                self._answered.append(Collected(entry.handle, None, exc, "", 0.0))
            return
        entry.region = None  # _answer closed it
        assert isinstance(resp, tf.ResultFrame)
        self._answered.append(Collected(entry.handle, y, None, resp.device, resp.run_s))

    @staticmethod
    def _answer(model: RemoteModel, resp: Answer, region: mmap.mmap | None) -> np.ndarray:
        """The output array of one answer (copied out of its memfd, which is closed)."""
        try:
            if isinstance(resp, dpb.Response):
                raise_error(resp)
                raise DaemonError(f"akidad answered an inference with {resp.WhichOneof('body')}")
            if isinstance(resp, tf.LearnedFrame):
                raise DaemonError("akidad answered an inference with a learn answer")
            if resp.y is not None:
                y = resp.y.copy()
            elif region is not None:
                count = math.prod(resp.shape)
                if count * resp.dtype.itemsize > len(region):
                    raise DaemonError("akidad's answer does not fit the shared memory sent")
                y = np.frombuffer(region, resp.dtype, count).reshape(resp.shape).copy()
            else:
                raise DaemonError("the answer is in shared memory this request never sent")
            model.last_device, model.last_run_s = resp.device, resp.run_s
            return y
        finally:
            if region is not None:
                region.close()


class Collected(NamedTuple):
    """The answer to a `Client.submit`: the output, or the error it was answered with."""

    handle: int
    y: np.ndarray | None
    error: RemoteError | None
    device: str
    run_s: float  # device time, as the daemon measured it


@dataclass(eq=False)
class _Submitted:
    """A submitted inference, kept until answered so it can be sent again."""

    handle: int
    model: RemoteModel
    x: np.ndarray
    predict: bool
    timeout_ms: int
    region: mmap.mmap | None = None
    sent_on: socket.socket | None = None

    def release(self) -> None:
        if self.region is not None:
            self.region.close()
            self.region = None
