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

import errno
import json
import math
import mmap
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from akida_rt.errors import DaemonError, RemoteError
from akida_rt.wire import ipc, tls
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb

T = TypeVar("T")

RETRYABLE = {dpb.SHUTTING_DOWN}
MEMFD_POOL = 4  # sealed memfds a client keeps for its next large requests
Answer = dpb.Response | tf.ResultFrame


class RemoteModel:
    """A program loaded in the daemon; forward/predict like `Model`."""

    def __init__(self, client: Client, load: dpb.Request) -> None:
        self._client = client
        self._load = load  # sent again after a daemon restart
        self.last_device = ""
        self.last_run_s = 0.0  # device time of the last answer, as the daemon measured it

    def _update(self, loaded: dpb.Loaded) -> None:
        self.session, self.name, self.program_hash = (
            loaded.session,
            loaded.name,
            loaded.program_hash,
        )
        self.input_shape, self.output_shape = tuple(loaded.input_shape), tuple(loaded.output_shape)
        self.output_size = math.prod(self.output_shape)  # values per output frame
        self.sequences = loaded.sequences

    def forward(self, x: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Integer outputs of `x` (uint8 NHWC), computed on a daemon device."""
        result: np.ndarray = self._client._infer(self, [x], False, timeout)[0]
        return result

    def predict(self, x: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Float outputs (forward times output_scale plus output_offset)."""
        result: np.ndarray = self._client._infer(self, [x], True, timeout)[0]
        return result

    def forward_many(self, xs: Sequence[np.ndarray], timeout: float | None = None) -> list[Any]:
        """Send every input before reading any answer, so the daemon can batch them."""
        return self._client._infer(self, list(xs), False, timeout)

    def unload(self) -> None:
        self._client._unload(self)

    def fit(self, x: np.ndarray, labels: Any = None, timeout: float | None = None) -> np.ndarray:
        """Learn `x` on the session's device (docs/semantics.md, section 8); returns once the
        new learned state is durable in akidad. The (N, units) potentials before learning
        (empty when a retry found the update already applied: each fit applies once)."""
        return self._client._learn(self, x, labels, timeout)

    def learned_state(self, op: str = "info", data: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """The learned state: op "info" (samples, neurons learned), "export" (its bytes),
        "import" (replace it with exported bytes of the same program), "reset"."""
        return self._client._learn_state(self, op, data)

    def add_classes(self, num_classes: int) -> None:
        """Add `num_classes` classes of fresh neurons. The state learned so far is kept: the
        program is loaded again with it and the new neurons (a new program hash, whose
        learned state then starts from that program), and this session is closed."""
        from akida_rt.learning import edge as learning
        from akida_rt.model.model import Model

        _, blob = self.learned_state("export")
        local = Model(self._load.load.program)
        learning.apply_state(local, learning.decode_state(blob), self.program_hash, "akidad")
        local.add_classes(num_classes)
        self._client._reload(self, local.to_bytes())

    def __repr__(self) -> str:
        return f"<RemoteModel '{self.name}' session={self.session} sequences={self.sequences}>"


class Client:
    """A connection to akidad.

    Before it sends anything, the client checks that the socket's directory could not
    have been planted by another user and that the process serving it is root, this
    user, or the system service's user (ipc.trusted_server_uids).

    A remote daemon (`akida+tls://HOST:PORT`, `akidad --listen`) is reached over mutual
    TLS 1.3 instead: the server must hold a certificate for HOST signed by `ca`, and this
    client presents `cert`; tensors then travel in the frames (memfds cannot cross hosts).

    Args:
        path: the daemon socket; default $AKIDA_SOCKET, the user daemon, or the system one;
            or `akida+tls://HOST:PORT`.
        name: shown in `akida top`.
        priority: 0..7; a client with priority p gets 2**p shares of a busy device.
        timeout: default per-request deadline in seconds.
        retry_s: how long to keep reconnecting when the daemon is gone (0: do not retry).
        cert, key, ca: this client's certificate and key, and the CA of the daemon's
            certificate (PEM files), for `akida+tls://`.
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
        remote = str(path).startswith(f"{tls.SCHEME}://")
        self.remote = tls.address(str(path), tls.SCHEME) if remote else None
        self._tls = tls.client_context(cert, key, ca) if remote else None
        self.path: Path | str = (
            str(path) if remote else (Path(path) if path is not None else ipc.default_socket_path())
        )
        self.name = name or f"pid{os.getpid()}"
        self.priority = priority
        self.timeout = timeout
        self.retry_s = retry_s
        self.shm_threshold = ipc.DEFAULT_SHM_THRESHOLD
        self.hello: dpb.HelloReply | None = None
        self.reconnects = 0
        self._sock: socket.socket | None = None
        self._rbuf = bytearray()
        self._last_id = 0
        self._lock = threading.RLock()
        self._models: list[RemoteModel] = []
        self._pool: list[_PooledMemfd] = []  # sealed memfds of finished large requests
        self._submitted: dict[int, _Submitted] = {}  # by request id, until answered
        self._answered: list[Collected] = []  # answers to submits, for collect()
        with self._lock:
            self._connect(deadline=time.monotonic() + retry_s)

    # ------------------------------------------------------------- connection
    def _open(self, trusted: set[int]) -> socket.socket:
        """A connected socket: Unix, in a directory no one else could have planted; or
        TLS, to a server whose certificate the CA signed for that host."""
        if not isinstance(self.path, str):
            if not self.path.parent.is_dir():  # no daemon ever ran here: say how to start one
                raise FileNotFoundError(errno.ENOENT, "no such socket directory")
            ipc.check_socket_dir(self.path.parent, trusted, private=False)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(str(self.path))
            except BaseException:
                sock.close()
                raise
            return sock
        assert self._tls is not None and self.remote is not None
        host, port = self.remote
        raw = socket.create_connection((host, port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answers wait for no ACK
        try:
            return self._tls.wrap_socket(raw, server_hostname=host)
        except ssl.SSLError as exc:
            raw.close()
            raise DaemonError(
                f"TLS handshake with {self.path} failed: {exc.reason or exc}",
                dpb.PERMISSION_DENIED,
            ) from None

    def _connect(self, deadline: float) -> None:
        trusted = ipc.trusted_server_uids()
        delay = 0.02
        while True:
            try:
                sock = self._open(trusted)
                break
            except DaemonError:
                raise
            except OSError as exc:  # _open closed what it opened
                if time.monotonic() + delay > deadline:
                    raise DaemonError(
                        f"cannot reach akidad at {self.path}: {exc.strerror or exc}; start it with "
                        "`akidad --user` or `systemctl start akidad.socket`",
                        dpb.NO_DEVICE,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        uid = ipc.peer_uid(sock)[1] if self.remote is None else 0  # TLS checked the server
        if uid not in trusted:
            sock.close()
            raise DaemonError(
                f"the process serving {self.path} runs as uid {uid}, not as root, this user or "
                f"the system service's user ({ipc.SYSTEM_USER}); nothing was sent to it",
                dpb.PERMISSION_DENIED,
            )
        self._sock, self._rbuf = sock, bytearray()
        hello = _request("hello", client_name=self.name, priority=self.priority,
                         protocol=ipc.PROTOCOL)  # fmt: skip
        try:
            self.hello = self._roundtrip(hello).hello
            if self.hello.protocol != ipc.PROTOCOL:
                raise DaemonError(
                    f"akidad at {self.path} speaks protocol {self.hello.protocol}, this client "
                    f"protocol {ipc.PROTOCOL}",
                    dpb.PROTOCOL_MISMATCH,
                )
        except (ssl.SSLError, ConnectionError) as exc:
            self._drop()
            if self.remote is None:
                raise
            raise DaemonError(  # TLS 1.3 servers check client certificates after the handshake
                f"akidad at {self.path} refused this client's certificate: "
                f"{getattr(exc, 'reason', None) or exc}",
                dpb.PERMISSION_DENIED,
            ) from None
        except BaseException:
            self._drop()  # refused or broken: hang up now, not when collected
            raise
        self.shm_threshold = self.hello.shm_threshold or self.shm_threshold
        if self.remote is not None:
            self.shm_threshold = 1 << 62  # no memfd crosses hosts
        for model in self._models:  # the daemon restarted: sessions are gone, reload
            model._update(self._roundtrip(model._load).loaded)

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        """Hang up; the daemon releases this client's sessions."""
        with self._lock:
            self._drop()
            self._models.clear()
            for entry in self._submitted.values():
                entry.release()
            while self._pool:
                self._pool.pop().release()
            self._submitted.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- framing
    def _next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionError("not connected")
        return self._sock

    def _recv(self, timeout: float) -> Answer:
        """The next answer: a protobuf Response, or a result tensor frame."""
        sock = self._socket()
        while (payload := ipc.take_frame(self._rbuf, 1 << 40)) is None:
            if sock.gettimeout() != timeout:
                sock.settimeout(timeout)
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                self._drop()
                raise DaemonError(
                    f"akidad did not answer within {timeout:g} s", dpb.DEADLINE_EXCEEDED
                ) from None
            if not chunk:
                raise ConnectionResetError("akidad closed the connection")
            self._rbuf += chunk
        return (
            tf.decode_result(payload)
            if tf.is_tensor_frame(payload)
            else ipc.decode_response(payload)
        )

    def _roundtrip(self, req: dpb.Request, timeout: float | None = None) -> dpb.Response:
        req.id = self._next_id()
        ipc.send_frame(self._socket(), ipc.encode_frame(req))
        while True:
            resp = self._recv((timeout or self.timeout) + 5.0)
            if isinstance(resp, dpb.Response) and resp.id in (req.id, 0):
                _raise_error(resp)
                return resp
            self._keep(resp)

    def _call(self, req: dpb.Request, timeout: float | None = None) -> dpb.Response:
        """One control request, reconnecting and retrying when the daemon went away."""
        return self._reconnecting(lambda: self._roundtrip(req, timeout))

    def _reconnecting(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` on a connected socket, reconnecting and retrying until retry_s:
        the one retry policy of every request."""
        with self._lock:
            deadline = time.monotonic() + self.retry_s
            while True:
                try:
                    if self._sock is None:
                        self._connect(deadline)
                    return attempt()
                except (ConnectionError, BrokenPipeError) as exc:
                    self._retry_or_raise(deadline, exc)
                except RemoteError as exc:
                    if exc.status not in RETRYABLE:
                        raise
                    self._retry_or_raise(deadline, exc)

    def _retry_or_raise(self, deadline: float, exc: Exception) -> None:
        self._drop()
        if time.monotonic() >= deadline:
            raise DaemonError(f"lost akidad at {self.path}: {exc}", dpb.DEVICE_FAILED) from None
        self.reconnects += 1
        time.sleep(0.05)

    # ------------------------------------------------------------------- API
    def devices(self) -> list[dict[str, Any]]:
        """Devices the daemon serves (simulated ones say so)."""
        devices = self._call(_request("list_devices")).devices.devices
        return [json.loads(d.describe_json) for d in devices]

    def stats(self) -> dict[str, Any]:
        """Per-device and per-client counters (what `akida stats --json` prints)."""
        result: dict[str, Any] = json.loads(self._call(_request("stats")).stats.json)
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
        req = _request("load", program=program, device=device, map_mode=map_mode,
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
            self._call(_request("unload", session=old))

    def _unload(self, model: RemoteModel) -> None:
        with self._lock:
            self._call(_request("unload", session=model.session))
            self._models.remove(model)

    def put_state(self, key: str, data: bytes) -> None:
        """Store a blob durably in the daemon's state directory, under this user."""
        self._call(_request("put_state", key=key, data=data))

    def get_state(self, key: str, owner_uid: int | None = None) -> bytes:
        """A blob of this user's (or, for root, of `owner_uid`'s)."""
        owner = {} if owner_uid is None else {"owner_uid": owner_uid, "has_owner": True}
        return bytes(self._call(_request("get_state", key=key, **owner)).state.data)

    def delete_state(self, key: str) -> None:
        """Remove a blob of this user from the daemon's state directory."""
        self._call(_request("delete_state", key=key))

    # ------------------------------------------------------------ learning
    def _learn(
        self, model: RemoteModel, x: np.ndarray, labels: Any, timeout: float | None
    ) -> np.ndarray:
        x = np.ascontiguousarray(x)
        if x.dtype != np.uint8 or x.ndim != 4:
            raise DaemonError(f"fit: inputs must be uint8 NHWC frames, got {x.dtype} {x.shape}")
        lab = [] if labels is None else np.atleast_1d(np.asarray(labels)).tolist()
        update_id = int.from_bytes(os.urandom(8), "little") or 1

        def request() -> dpb.Request:  # the session changes if akidad restarts
            return _request("learn", session=model.session, inputs=x.tobytes(), shape=x.shape,
                            labels=lab, timeout_ms=int((timeout or 0) * 1000),
                            update_id=update_id)  # fmt: skip

        resp = self._reconnecting(lambda: self._roundtrip(request(), timeout)).learned
        shape = tuple(resp.potentials_shape)
        return np.frombuffer(resp.potentials, "<i4").reshape(shape).copy()

    def _learn_state(
        self, model: RemoteModel, op: str, data: bytes
    ) -> tuple[dict[str, Any], bytes]:
        ops = {"info": 0, "export": 1, "import": 2, "reset": 3}
        if op not in ops:
            raise DaemonError(f"learned_state: op {op!r}, use one of {sorted(ops)}")
        resp = self._reconnecting(
            lambda: self._roundtrip(
                _request("learn_state", session=model.session, op=ops[op], data=data)
            )
        ).learn_state
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

    def _memfd(self, size: int) -> _PooledMemfd:
        """A sealed memfd of at least `size` bytes, mapped: one a finished request gave
        back, or a new one."""
        for i, shm in enumerate(self._pool):
            if len(shm) >= size:
                return self._pool.pop(i)
        fd = ipc.sealed_memfd(size)
        try:
            shm = _PooledMemfd(fd, size)
        except BaseException:
            os.close(fd)
            raise
        shm.fd, shm.pool = fd, self._pool
        return shm

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
            if wait is not None and not (_has_frame(self._rbuf) or pending):
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    return
            self._keep(self._recv(limit))  # blocks until an answer, or raises at `limit`
            while _has_frame(self._rbuf):
                self._keep(self._recv(limit))
        if not self._all_sent():
            # refused by a daemon that is going away: reconnect, then send them again
            raise RemoteError(dpb.SHUTTING_DOWN, "akidad is shutting down")

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
            if exc.status in RETRYABLE:
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
                _raise_error(resp)
                raise DaemonError(f"akidad answered an inference with {resp.WhichOneof('body')}")
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


class _PooledMemfd(mmap.mmap):
    """A request's sealed memfd, mapped; `close()` gives it back to its client's pool for
    the next request (creating, sealing and mapping one per request cost more than
    copying a 224x224x3 frame through the socket), `release()` frees it."""

    fd: int
    pool: list[_PooledMemfd]

    def close(self) -> None:
        if not self.closed and len(self.pool) < MEMFD_POOL and self not in self.pool:
            self.pool.append(self)
        else:
            self.release()

    def release(self) -> None:
        if not self.closed:
            super().close()
            os.close(self.fd)


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


def _has_frame(buffer: bytearray) -> bool:
    """Whether `buffer` holds a whole frame."""
    return len(buffer) >= 4 and len(buffer) >= 4 + int.from_bytes(buffer[:4], "little")


def _request(kind: str, **fields: Any) -> dpb.Request:
    """A control request whose body `kind` (a `Request` field) has `fields` set."""
    req = dpb.Request()
    body = getattr(req, kind)
    body.SetInParent()
    for name, value in fields.items():
        if isinstance(value, list | tuple):
            getattr(body, name).extend(value)
        else:
            setattr(body, name, value)
    return req


def _raise_error(resp: dpb.Response) -> None:
    if resp.WhichOneof("body") == "error":
        raise RemoteError(resp.error.status, resp.error.message)
