"""The Unix-socket server: accepts connections, records peer credentials, reads
length-prefixed protobuf frames (with memfds as SCM_RIGHTS) and calls the controller.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from akida_rt import ipc
from akida_rt import tensor_frames as tf
from akida_rt.errors import DaemonError
from akida_rt.proto import daemon_pb2 as dpb

from .busy_poll import LoopSelector
from .controller import Client, Controller, Refused

log = logging.getLogger(__name__)
RECV_BYTES = 1 << 18
MAX_PENDING_FDS = 16
UCRED = struct.Struct("3i")
ANCILLARY_SPACE = socket.CMSG_SPACE(4 * ipc.MAX_FDS_PER_FRAME)
LENGTH = ipc.LENGTH
EXPRESS_HEAD = LENGTH.size + tf.INFER_HEAD.size  # where an express frame's tensor starts
CTRUNC = int(socket.MSG_CTRUNC)  # a plain int: `&` on the IntFlag is a Python-level call


class Connection:
    """One client socket, driven by the event loop's reader/writer callbacks."""

    def __init__(self, server: Server, sock: socket.socket, client: Client) -> None:
        self.server = server
        self.ctl = server.controller
        self.sock = sock
        self.client = client
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.fds: deque[int] = deque()
        self.closed = False
        self.closing = False
        self.loop = server.loop
        self.fd = sock.fileno()
        self.loop.add_reader(self.fd, self.on_readable)
        if server.selector is not None:
            server.selector.direct[self.fd] = self.on_readable

    # ---------------------------------------------------------------- reading
    def on_readable(self) -> None:
        try:
            data, anc, flags, _ = self.sock.recvmsg(RECV_BYTES, ANCILLARY_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("client %d read error: %s", self.client.client_id, exc)
            self.close()
            return
        if anc:
            self.fds.extend(ipc.fds_from_ancillary(anc))
        if flags & CTRUNC or len(self.fds) > MAX_PENDING_FDS:
            self.fail_connection(f"more than {MAX_PENDING_FDS} descriptors sent without a frame")
            return
        if not data:
            self.close()
            return
        size = len(data) - 4
        if (
            not self.rbuf
            and 0 < size <= self.server.config.max_frame
            and LENGTH.unpack_from(data)[0] == size
        ):
            alone = self.server.alone()  # exactly one whole frame: no buffering
            if not (alone and data[4] == tf.MARKER and not self.fds and self.express(data)):
                self.handle(data[4:], alone)
            return
        self.rbuf += data
        try:
            frames = ipc.split_frames(self.rbuf, self.server.config.max_frame)
        except ipc.FrameError as exc:
            self.fail_connection(str(exc))
            return
        # A lone request (nothing else arrived in this wake-up) has nothing to batch with,
        # so it may run at once on an idle device.
        alone = len(frames) == 1 and not self.rbuf and self.server.alone()
        for payload in frames:
            if self.closed or self.closing:
                return
            self.handle(payload, alone)

    def fail_connection(self, why: str) -> None:
        """Framing is lost: say why, then hang up."""
        log.warning("client %d: %s; closing its connection", self.client.client_id, why)
        self.send(ipc.error_response(0, dpb.BAD_FRAME, why))
        self.closing = True
        self.stop_reading()
        if not self.wbuf:
            self.close()

    def handle(self, payload: bytes, alone: bool = False) -> None:
        if tf.is_tensor_frame(payload):
            self.handle_tensor_frame(payload, alone)
            return
        try:
            req = ipc.decode_request(payload)
        except ipc.MessageError as exc:
            self.send(ipc.error_response(0, exc.status, str(exc)))
            return
        kind = req.WhichOneof("body")
        try:
            if kind == "infer":
                self.on_infer(req, alone)
            elif kind == "load":
                task = self.loop.create_task(self.on_load(req))
                self.server.tasks.add(task)
                task.add_done_callback(self.server.tasks.discard)
            else:
                self.send(self.simple(req, kind))
        except Exception as exc:
            self.refuse(req.id, kind, exc)

    def handle_tensor_frame(self, payload: bytes, alone: bool) -> None:
        try:
            f = tf.decode_infer(payload)
        except tf.FrameRefused as exc:
            self.send(ipc.error_response(exc.req_id, exc.status, str(exc)))
            return

        def tensor(shm: mmap.mmap | None) -> np.ndarray:
            if f.x is not None:
                return f.x
            if shm is None:  # take_shm raised already; kept for the type checker
                raise ipc.MessageError(dpb.BAD_INPUT, "in_shm tensor without a descriptor")
            return ipc.array_in_shm(memoryview(shm), f.dtype, f.shape).copy()

        try:
            self.start_infer(f.id, f.session, tensor, f.predict, f.timeout_ms,
                             f.in_shm or f.output_to_shm, alone, True)  # fmt: skip
        except Exception as exc:
            self.refuse(f.id, "infer", exc)

    def express(self, data: bytes) -> bool:
        """The hot request in few steps: a lone uint8 infer tensor frame for a session of
        this connection, whose program is resident on an idle device. Every check only
        predicts the general path's; whatever does not fit goes there (False), and it
        gives the precise errors. True: answered."""
        try:
            _, kind, flags, code, ndim, rid, sid, _, n, h, w, c = tf.INFER_HEAD.unpack_from(data, 4)
        except struct.error:
            return False
        session = self.ctl.sessions.get(sid)
        if (
            kind != tf.INFER
            or flags & ~tf.PREDICT
            or code != dpb.UINT8
            or ndim != 4
            or session is None
            or session.client is not self.client
            or (h, w, c) != session.input_shape
            or n < 1
            or session.input_bits < 8
            or len(data) != EXPRESS_HEAD + n * h * w * c
        ):
            return False
        x = np.frombuffer(data, np.uint8, n * h * w * c, EXPRESS_HEAD).reshape(n, h, w, c)

        def answer(y: np.ndarray, device: str, run_s: float) -> None:
            self.write(tf.encode_result(rid, y, device, n, 0.0, run_s))

        try:
            return self.ctl.infer_express(self.client, session, x, bool(flags), answer)
        except Exception as exc:
            self.refuse(rid, "infer", exc)
            return True

    def refuse(self, req_id: int, kind: str | None, exc: Exception) -> None:
        """Answer a request that raised (call from its except block)."""
        if isinstance(exc, Refused):
            self.send(ipc.error_response(req_id, getattr(dpb, exc.status), str(exc)))
        elif isinstance(exc, ipc.MessageError):
            self.send(ipc.error_response(req_id, exc.status, str(exc)))
        elif isinstance(exc, DaemonError):
            self.send(ipc.error_response(req_id, dpb.BAD_INPUT, str(exc)))
        else:
            log.exception("request %s of client %d", kind, self.client.client_id)
            self.send(ipc.error_response(req_id, dpb.INTERNAL, f"{type(exc).__name__}: {exc}"))

    def simple(self, req: dpb.Request, kind: str | None) -> dpb.Response:
        resp = dpb.Response(id=req.id)
        if kind == "hello":
            info = self.ctl.hello(self.client, req.hello.client_name, req.hello.priority)
            h = resp.hello
            h.protocol, h.version, h.pid = ipc.PROTOCOL, info["version"], info["pid"]
            h.client_id, h.uid = info["client_id"], info["uid"]
            h.shm_threshold = self.server.config.shm_threshold
            h.max_frame = self.server.config.max_frame
            h.loop_cpus[:] = info["loop_cpus"]
        elif kind == "list_devices":
            for d in self.ctl.list_devices():
                resp.devices.devices.add(
                    id=d["id"],
                    name=d["name"],
                    simulated=d["simulated"],
                    kind=d["kind"],
                    state=d["state"],
                    queued=d["queued"],
                    describe_json=_json(d),
                )
        elif kind == "unload":
            self.ctl.unload(self.client, req.unload.session)
            resp.ack.SetInParent()
        elif kind == "stats":
            resp.stats.json = _json(self.ctl.stats())
        elif kind == "put_state":
            self.ctl.put_state(self.client, req.put_state.key, req.put_state.data)
            resp.ack.SetInParent()
        elif kind == "get_state":
            g = req.get_state
            owner = g.owner_uid if g.has_owner else None
            resp.state.data = self.ctl.get_state(self.client, g.key, owner)
        return resp

    async def on_load(self, req: dpb.Request) -> None:
        m = req.load
        try:
            s = await self.ctl.load(self.client, m.program, m.device, m.map_mode, m.hw_only)
        except Refused as exc:
            self.send(ipc.error_response(req.id, getattr(dpb, exc.status), str(exc)))
            return
        resp = dpb.Response(id=req.id)
        lo = resp.loaded
        lo.session, lo.program_hash, lo.name = s.session_id, s.key.content_hash, s.name
        lo.input_shape[:], lo.output_shape[:] = s.input_shape, s.output_shape
        lo.output_dtype = dpb.UINT8 if s.output_uint8 else dpb.INT32
        lo.sequences, lo.input_bits = s.sequences, s.input_bits
        self.send(resp)

    def on_infer(self, req: dpb.Request, alone: bool) -> None:
        m = req.infer
        t = m.input

        def tensor(shm: mmap.mmap | None) -> np.ndarray:
            x = ipc.array_from_tensor(t, memoryview(shm) if shm is not None else None)
            return x.copy() if t.in_shm else x

        self.start_infer(req.id, m.session, tensor, m.predict, m.timeout_ms,
                         t.in_shm or m.output_to_shm, alone, False)  # fmt: skip

    def start_infer(self, rid: int, session: int, tensor: Callable[[mmap.mmap | None], np.ndarray],
                    predict: bool, timeout_ms: int, uses_shm: bool, alone: bool,
                    frame: bool) -> None:  # fmt: skip
        """Take the request's memfd if it names one, read its input (`tensor(shm)`) and
        hand it to the controller; the answer goes back in the form it came (a tensor
        frame or a protobuf Response), and its output into the memfd if there is one."""
        shm = self.take_shm() if uses_shm else None
        try:
            x = tensor(shm)
            self.ctl.infer(self.client, session, x, predict, timeout_ms,
                           lambda result, job: self.reply_infer(rid, result, job, shm, frame),
                           alone=alone)  # fmt: skip
        except BaseException:
            if shm is not None:
                shm.close()
            raise

    def take_shm(self) -> mmap.mmap:
        if not self.fds:
            raise ipc.MessageError(dpb.BAD_INPUT, "frame names shared memory but sent no fd")
        fd = self.fds.popleft()
        try:
            return ipc.map_fd(fd)
        except (OSError, ValueError) as exc:
            raise ipc.MessageError(dpb.BAD_INPUT, f"cannot map the shared memory: {exc}") from None
        finally:
            os.close(fd)

    def reply_infer(
        self, req_id: int, result: Any, job: Any, shm: mmap.mmap | None, frame: bool
    ) -> None:
        try:
            if self.closed:
                return
            if isinstance(result, BaseException):
                status = getattr(dpb, getattr(result, "status", "INTERNAL"), dpb.INTERNAL)
                self.send(ipc.error_response(req_id, status, str(result)))
                return
            y = result
            in_shm = False
            if shm is not None and len(shm) >= y.nbytes:
                in_shm = True
                view = np.frombuffer(shm, dtype=y.dtype, count=y.size)
                view[:] = y.reshape(-1)
                del view
            if frame:
                self.write(tf.encode_result(req_id, y, job.device, job.batch_frames,
                                            job.queue_s, job.run_s, in_shm=in_shm))  # fmt: skip
                return
            resp = dpb.Response(id=req_id)
            r = resp.result
            r.device, r.batch_frames, r.run_s, r.queue_s = (
                job.device, job.batch_frames, job.run_s, job.queue_s
            )  # fmt: skip
            ipc.tensor_from_array(y, r.output, inline=not in_shm)
            self.send(resp)
        finally:
            if shm is not None:
                shm.close()

    # ---------------------------------------------------------------- writing
    def send(self, message: Any) -> None:
        self.write(ipc.encode_frame(message))

    def write(self, data: bytes) -> None:
        """Send a whole frame, buffering what the socket does not take now."""
        if self.closed:
            return
        if self.wbuf:
            self.wbuf += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.wbuf += data[sent:]
            self.loop.add_writer(self.sock.fileno(), self.on_writable)

    def on_writable(self) -> None:
        try:
            sent = self.sock.send(self.wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.wbuf[:sent]
        if not self.wbuf:
            self.loop.remove_writer(self.sock.fileno())
            if self.closing:
                self.close()

    def stop_reading(self) -> None:
        self.loop.remove_reader(self.fd)
        if self.server.selector is not None:
            self.server.selector.direct.pop(self.fd, None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.sock.fileno() >= 0:
            self.stop_reading()
            self.loop.remove_writer(self.fd)
        self.sock.close()
        while self.fds:
            os.close(self.fds.popleft())
        self.server.connections.discard(self)
        self.ctl.disconnect(self.client)


class Server:
    """Accepts connections on a listening Unix socket."""

    def __init__(
        self, controller: Controller, listener: socket.socket, selector: LoopSelector | None = None
    ) -> None:
        self.controller = controller
        self.selector = selector
        self.config = controller.config
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        listener.setblocking(False)
        self.loop.add_reader(listener.fileno(), self.on_accept)

    def on_accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            pid, uid, gid = UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
            )
            client = self.controller.connect(pid, uid, gid)
            log.info("client %d connected: pid %d uid %d gid %d", client.client_id, pid, uid, gid)
            self.connections.add(Connection(self, sock, client))

    def alone(self) -> bool:
        """Whether the current loop iteration woke for one descriptor only."""
        return self.selector is not None and self.selector.last_ready == 1

    def stop_accepting(self) -> None:
        if self.listener.fileno() >= 0:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def flushed(self) -> bool:
        return all(not c.wbuf for c in self.connections)


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)
