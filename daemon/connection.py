"""One client connection of akidad: reads frames and the sealed memfds sent with them,
serves them through the controller and writes the answers, every buffer bounded."""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from akida_rt.errors import AkidaError, FrameError
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import status_of

from . import control_requests
from .budgets import Kind
from .controller import Client, Controller
from .tensor_requests import TensorRequests, request_id

log = logging.getLogger(__name__)
RECV_BYTES = 1 << 18
MAX_PENDING_FDS = 8  # descriptors received whose frames have not arrived whole yet
MAX_TASKS = 4  # control requests of one connection running at once (load, state, stats)
ANCILLARY_SPACE = socket.CMSG_SPACE(4 * MAX_PENDING_FDS)


class Server(Protocol):
    """What a connection uses of its server (daemon/server.py)."""

    controller: Controller
    loop: asyncio.AbstractEventLoop
    loop_thread: int

    def make_room(self, conn: Connection, n: int) -> bool: ...

    def trim_writes(self) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class Connection(TensorRequests):
    """One client socket, driven by the event loop's reader and writer callbacks: a Unix
    socket (frames and memfds), or a TLS one (frames only; memfds cannot cross hosts)."""

    def __init__(self, server: Server, sock: socket.socket, client: Client) -> None:
        self.server = server
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.ctl = server.controller
        self.config = server.controller.config
        self.sock = sock
        self.fd = sock.fileno()
        self.client = client
        self.uid = client.uid
        self.budgets = server.controller.budgets
        self.loop = server.loop
        self.rbuf = bytearray()
        self.last_read = time.monotonic()
        self.offset = 0  # where in the byte stream rbuf starts
        self.wbuf = bytearray()
        # Descriptors with the stream offset of the last byte of the recvmsg they came
        # with: the kernel ends that read with the segment that carried them, so they
        # belong to the frame holding that byte (each request is sent with one sendmsg).
        self.fds: deque[tuple[int, int]] = deque()
        self.maps: dict[mmap.mmap, int] = {}  # memfds of unanswered requests: their size
        self.tasks: set[asyncio.Task[None]] = set()
        self.lock = threading.Lock()  # the socket, wbuf and maps: workers answer too
        self.closed = False
        self.closing = False  # answer what is buffered, then hang up
        self.reading = False
        self.resume_reading()

    # ---------------------------------------------------------------- reading
    def resume_reading(self) -> None:
        if not self.reading and not self.closing and not self.closed:
            self.reading = True
            self.loop.add_reader(self.fd, self.on_readable)
            self.drain_tls()

    def drain_tls(self) -> None:
        """Read again soon if OpenSSL holds decrypted bytes: the selector cannot see them,
        and the rest of a frame may be there."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and self.reading and not self.closed and sock.pending():
            self.loop.call_soon(self.read_pending)

    def read_pending(self) -> None:
        if self.reading and not self.closed:
            self.on_readable()

    def pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)

    def receive(self) -> tuple[bytes, list[tuple[int, int, bytes]], int]:
        """(data, ancillary data, flags) of one read; under the lock, because a worker may
        be writing an answer: an SSL connection must not be used by two threads at once."""
        with self.lock:
            if not self.tls:
                data, anc, flags, _ = self.sock.recvmsg(RECV_BYTES, ANCILLARY_SPACE)
                return data, anc, flags
            # Every record that has arrived: the selector cannot see what SSL buffers.
            parts: list[bytes] = []
            size = 0
            while size < RECV_BYTES:
                try:
                    part = self.sock.recv(RECV_BYTES - size)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    if not parts:
                        raise BlockingIOError from None
                    break
                parts.append(part)
                if not part:  # end of stream
                    break
                size += len(part)
            return b"".join(parts), [], 0

    def on_readable(self) -> None:
        try:
            data, anc, flags = self.receive()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("client %d read error: %s", self.client.client_id, exc)
            self.close()
            return
        if anc:
            tag = self.offset + len(self.rbuf) + len(data) - 1
            self.fds.extend((tag, fd) for fd in ipc.fds_from_ancillary(anc))
        if flags & socket.MSG_CTRUNC or len(self.fds) > MAX_PENDING_FDS:
            self.fail(f"more than {MAX_PENDING_FDS} descriptors sent ahead of their frames")
            return
        if not data:
            self.close()
            return
        self.last_read = time.monotonic()
        if not self.server.make_room(self, len(data)):
            return
        self.rbuf += data
        self.budgets.add(Kind.READ, self.uid, len(data))
        self.process()
        self.drain_tls()

    def process(self) -> None:
        """Serve the complete frames in the read buffer while this client may add work:
        its unsent answers are under max_write_buffer and few control requests run."""
        try:
            while not self.closed and not self.closing:
                if len(self.wbuf) > self.config.max_write_buffer or len(self.tasks) >= MAX_TASKS:
                    self.pause_reading()  # resumed when the answers drain or a task ends
                    break
                payload = ipc.take_frame(self.rbuf, self.config.max_frame)
                if payload is None:
                    self.resume_reading()
                    break
                self.offset += ipc.LENGTH.size + len(payload)
                self.budgets.sub(Kind.READ, self.uid, ipc.LENGTH.size + len(payload))
                fds = []
                while self.fds and self.fds[0][0] < self.offset:
                    fds.append(self.fds.popleft()[1])
                try:
                    self.handle(payload, fds)
                finally:
                    for fd in fds:
                        os.close(fd)
        except FrameError as exc:
            self.fail(str(exc))

    def handle(self, payload: bytes, fds: list[int]) -> None:
        """Serve one frame; `fds` came with it (the caller closes them)."""
        req_id = 0
        try:
            if tf.is_learn_frame(payload):
                req_id = request_id(payload)
                self.on_learn(payload, fds)
                return
            if tf.is_tensor_frame(payload):
                req_id = request_id(payload)
                self.on_infer(payload, fds)
                return
            req = ipc.decode_request(payload)
            req_id = req.id
            self.spawn(req.id, control_requests.serve(self.ctl, self.client, req))
        except Exception as exc:
            self.refuse(getattr(exc, "req_id", req_id), exc)

    def refuse(self, req_id: int, exc: BaseException) -> None:
        """Answer a request that failed, whatever failed."""
        status = status_of(exc)
        if status == dpb.INTERNAL:
            log.error("request %d of client %d failed", req_id, self.client.client_id,
                      exc_info=exc)  # fmt: skip
        message = str(exc) if isinstance(exc, AkidaError) else f"{type(exc).__name__}: {exc}"
        self.send(ipc.error_response(req_id, status, message))

    def fail(self, why: str) -> None:
        """Framing is lost or a bound is broken: say why, then hang up."""
        log.warning("client %d: %s; closing its connection", self.client.client_id, why)
        self.send(ipc.error_response(0, dpb.BAD_FRAME, why))
        self.closing = True
        self.pause_reading()
        self.budgets.sub(Kind.READ, self.uid, len(self.rbuf))  # never read again
        self.rbuf = bytearray()
        if not self.wbuf:
            self.close()

    def drop(self, why: str) -> None:
        """A client whose unsent answers broke a budget: hang up without a word (its
        buffer is full already)."""
        log.warning("client %d (uid %d): %s; closing its connection",
                    self.client.client_id, self.uid, why)  # fmt: skip
        self.close()

    def drop_fds(self) -> None:
        while self.fds:
            os.close(self.fds.popleft()[1])

    # --------------------------------------------------------------- control
    def spawn(self, req_id: int, work: Coroutine[Any, Any, dpb.Response | bytes]) -> None:
        """Run a control request that waits (threads, devices); it is answered whatever
        happens (a protobuf Response, or a framed tensor frame), and cancelled if the
        connection closes first."""

        async def run() -> None:
            try:
                answer = await work
                self.write(answer) if isinstance(answer, bytes) else self.send(answer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.refuse(req_id, exc)

        task = self.loop.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.task_done)

    def task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.closed and not self.reading and not self.closing:
            self.process()

    # ---------------------------------------------------------------- writing
    def send(self, message: dpb.Response) -> None:
        self.write(ipc.encode_frame(message))

    def write(self, data: bytes) -> None:
        """Send a whole frame, buffering what the socket does not take now (any thread:
        workers send their answers themselves)."""
        with self.lock:
            if self.closed:
                return
            if self.wbuf:
                self.wbuf += data
                self.budgets.add(Kind.WRITE, self.uid, len(data))
                sent = len(data)  # already waiting for the socket
            else:
                try:
                    sent = self.sock.send(data)
                except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                    sent = 0
                except OSError:
                    sent = -1
                if sent >= 0 and sent < len(data):
                    self.wbuf += data[sent:]
                    self.budgets.add(Kind.WRITE, self.uid, len(data) - sent)
        if self.wbuf and self.budgets.over(Kind.WRITE, self.uid):
            self.in_loop(self.server.trim_writes)
        if sent < 0:
            self.in_loop(self.close)
        elif sent < len(data):
            self.in_loop(self.want_writable)

    def in_loop(self, fn: Callable[[], None]) -> None:
        if threading.get_ident() == self.server.loop_thread:
            fn()
        else:
            self.loop.call_soon_threadsafe(fn)

    def want_writable(self) -> None:
        if not self.closed and self.wbuf:
            self.loop.add_writer(self.fd, self.on_writable)

    def on_writable(self) -> None:
        with self.lock:
            try:
                sent = self.sock.send(self.wbuf)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                return
            except OSError:
                sent = -1
            else:
                del self.wbuf[:sent]
                self.budgets.sub(Kind.WRITE, self.uid, sent)
            if self.wbuf and sent >= 0:
                return
        self.loop.remove_writer(self.fd)
        if sent < 0 or self.closing:
            self.close()
        elif not self.reading:
            self.process()

    def close(self) -> None:
        """Hang up and free at once everything the connection held."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for shm in self.maps:
                shm.close()
            self.budgets.sub(Kind.MEMFD, self.uid, sum(self.maps.values()))
            self.maps.clear()
            self.budgets.sub(Kind.WRITE, self.uid, len(self.wbuf))
            self.wbuf = bytearray()
        self.pause_reading()
        self.loop.remove_writer(self.fd)
        self.sock.close()
        self.drop_fds()
        for task in self.tasks:
            task.cancel()
        self.budgets.sub(Kind.READ, self.uid, len(self.rbuf))
        self.rbuf = bytearray()
        self.server.forget(self)
        self.ctl.disconnect(self.client)
