"""The connection of the akidad client: trust checks of the socket and its server, TLS,
framing, the one retry policy, and the pool of sealed memfds for large tensors.

akida_rt.client.client builds its requests (inference, pipelining, learning) on it.
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from akida_rt.errors import DaemonError, ErrorKind, RemoteError
from akida_rt.wire import ipc, tls
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import remote_error

T = TypeVar("T")

RETRYABLE = {ErrorKind.SHUTTING_DOWN}  # answers worth another try on a fresh connection
MEMFD_POOL = 4  # sealed memfds a client keeps for its next large requests
Answer = dpb.Response | tf.ResultFrame | tf.LearnedFrame


class Connection:
    """A connection to akidad (the base of `Client`).

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
        self._pool: list[PooledMemfd] = []  # sealed memfds of finished large requests
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
                ErrorKind.PERMISSION_DENIED,
            ) from None

    def _connect(self, deadline: float) -> None:
        """Connect (retrying until `deadline`), check who serves the socket, say hello."""
        trusted = ipc.trusted_server_uids()
        sock = self._dial(trusted, deadline)
        uid = ipc.peer_uid(sock)[1] if self.remote is None else 0  # TLS checked the server
        if uid not in trusted:
            sock.close()
            raise DaemonError(
                f"the process serving {self.path} runs as uid {uid}, not as root, this user or "
                f"the system service's user ({ipc.SYSTEM_USER}); nothing was sent to it",
                ErrorKind.PERMISSION_DENIED,
            )
        self._sock, self._rbuf = sock, bytearray()
        self._greet()
        self._reconnected()

    def _dial(self, trusted: set[int], deadline: float) -> socket.socket:
        """A connected socket, retrying with backoff while nothing answers, until `deadline`."""
        delay = 0.02
        while True:
            try:
                return self._open(trusted)
            except DaemonError:
                raise
            except OSError as exc:  # _open closed what it opened
                if time.monotonic() + delay > deadline:
                    raise DaemonError(
                        f"cannot reach akidad at {self.path}: {exc.strerror or exc}; start it with "
                        "`akidad --user` or `systemctl start akidad.socket`",
                        ErrorKind.NO_DEVICE,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _greet(self) -> None:
        """The hello: same protocol, and this client's certificate accepted over TLS."""
        hello = request("hello", client_name=self.name, priority=self.priority,
                         protocol=ipc.PROTOCOL)  # fmt: skip
        try:
            self.hello = self._roundtrip(hello).hello
            if self.hello.protocol != ipc.PROTOCOL:
                raise DaemonError(
                    f"akidad at {self.path} speaks protocol {self.hello.protocol}, this client "
                    f"protocol {ipc.PROTOCOL}",
                    ErrorKind.PROTOCOL_MISMATCH,
                )
        except (ssl.SSLError, ConnectionError) as exc:
            self._drop()
            if self.remote is None:
                raise
            raise DaemonError(  # TLS 1.3 servers check client certificates after the handshake
                f"akidad at {self.path} refused this client's certificate: "
                f"{getattr(exc, 'reason', None) or exc}",
                ErrorKind.PERMISSION_DENIED,
            ) from None
        except BaseException:
            self._drop()  # refused or broken: hang up now, not when collected
            raise
        self.shm_threshold = self.hello.shm_threshold or self.shm_threshold
        if self.remote is not None:
            self.shm_threshold = 1 << 62  # no memfd crosses hosts

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        """Hang up; the daemon releases this client's sessions."""
        with self._lock:
            self._drop()
            self._closed()
            while self._pool:
                self._pool.pop().release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ hooks
    def _reconnected(self) -> None:
        """Connected again after the daemon went away (its sessions are gone)."""

    def _closed(self) -> None:
        """The connection was closed by `close()`."""

    def _keep(self, resp: Answer) -> None:
        """An answer that is not the one a round trip waits for (pipelined requests)."""

    # ---------------------------------------------------------------- framing
    def _next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionError("not connected")
        return self._sock

    def _recv(self, timeout: float) -> Answer:
        """The next answer: a protobuf Response, or a tensor frame (result, learned)."""
        sock = self._socket()
        while (payload := ipc.take_frame(self._rbuf, 1 << 40)) is None:
            if sock.gettimeout() != timeout:
                sock.settimeout(timeout)
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                self._drop()
                raise DaemonError(
                    f"akidad did not answer within {timeout:g} s", ErrorKind.DEADLINE_EXCEEDED
                ) from None
            if not chunk:
                raise ConnectionResetError("akidad closed the connection")
            self._rbuf += chunk
        return (
            tf.decode_answer(payload)
            if tf.is_tensor_frame(payload)
            else ipc.decode_response(payload)
        )

    def _roundtrip(self, req: dpb.Request, timeout: float | None = None) -> dpb.Response:
        """Send control request `req` and wait for its answer."""

        def frame(req_id: int) -> bytes:
            req.id = req_id
            return ipc.encode_frame(req)

        resp = self._exchange(frame, timeout)
        if not isinstance(resp, dpb.Response):
            raise DaemonError(f"akidad answered a control request with a {type(resp).__name__}")
        return resp

    def _exchange(
        self, frame: Callable[[int], bytes], timeout: float | None = None
    ) -> dpb.Response | tf.LearnedFrame:
        """Send the framed request `frame(id)` and wait for its answer, a protobuf
        Response or a learn answer (answers to pipelined requests met meanwhile are kept;
        an error answer is raised)."""
        req_id = self._next_id()
        ipc.send_frame(self._socket(), frame(req_id))
        while True:
            resp = self._recv((timeout or self.timeout) + 5.0)
            if isinstance(resp, dpb.Response) and resp.id in (req_id, 0):
                raise_error(resp)
                return resp
            if isinstance(resp, tf.LearnedFrame) and resp.id == req_id:
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
                    if exc.kind not in RETRYABLE:
                        raise
                    self._retry_or_raise(deadline, exc)

    def _retry_or_raise(self, deadline: float, exc: Exception) -> None:
        self._drop()
        if time.monotonic() >= deadline:
            raise DaemonError(
                f"lost akidad at {self.path}: {exc}", ErrorKind.DEVICE_FAILED
            ) from None
        self.reconnects += 1
        time.sleep(0.05)

    def _memfd(self, size: int) -> PooledMemfd:
        """A sealed memfd of at least `size` bytes, mapped: one a finished request gave
        back, or a new one."""
        for i, shm in enumerate(self._pool):
            if len(shm) >= size:
                return self._pool.pop(i)
        fd = ipc.sealed_memfd(size)
        try:
            shm = PooledMemfd(fd, size)
        except BaseException:
            os.close(fd)
            raise
        shm.fd, shm.pool = fd, self._pool
        return shm


class PooledMemfd(mmap.mmap):
    """A request's sealed memfd, mapped; `close()` gives it back to its client's pool for
    the next request (creating, sealing and mapping one per request cost more than
    copying a 224x224x3 frame through the socket), `release()` frees it."""

    fd: int
    pool: list[PooledMemfd]

    def close(self) -> None:
        if not self.closed and len(self.pool) < MEMFD_POOL and self not in self.pool:
            self.pool.append(self)
        else:
            self.release()

    def release(self) -> None:
        if not self.closed:
            super().close()
            os.close(self.fd)


def has_frame(buffer: bytearray) -> bool:
    """Whether `buffer` holds a whole frame."""
    return len(buffer) >= 4 and len(buffer) >= 4 + int.from_bytes(buffer[:4], "little")


def request(kind: str, **fields: Any) -> dpb.Request:
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


def raise_error(resp: dpb.Response) -> None:
    if resp.WhichOneof("body") == "error":
        raise remote_error(resp.error.status, resp.error.message)
