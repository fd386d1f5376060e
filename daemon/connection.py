"""The Unix-socket server: accepts connections within the connection limits, reads
frames (and the sealed memfds that come with them), calls the controller and writes the
answers, with every per-connection buffer bounded (docs/daemon.md, "Limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import mmap
import os
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from akida_rt.errors import AkidaError, DaemonError, ErrorKind, FrameError
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import status_of

from .budgets import Kind
from .controller import Client, Controller
from .jobs import Job, Result
from .tenant_sockets import tenant_uid
from .tls_handshakes import Handshakes

log = logging.getLogger(__name__)
RECV_BYTES = 1 << 18
MAX_PENDING_FDS = 8  # descriptors received whose frames have not arrived whole yet
MAX_TASKS = 4  # control requests of one connection running at once (load, state, stats)
ANCILLARY_SPACE = socket.CMSG_SPACE(4 * MAX_PENDING_FDS)
ACCEPT_BACKOFF_S = 0.1
LINGER_S = 1.0  # a turned-away client has this long to read why
SWEEP_S = 1.0  # how often idle partial frames are looked for


class Connection:
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
                req_id = _id_of(payload)
                self.on_learn(payload, fds)
                return
            if tf.is_tensor_frame(payload):
                req_id = _id_of(payload)
                self.on_infer(payload, fds)
                return
            req = ipc.decode_request(payload)
            req_id = req.id
            self.spawn(req.id, self.control(req))
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

    # ------------------------------------------------------------- inference
    def on_infer(self, payload: bytes, fds: list[int]) -> None:
        if len(fds) != tf.uses_shm(payload):
            raise DaemonError(f"an infer frame takes {int(tf.uses_shm(payload))} descriptors "
                              f"(IN_SHM or OUTPUT_TO_SHM), {len(fds)} came with it")  # fmt: skip
        limit = self.config.max_tensor_bytes
        f = tf.decode_infer(payload, limit)
        x, shm = f.x, None
        if fds:  # the tensor, or room for its answer, is in the memfd
            need = ipc.shape_nbytes(f.shape, f.dtype, limit) if f.in_shm else 0
            if why := self.budgets.over(Kind.QUEUED, self.uid, need):  # before the copy
                raise DaemonError(f"{why}; read answers before sending more",
                                  ErrorKind.TOO_MANY_REQUESTS)  # fmt: skip
            shm = self.map(fds[0], need, limit)
        try:
            if shm is not None and f.in_shm:
                x = np.frombuffer(shm, f.dtype, need // f.dtype.itemsize).reshape(f.shape).copy()
            assert x is not None  # inline, or read from the memfd just now
            if shm is not None and not f.output_to_shm:  # the answer goes inline
                self.unmap(shm)
                shm = None
            out = shm
            self.ctl.infer(self.client, f.session, x, f.predict, f.timeout_ms,
                           lambda result, job: self.answer(f.id, out, result, job))  # fmt: skip
        except BaseException:
            if shm is not None:
                self.unmap(shm)
            raise

    def map(self, fd: int, need: int, limit: int) -> mmap.mmap:
        """Map a request's sealed memfd within the uid's memfd budget."""
        size = os.fstat(fd).st_size  # one over the limit: map_sealed says so, unmapped
        if size <= limit and (why := self.budgets.over(Kind.MEMFD, self.uid, size)):
            raise DaemonError(f"{why}; read answers before sending more",
                              ErrorKind.TOO_MANY_REQUESTS)  # fmt: skip
        shm = ipc.map_sealed(fd, need, limit)
        with self.lock:
            self.maps[shm] = len(shm)
        self.budgets.add(Kind.MEMFD, self.uid, len(shm))
        return shm

    def unmap(self, shm: mmap.mmap) -> None:
        """Unmap a request's memfd and give back its budget (any thread)."""
        with self.lock:
            size = self.maps.pop(shm, None)
            shm.close()
        if size is not None:
            self.budgets.sub(Kind.MEMFD, self.uid, size)

    def on_learn(self, payload: bytes, fds: list[int]) -> None:
        """A learn frame: fit its samples on the session's device (a control request that
        waits), answered with a learned tensor frame."""
        if fds:
            raise DaemonError(f"a learn frame takes no descriptors, {len(fds)} came with it")
        f = tf.decode_learn(payload, self.config.max_tensor_bytes)

        async def learn() -> bytes:
            pots, state = await self.ctl.learned.fit(
                self.client, f.session, f.x, f.labels, f.timeout_ms, f.update_id
            )
            return tf.encode_learned(f.id, pots, _json(state))

        self.spawn(f.id, learn())

    def answer(self, req_id: int, shm: mmap.mmap | None, result: Result, job: Job) -> None:
        """Answer an inference (from the device's worker, or the loop at its deadline)."""
        in_shm = False
        if shm is not None:
            with self.lock:  # close() may unmap it meanwhile
                if not self.closed and isinstance(result, np.ndarray) and len(shm) >= result.nbytes:
                    np.frombuffer(shm, result.dtype, result.size)[:] = result.reshape(-1)
                    in_shm = True
            self.unmap(shm)
        if isinstance(result, AkidaError):
            self.refuse(req_id, result)
        else:
            self.write(tf.encode_result(req_id, result, job.device, job.batch_frames,
                                        job.queue_s, job.run_s, in_shm=in_shm))  # fmt: skip

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

    async def control(self, req: dpb.Request) -> dpb.Response:
        """Serve a control request (a task of its own: loads, state and stats wait)."""
        ctl, client, cfg = self.ctl, self.client, self.config
        resp = dpb.Response(id=req.id)
        kind = req.WhichOneof("body")
        if kind == "hello":
            hi = req.hello
            info = ctl.hello(client, hi.client_name, hi.priority, hi.protocol)
            h = resp.hello
            h.protocol, h.version, h.pid = ipc.PROTOCOL, info["version"], info["pid"]
            h.client_id, h.uid = info["client_id"], client.uid
            h.shm_threshold, h.max_frame = cfg.shm_threshold, cfg.max_frame
            h.max_tensor_bytes, h.max_timeout_ms = cfg.max_tensor_bytes, cfg.max_timeout_ms
        elif kind == "list_devices":
            for d in ctl.list_devices():
                resp.devices.devices.add(
                    id=d["id"], name=d["name"], simulated=d["simulated"], kind=d["kind"],
                    state=d["state"], queued=d["queued"], describe_json=_json(d),
                )  # fmt: skip
        elif kind == "load":
            m = req.load
            s = await ctl.load(client, m.program, m.device, m.map_mode, m.hw_only)
            lo = resp.loaded
            lo.session, lo.program_hash, lo.name = s.session_id, s.key.content_hash, s.name
            lo.input_shape[:], lo.output_shape[:] = s.input_shape, s.output_shape
            lo.sequences, lo.input_bits = s.sequences, s.input_bits
        elif kind == "stats":
            resp.stats.json = _json(await ctl.stats(client))
        elif kind == "learn_state":
            ls = req.learn_state
            state, data = await ctl.learned.state(
                client, ls.session, ls.op, ls.data, ls.num_classes
            )
            resp.learn_state.state_json, resp.learn_state.data = _json(state), data
        elif kind == "get_state":
            g = req.get_state
            resp.state.data = ctl.get_state(client, g.key, g.owner_uid if g.has_owner else None)
        else:
            if kind == "unload":
                ctl.unload(client, req.unload.session)
            elif kind == "put_state":
                await ctl.put_state(client, req.put_state.key, req.put_state.data)
            elif kind == "delete_state":
                await ctl.delete_state(client, req.delete_state.key)
            resp.ack.SetInParent()
        return resp

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


