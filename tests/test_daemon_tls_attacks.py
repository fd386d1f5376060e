"""Attacks on akidad's mutual-TLS listener (issue 30, findings 3, 5 and 8): idle TCP
connections that never handshake, a request larger than one read, and certificates whose
subject names a tenant ambiguously. Each against the real daemon on loopback."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from cryptography import x509
from cryptography.x509.oid import NameOID

from akida_rt.client.client import Client
from akida_rt.errors import DaemonError, RemoteError
from tests.daemon_harness import Akidad
from tests.tls_certs import CA

TENANTS = {"alice": 20001, "bob": 20002}
CN, ORG = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME


def _der_fingerprint(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(pem).read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca = CA(folder)
    two_cns = x509.Name([x509.NameAttribute(CN, "alice"), x509.NameAttribute(CN, "bob")])
    multi = x509.Name([x509.RelativeDistinguishedName(
        [x509.NameAttribute(ORG, "x"), x509.NameAttribute(CN, "bob")])])  # fmt: skip
    return {
        "ca": ca.pem,
        "server": ca.issue("akidad", server=True),
        "alice": ca.issue("alice"),
        "two-cns": ca.issue("two-cns", subject=two_cns),
        "multi-rdn": ca.issue("multi-rdn", subject=multi),
        "pinned": ca.issue("pinned"),
    }


@pytest.fixture(scope="module")
def remote(pki: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Akidad, str, int]:
    tmp = tmp_path_factory.mktemp("tls-attacks")
    fingerprint = _der_fingerprint(pki["pinned"][0])
    config = tmp / "akidad.toml"
    config.write_text(
        "max_handshakes_per_address = 8\nmax_handshakes = 64\n[akidad.tls_tenants]\n"
        + "".join(f"{k} = {v}\n" for k, v in TENANTS.items())
        + f'"sha256:{fingerprint}" = 20009\n'
    )
    cert, key = pki["server"]
    daemon = Akidad(tmp, "--config", str(config), "--listen", "tcp://127.0.0.1:0",
                    "--tls-cert", cert, "--tls-key", key, "--tls-ca", pki["ca"])  # fmt: skip
    daemon.start()
    port = re.search(r"serving mutual-TLS clients on 127\.0\.0\.1:(\d+)", daemon.log())
    assert port, daemon.log()
    yield daemon, f"akida+tls://127.0.0.1:{port.group(1)}", int(port.group(1))
    daemon.__exit__()


def _client(url: str, pki: dict, who: str, **kw: object) -> Client:
    cert, key = pki[who]
    return Client(url, cert=cert, key=key, ca=pki["ca"], retry_s=0, **kw)


def test_idle_tcp_connections_cannot_lock_tenants_out(remote, pki) -> None:
    """1,000 connections that never start a handshake (the attack locked out 5 of 5
    tenants): the address's oldest are closed to make room, and every tenant gets in,
    also while the attacker keeps refreshing its connections."""
    _, url, port = remote
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
    served = 0
    for _ in range(3):
        with _client(url, pki, "alice") as c:
            served += c.hello is not None and c.hello.uid == TENANTS["alice"]
        for s in idle[:200]:  # the attacker refreshes a fifth of its connections
            s.close()
        idle = idle[200:] + [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    for s in idle:
        s.close()
    assert served == 3


def test_a_request_larger_than_one_read_is_answered(remote, pki) -> None:
    """A frame of 1 MiB arrives in records the daemon reads 256 KiB at a time: the rest
    waits in OpenSSL, where the selector cannot see it; it is read anyway."""
    _, url, _ = remote
    blob = bytes(range(256)) * 4096 + b"tail"
    with _client(url, pki, "alice", timeout=5) as c:
        start = time.monotonic()
        for n in range(3):
            c.put_state(f"big{n}.bin", blob)
            assert c.get_state(f"big{n}.bin") == blob
        assert time.monotonic() - start < 5


@pytest.mark.parametrize(("who", "why"), [("two-cns", "2 common names"),
                                          ("multi-rdn", "multi-valued RDN")])  # fmt: skip
def test_an_ambiguous_subject_is_refused(remote, pki, who: str, why: str) -> None:
    _, url, _ = remote
    with pytest.raises((DaemonError, RemoteError)) as err, _client(url, pki, who) as c:
        c.devices()
    assert why in str(err.value) and "\n" not in str(err.value)


def test_a_tenant_named_by_its_certificate_fingerprint(remote, pki) -> None:
    _, url, _ = remote
    with _client(url, pki, "pinned") as c:
        assert c.hello is not None and c.hello.uid == 20009
