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
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from akida_rt.errors import AkidaError, DaemonError, FrameError
from akida_rt.wire import ipc, tls
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import status_of

from .controller import Client, Controller
from .jobs import Job, Result
from .tenant_sockets import tenant_uid

log = logging.getLogger(__name__)
RECV_BYTES = 1 << 18
MAX_PENDING_FDS = 8  # descriptors received whose frames have not arrived whole yet
MAX_TASKS = 4  # control requests of one connection running at once (load, state, stats)
ANCILLARY_SPACE = socket.CMSG_SPACE(4 * MAX_PENDING_FDS)
ACCEPT_BACKOFF_S = 0.1
HANDSHAKE_S = 10.0  # a TLS client has this long to complete its handshake
LINGER_S = 1.0  # a turned-away client has this long to read why


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
        self.loop = server.loop
        self.rbuf = bytearray()
        self.offset = 0  # where in the byte stream rbuf starts
        self.wbuf = bytearray()
        # Descriptors with the stream offset of the last byte of the recvmsg they came
        # with: the kernel ends that read with the segment that carried them, so they
        # belong to the frame holding that byte (each request is sent with one sendmsg).
        self.fds: deque[tuple[int, int]] = deque()
        self.maps: set[mmap.mmap] = set()  # memfds of unanswered requests
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
        if self.server.buffered + len(data) > self.config.max_read_buffer_total:
            self.fail("akidad's read buffers are full (max_read_buffer_total); try again later")
            return
        self.rbuf += data
        self.server.buffered += len(data)
        self.process()

    def process(self) -> None:
        """Serve the complete frames in the read buffer while this client may add work:
        its unsent answers are under max_write_buffer and few control requests run."""
        before = len(self.rbuf)
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
        finally:
            self.server.buffered -= before - len(self.rbuf)

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
        if not self.wbuf:
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
            shm = ipc.map_sealed(fds[0], need, limit)
            self.maps.add(shm)
        try:
            if shm is not None and f.in_shm:
                x = np.frombuffer(shm, f.dtype, need // f.dtype.itemsize).reshape(f.shape).copy()
            assert x is not None  # inline, or read from the memfd just now
            if shm is not None and not f.output_to_shm:  # the answer goes inline
                self.maps.discard(shm)
                shm.close()
                shm = None
            out = shm
            self.ctl.infer(self.client, f.session, x, f.predict, f.timeout_ms,
                           lambda result, job: self.answer(f.id, out, result, job))  # fmt: skip
        except BaseException:
            if shm is not None:
                self.maps.discard(shm)
                shm.close()
            raise

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
                self.maps.discard(shm)
                shm.close()
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
                return
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                sent = 0
            except OSError:
                sent = -1
            if sent >= 0 and sent < len(data):
                self.wbuf += data[sent:]
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
            self.maps.clear()
        self.pause_reading()
        self.loop.remove_writer(self.fd)
        self.sock.close()
        self.drop_fds()
        for task in self.tasks:
            task.cancel()
        self.server.buffered -= len(self.rbuf)
        self.rbuf, self.wbuf = bytearray(), bytearray()
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
        self.buffered = 0  # bytes of partial frames, over every connection
        self.starved = False  # accept ran out of descriptors
        self.handshakes: set[ssl.SSLSocket] = set()
        self.leaving: set[socket.socket] = set()  # turned away, closed after LINGER_S
        self.listeners = [(listener, None), *([tls] if tls else [])]
        for sock, ctx in self.listeners:
            sock.setblocking(False)
            self.loop.add_reader(sock.fileno(), self.on_accept, sock, ctx)
        # Tenant sockets (tenant_sockets.py): their clients are the folder's tenant.
        self.tenants: dict[socket.socket, Path] = {}

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
            elif len(self.connections) + len(self.handshakes) >= self.config.max_connections:
                sock.close()  # handshakes count against the limit: no one can pile them up
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay
                conn = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                self.handshakes.add(conn)
                self.loop.call_later(HANDSHAKE_S, self.abandon, conn)
                self.handshake(conn)

    def handshake(self, sock: ssl.SSLSocket) -> None:
        """Drive a TLS handshake from the loop; a peer without a certificate signed (and not
        revoked) by the CA, or of a tenant not configured, is refused here."""
        fd = sock.fileno()
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.add_reader(fd, self.handshake, sock)
            return
        except ssl.SSLWantWriteError:
            self.loop.add_writer(fd, self.handshake, sock)
            return
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake from %s refused: %s", _peer(sock), exc)
            self.handshakes.discard(sock)
            sock.close()
            return
        self.handshakes.discard(sock)
        tenant = tls.tenant_of(sock)
        uid = self.config.tls_tenants.get(tenant)
        if uid is None:
            self.turn_away(sock, f"tenant {tenant!r} is not configured (tls_tenants)",
                           dpb.PERMISSION_DENIED)  # fmt: skip
            return
        log.info("TLS client %s is tenant %r (uid %d)", _peer(sock), tenant, uid)
        self.admit(sock, 0, uid, uid)

    def admit_tenant(self, sock: socket.socket, folder: Path) -> None:
        """A client of a tenant socket is the folder's tenant, whatever its own uid."""
        uid = tenant_uid(folder)
        if uid is None:
            self.turn_away(sock, f"{folder}: no tenant assigned", dpb.PERMISSION_DENIED)
            return
        pid, peer_uid, _ = ipc.peer_uid(sock)
        log.info("tenant socket %s: pid %d (uid %d) is tenant uid %d", folder, pid, peer_uid, uid)
        self.admit(sock, pid, uid, uid)

    def abandon(self, sock: ssl.SSLSocket) -> None:
        """A handshake still unfinished after HANDSHAKE_S: hang up."""
        if sock in self.handshakes:
            log.warning("TLS handshake from %s took over %g s; closed", _peer(sock), HANDSHAKE_S)
            self.handshakes.discard(sock)
            self.loop.remove_reader(sock.fileno())
            self.loop.remove_writer(sock.fileno())
            sock.close()

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

    def stop_accepting(self) -> None:
        for sock, _ in self.listeners:
            if sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
                sock.close()
        for pending in list(self.handshakes):
            self.loop.remove_reader(pending.fileno())
            self.loop.remove_writer(pending.fileno())
            pending.close()
        self.handshakes.clear()
        for sock in list(self.leaving):
            self.hang_up(sock)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def idle(self) -> bool:
        """No answer left to send, no control request running."""
        return all(not c.wbuf and not c.tasks for c in self.connections)


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "a gone peer"
    return f"{host}:{port}"


def _id_of(payload: bytes) -> int:
    """The request id of an infer frame whose header is whole, else 0."""
    return int(tf.INFER_HEAD.unpack_from(payload)[5]) if len(payload) >= tf.INFER_HEAD.size else 0


def _json(obj: Any) -> str:
    return json.dumps(obj, default=str)