class Server:
    """Accepts connections on the listening sockets (the Unix one; with `tls`, a TCP one
    whose clients must complete a mutual TLS handshake), within the connection limits."""

    def __init__(
        self,
        controller: Controller,
        listener: socket.socket,
        tls: tuple[socket.socket, ssl.SSLContext] | None = None,
    ) -> None:
        self.controller = controller
        self.config = controller.config
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.per_uid: Counter[int] = Counter()
        self.loop_thread = threading.get_ident()
        self.budgets = controller.budgets
        self.starved = False  # accept ran out of descriptors
        self.handshakes = Handshakes(self)  # TLS handshakes in progress
        self.leaving: set[socket.socket] = set()  # turned away, closed after LINGER_S
        self.listeners = [(listener, None), *([tls] if tls else [])]
        for sock, ctx in self.listeners:
            sock.setblocking(False)
            self.loop.add_reader(sock.fileno(), self.on_accept, sock, ctx)
        # Tenant sockets (tenant_sockets.py): their clients are the folder's tenant.
        self.tenants: dict[socket.socket, Path] = {}
        self.sweeper = self.loop.call_later(SWEEP_S, self.sweep)

    # ------------------------------------------------------------- budgets
    def make_room(self, conn: Connection, n: int) -> bool:
        """Whether `conn` may buffer `n` more bytes of partial frames. Past its uid's budget
        it is closed; past the total, the uid holding the most gives up its largest partial
        frame (so the sender, unless it is that uid, is served)."""
        while why := self.budgets.over(Kind.READ, conn.uid, n):
            hog = self.budgets.biggest_uid(Kind.READ)
            per_uid, _ = self.budgets.limits(Kind.READ)
            mine = self.budgets.used(Kind.READ, conn.uid) + n > per_uid
            victim = None if mine or hog == conn.uid else self._largest(hog, "rbuf")
            if victim is None:
                conn.fail(f"akidad's read buffers are full: {why}; finish or drop your "
                          "partial frames")  # fmt: skip
                return False
            victim.fail(f"akidad's read buffers are full and uid {hog} holds the most; "
                        f"dropping its largest partial frame ({len(victim.rbuf)} bytes)")  # fmt: skip
        return True

    def trim_writes(self) -> None:
        """Close the connections whose unsent answers break a write budget: the largest
        of a uid past its own, then the largest of the uid holding the most."""
        for conn in list(self.connections):
            while not conn.closed and (why := self.budgets.over(Kind.WRITE, conn.uid)):
                per_uid, _ = self.budgets.limits(Kind.WRITE)
                uid = conn.uid
                if self.budgets.used(Kind.WRITE, uid) <= per_uid:
                    uid = self.budgets.biggest_uid(Kind.WRITE) or uid
                victim = self._largest(uid, "wbuf")
                if victim is None:
                    break
                victim.drop(f"{why}; it does not read its answers")

    def _largest(self, uid: int | None, buffer: str) -> Connection | None:
        """The open connection of `uid` with the most bytes in `buffer` (rbuf or wbuf)."""
        mine = [c for c in self.connections if c.uid == uid and not c.closed]
        best = max(mine, key=lambda c: len(getattr(c, buffer)), default=None)
        return best if best is not None and getattr(best, buffer) else None

    def sweep(self) -> None:
        """Close connections whose partial frame got no byte for partial_frame_timeout_s."""
        limit = self.config.partial_frame_timeout_s
        now = time.monotonic()
        for conn in list(self.connections):
            if conn.rbuf and conn.reading and not conn.closing and now - conn.last_read > limit:
                conn.fail(f"a partial frame of {len(conn.rbuf)} bytes got no byte for "
                          f"{limit:g} s (partial_frame_timeout_s)")  # fmt: skip
        self.sweeper = self.loop.call_later(SWEEP_S, self.sweep)

    def add_tenant_listener(self, sock: socket.socket, folder: Path) -> None:
        sock.setblocking(False)
        self.tenants[sock] = folder
        self.listeners.append((sock, None))
        self.loop.add_reader(sock.fileno(), self.on_accept, sock, None)

    def remove_tenant_listener(self, sock: socket.socket) -> None:
        self.loop.remove_reader(sock.fileno())
        self.tenants.pop(sock, None)
        self.listeners = [(s, c) for s, c in self.listeners if s is not sock]

    def on_accept(self, listener: socket.socket, ctx: ssl.SSLContext | None) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a moment instead of spinning,
                    # and say so once, not ten times a second.
                    if not self.starved:
                        log.warning("accept failed (%s); retrying every %g s",
                                    exc.strerror, ACCEPT_BACKOFF_S)  # fmt: skip
                    self.starved = True
                    self.loop.remove_reader(listener.fileno())
                    self.loop.call_later(ACCEPT_BACKOFF_S, self.resume_accepting, listener, ctx)
                else:
                    log.warning("accept failed: %s", exc)
                return
            if self.starved:
                log.info("accepting connections again")
                self.starved = False
            sock.setblocking(False)
            if listener in self.tenants:
                self.admit_tenant(sock, self.tenants[listener])
            elif ctx is None:
                self.admit(sock, *ipc.peer_uid(sock))
            elif len(self.connections) >= self.config.max_connections:
                sock.close()
            else:
                self.handshakes.start(sock, ctx)

    def admit_tenant(self, sock: socket.socket, folder: Path) -> None:
        """A client of a tenant socket is the folder's tenant, whatever its own uid."""
        uid = tenant_uid(folder)
        if uid is None:
            self.turn_away(sock, f"{folder}: no tenant assigned", dpb.PERMISSION_DENIED)
            return
        pid, peer_uid, _ = ipc.peer_uid(sock)
        log.info("tenant socket %s: pid %d (uid %d) is tenant uid %d", folder, pid, peer_uid, uid)
        self.admit(sock, pid, uid, uid)
        if self.controller.ledger is not None:
            self.controller.ledger.admitted(folder.name, uid)

    def admit(self, sock: socket.socket, pid: int, uid: int, gid: int) -> None:
        cfg = self.config
        if len(self.connections) >= cfg.max_connections:
            self.turn_away(sock, f"akidad serves {cfg.max_connections} connections already")
        elif self.per_uid[uid] >= cfg.max_connections_per_uid:
            self.turn_away(sock, f"uid {uid} has {cfg.max_connections_per_uid} connections "
                           "open already (max_connections_per_uid)")  # fmt: skip
        else:
            client = self.controller.connect(pid, uid, gid)
            log.info("client %d connected: pid %d uid %d gid %d", client.client_id, pid, uid, gid)
            self.per_uid[uid] += 1
            self.connections.add(Connection(self, sock, client))

    def turn_away(self, sock: socket.socket, why: str, status: int = dpb.QUOTA_EXCEEDED) -> None:
        """Say why, then hang up once the peer has had time to read it: closing a socket
        with the peer's request unread would reset the connection and lose the answer."""
        log.debug("refusing a connection: %s", why)
        with contextlib.suppress(OSError, ssl.SSLError):
            sock.send(ipc.encode_frame(ipc.error_response(0, status, why)))
        if len(self.leaving) >= self.config.max_connections:
            sock.close()
            return
        self.leaving.add(sock)
        self.loop.add_reader(sock.fileno(), self.drain, sock)
        self.loop.call_later(LINGER_S, self.hang_up, sock)

    def drain(self, sock: socket.socket) -> None:
        """Read and drop what a turned-away peer sends; hang up when it hangs up."""
        try:
            if sock.recv(RECV_BYTES):
                return
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            pass
        self.hang_up(sock)

    def hang_up(self, sock: socket.socket) -> None:
        if sock in self.leaving:
            self.leaving.discard(sock)
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def resume_accepting(self, listener: socket.socket, ctx: ssl.SSLContext | None) -> None:
        if listener.fileno() >= 0:
            self.loop.add_reader(listener.fileno(), self.on_accept, listener, ctx)

    def forget(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.per_uid[conn.client.uid] -= 1
            if not self.per_uid[conn.client.uid]:
                del self.per_uid[conn.client.uid]  # nothing kept per uid once it has gone

    def stop_accepting(self) -> None:
        for sock, _ in self.listeners:
            if sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
                sock.close()
        self.sweeper.cancel()
        self.handshakes.close_all()
        for sock in list(self.leaving):
            self.hang_up(sock)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def idle(self) -> bool:
        """No answer left to send, no control request running."""
        return all(not c.wbuf and not c.tasks for c in self.connections)


def _id_of(payload: bytes) -> int:
    """The request id of an infer frame whose header is whole, else 0."""
    return int(tf.INFER_HEAD.unpack_from(payload)[5]) if len(payload) >= tf.INFER_HEAD.size else 0


def _json(obj: Any) -> str:
    return json.dumps(obj, default=str)
