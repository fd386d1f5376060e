"""akidad over the network: mutual TLS 1.3 (stdlib `ssl`) for `tcp://` listeners and
`akida+tls://` clients. A client certificate names a tenant, which plays the role the
uid plays on the Unix socket.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from akida_rt.errors import DaemonError, ErrorKind

SCHEME = "akida+tls"


def _context(purpose: ssl.Purpose, cert: str, key: str, ca: str) -> ssl.SSLContext:
    for what, path in (("certificate", cert), ("key", key), ("CA", ca)):
        if not path or not Path(path).is_file():
            raise DaemonError(f"TLS {what} file {path!r} does not exist")
    ctx = ssl.SSLContext(
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
    except (ssl.SSLError, OSError) as exc:
        raise DaemonError(f"TLS files {cert}, {key}, {ca}: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(cert: str, key: str, ca: str, crl: str = "") -> ssl.SSLContext:
    """A TLS 1.3 server context that requires a client certificate signed by `ca` (and,
    with `crl`, not revoked by it): anything else is refused during the handshake."""
    ctx = _context(ssl.Purpose.CLIENT_AUTH, cert, key, ca)
    if crl:
        try:
            ctx.load_verify_locations(crl)
        except (ssl.SSLError, OSError) as exc:
            raise DaemonError(f"TLS revocation list {crl}: {exc}") from None
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def client_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """A TLS 1.3 client context presenting `cert` and trusting servers signed by `ca`
    (whose certificate must name the host connected to)."""
    return _context(ssl.Purpose.SERVER_AUTH, cert, key, ca)


def tenant_of(sock: ssl.SSLSocket) -> str:
    """The common name of the peer's (verified) certificate."""
    cert: dict[str, Any] = dict(sock.getpeercert() or {})
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return ""


def address(url: str, scheme: str) -> tuple[str, int]:
    """(host, port) of `scheme://host:port`.

    Raises:
        DaemonError: BAD_INPUT naming the URL and the form expected.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != scheme or not parts.hostname or port is None:
        raise DaemonError(f"{url!r} is not a {scheme}://HOST:PORT address", ErrorKind.BAD_INPUT)
    return parts.hostname, port
