"""akidad over mutual TLS on loopback: a tenant's certificate plays the role of a uid, and
a client whose certificate is of another CA, expired, revoked, or of a tenant not
configured is refused, while everyone else is served bit-exactly."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography")

from akida_rt.client.client import Client
from akida_rt.errors import DaemonError, RemoteError
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import status_of
from tests.daemon_harness import Akidad, random_input, tiny_model
from tests.tls_certs import CA

TENANTS = {"alice": 20001, "carol": 20003}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = CA(folder), CA(folder, "other-ca")
    certs = {cn: ca.issue(cn) for cn in ("alice", "bob", "carol")}
    certs["server"] = ca.issue("akidad", server=True)
    certs["expired"] = ca.issue("alice", expired=True)
    certs["foreign"] = other.issue("alice")
    return {"ca": ca.pem, "crl": ca.revoke("carol"), **certs}


@pytest.fixture(scope="module")
def remote(pki: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Akidad, str]:
    tmp = tmp_path_factory.mktemp("tls-daemon")
    config = tmp / "akidad.toml"
    config.write_text(
        "[akidad.tls_tenants]\n" + "".join(f"{k} = {v}\n" for k, v in TENANTS.items())
    )
    cert, key = pki["server"]
    daemon = Akidad(tmp, "--config", str(config), "--listen", "tcp://127.0.0.1:0",
                    "--tls-cert", cert, "--tls-key", key, "--tls-ca", pki["ca"],
                    "--tls-crl", pki["crl"])  # fmt: skip
    daemon.start()
    port = re.search(r"serving mutual-TLS clients on 127\.0\.0\.1:(\d+)", daemon.log())
    assert port, daemon.log()
    yield daemon, f"akida+tls://127.0.0.1:{port.group(1)}"
    daemon.__exit__()


def _client(url: str, pki: dict, who: str, **kw: object) -> Client:
    cert, key = pki[who]
    return Client(url, cert=cert, key=key, ca=pki["ca"], retry_s=0, **kw)


def test_a_tenant_is_served_bit_exactly_with_tensors_in_the_frames(remote, pki) -> None:
    daemon, url = remote
    model = tiny_model(4)
    with _client(url, pki, "alice", name="remote") as c:
        assert c.hello is not None and c.hello.uid == TENANTS["alice"]
        assert any(d["simulated"] for d in c.devices())
        remote_model = c.load(model)
        for n in (1, 64, 3000):  # 3000 frames: over the memfd threshold, still in the frame
            x = random_input(model, n, n)
            assert np.array_equal(remote_model.forward(x), model.forward(x))
        c.put_state("weights.bin", b"alice's")
    assert (daemon.state / "users" / str(TENANTS["alice"]) / "weights.bin").read_bytes() == (
        b"alice's"
    )


def test_tenants_are_isolated_like_uids(remote, pki) -> None:
    daemon, url = remote
    with _client(url, pki, "alice") as alice:
        alice.put_state("mine", b"a")
    with Client(daemon.socket) as local:  # root, on the Unix socket
        local.put_state("mine", b"root")
        assert local.get_state("mine", owner_uid=TENANTS["alice"]) == b"a"
    with _client(url, pki, "alice") as alice:
        assert alice.get_state("mine") == b"a"
        with pytest.raises(RemoteError) as info:
            alice.get_state("mine", owner_uid=0)
        assert info.value.status_name == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    ("who", "words"),
    [
        ("foreign", "refused"),  # signed by another CA
        ("expired", "refused"),
        ("carol", "refused"),  # revoked by the CRL
        ("bob", "not configured"),  # a valid certificate of an unknown tenant
    ],
)
def test_a_client_the_ca_or_the_tenants_do_not_vouch_for_is_refused(
    remote, pki, who: str, words: str
) -> None:
    _, url = remote
    with pytest.raises(DaemonError) as info:
        _client(url, pki, who)
    assert status_of(info.value) == dpb.PERMISSION_DENIED
    assert words in str(info.value), str(info.value)
    with _client(url, pki, "alice") as alice:  # everyone else is still served
        assert alice.devices()


def test_a_client_that_never_finishes_its_handshake_blocks_no_one(remote, pki) -> None:
    _, url = remote
    host, port = url.removeprefix("akida+tls://").split(":")
    silent = [socket.create_connection((host, int(port))) for _ in range(5)]
    try:
        model = tiny_model(5)
        x = random_input(model, 2, 1)
        with _client(url, pki, "alice") as alice:
            assert np.array_equal(alice.load(model).forward(x), model.forward(x))
    finally:
        for s in silent:
            s.close()


def test_a_server_certificate_of_another_ca_is_refused_by_the_client(remote, pki, tmp_path) -> None:
    _, url = remote
    other = CA(Path(tmp_path), "stranger")
    cert, key = pki["alice"]
    with pytest.raises(DaemonError) as info:
        Client(url, cert=cert, key=key, ca=other.pem, retry_s=0)
    assert status_of(info.value) == dpb.PERMISSION_DENIED and "TLS handshake" in str(info.value)


def test_akida_devices_lists_a_remote_daemons_boards(remote, pki) -> None:
    import json
    import subprocess
    import sys

    _, url = remote
    cert, key = pki["alice"]
    out = subprocess.run(
        [sys.executable, "-m", "akida_rt.cli.main", "devices", "--json", "--host", url,
         "--tls-cert", cert, "--tls-key", key, "--tls-ca", pki["ca"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (board,) = json.loads(out.stdout)
    assert board["id"] == "sim://akd1000/0" and board["simulated"] and board["nps"] == 78
