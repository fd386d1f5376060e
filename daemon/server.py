"""The Unix-socket server: accepts connections within the connection limits, tenant and
TLS listeners, and the budgets and sweeps over all connections (docs/daemon.md, "Limits")."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import threading
import time
from collections import Counter
from pathlib import Path

from akida_rt.wire import ipc
from akida_rt.wire.proto import daemon_pb2 as dpb

from .budgets import Kind
from .connection import RECV_BYTES, Connection
from .controller import Controller
from .tenant_sockets import tenant_uid
from .tls_handshakes import Handshakes

log = logging.getLogger(__name__)
ACCEPT_BACKOFF_S = 0.1
LINGER_S = 1.0  # a turned-away client has this long to read why
SWEEP_S = 1.0  # how often idle partial frames are looked for


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
