"""TLS handshakes in progress on akidad's TCP listener: driven from the event loop, capped
per peer address and in total (the oldest making room), and holding no connection slot."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Protocol

from akida_rt.wire import tls
from akida_rt.wire.proto import daemon_pb2 as dpb

from .config import Config

log = logging.getLogger(__name__)
HANDSHAKE_S = 10.0  # a TLS client has this long to complete its handshake


class Server(Protocol):
    """What the handshakes use of the server (daemon/server.py)."""

    config: Config
    loop: asyncio.AbstractEventLoop

    def admit(self, sock: socket.socket, pid: int, uid: int, gid: int) -> None: ...

    def turn_away(self, sock: socket.socket, why: str, status: int = ...) -> None: ...


class Handshakes:
    """The handshakes of one server: a peer that completes one is admitted as the tenant
    its certificate names, any other is hung up on."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pending: dict[ssl.SSLSocket, str] = {}  # oldest first, with the peer address
        self.from_addr: dict[str, dict[ssl.SSLSocket, None]] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def start(self, sock: socket.socket, ctx: ssl.SSLContext) -> None:
        """Begin a TLS handshake within the handshake caps: a full address gives up its own
        oldest handshake, a full table that of the address with the most."""
        cfg = self.server.config
        addr = peer_name(sock).rpartition(":")[0]
        mine = self.from_addr.get(addr, {})
        if len(mine) >= cfg.max_handshakes_per_address:
            self.abandon(next(iter(mine)), "max_handshakes_per_address")
        if len(self.pending) >= cfg.max_handshakes:
            busiest = max(self.from_addr.values(), key=len)
            self.abandon(next(iter(busiest)), "max_handshakes")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay
        conn = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.pending[conn] = addr
        self.from_addr.setdefault(addr, {})[conn] = None
        self.server.loop.call_later(HANDSHAKE_S, self.abandon, conn, f"over {HANDSHAKE_S:g} s")
        self.step(conn)

    def _over(self, sock: ssl.SSLSocket) -> None:
        addr = self.pending.pop(sock, None)
        if addr is not None:
            mine = self.from_addr.get(addr, {})
            mine.pop(sock, None)
            if not mine:
                self.from_addr.pop(addr, None)

    def step(self, sock: ssl.SSLSocket) -> None:
        """Drive a TLS handshake from the loop; a peer without a certificate signed (and not
        revoked) by the CA, or of a tenant not configured, is refused here."""
        fd = sock.fileno()
        self.server.loop.remove_reader(fd)
        self.server.loop.remove_writer(fd)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.server.loop.add_reader(fd, self.step, sock)
            return
        except ssl.SSLWantWriteError:
            self.server.loop.add_writer(fd, self.step, sock)
            return
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake from %s refused: %s", peer_name(sock), exc)
            self._over(sock)
            sock.close()
            return
        self._over(sock)
        names, problem = tls.tenant_of(sock)
        tenants = self.server.config.tls_tenants
        tenant = next((n for n in names if n in tenants), None)
        if tenant is None:
            why = (
                problem or f"tenant {names[-1] if names else ''!r} is not configured (tls_tenants)"
            )
            self.server.turn_away(sock, f"{why}; refused", dpb.PERMISSION_DENIED)
            return
        uid = tenants[tenant]
        log.info("TLS client %s is tenant %r (uid %d)", peer_name(sock), tenant, uid)
        self.server.admit(sock, 0, uid, uid)

    def abandon(self, sock: ssl.SSLSocket, why: str) -> None:
        """A handshake still unfinished (after HANDSHAKE_S, or past a cap): hang up."""
        if sock in self.pending:
            log.warning("TLS handshake from %s unfinished (%s); closed", peer_name(sock), why)
            self._over(sock)
            self.server.loop.remove_reader(sock.fileno())
            self.server.loop.remove_writer(sock.fileno())
            sock.close()

    def close_all(self) -> None:
        for sock in list(self.pending):
            self.server.loop.remove_reader(sock.fileno())
            self.server.loop.remove_writer(sock.fileno())
            sock.close()
        self.pending.clear()
        self.from_addr.clear()


def peer_name(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "a gone peer"
    return f"{host}:{port}"
