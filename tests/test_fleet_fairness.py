"""Pods sharing a board through akidad's tenant sockets, as the device plugin sets them up
(a real akidad, clients in processes of their own): the board is shared per tenant, not
per connection, and what akidad keeps for a tenant goes when its allocation does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from akida_rt.client.client import Client
from akida_rt.k8s.tenants import Tenants
from tests.daemon_harness import ROOT, Akidad

DEPTH = 128  # requests each process keeps in flight: two batches of max_batch_frames (64)
WINDOW_FRAMES = 2048  # frames the measured window must hold (32 batches)


@pytest.fixture
def short() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ff-", dir="/tmp"))  # Unix socket paths stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait(check: Any, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < end, what
        time.sleep(0.05)


def _flooder(sock: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.tenant_flooder", str(sock), "60",
                             str(DEPTH), name], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _books(admin: Client) -> dict[str, dict[int, float]]:
    """Per tenant uid: frames and device seconds (akidad's scheduler), and frames
    answered to its connected clients (the clients' meters, kept apart)."""
    stats = admin.stats()
    out: dict[str, dict[int, float]] = {"frames": {}, "device_s": {}, "answered": {}}
    for t in stats["tenants"]:
        out["frames"][t["uid"]] = t["frames"]
        out["device_s"][t["uid"]] = t["device_s"]
    for c in stats["clients"]:
        answered = out["answered"]
        answered[c["uid"]] = answered.get(c["uid"], 0) + c["meter"]["frames"]
    return out


def _metrics(log: str) -> str:
    marker = "Prometheus metrics at http://"
    line = next(x for x in log.splitlines() if marker in x)
    port = int(line.split(marker, 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_a_pod_flooding_from_four_processes_gets_half_the_board_not_four_fifths(
    short: Path,
) -> None:
    tenants = Tenants(short / "tenants")
    (folder_a, uid_a), (folder_b, uid_b) = tenants.assign("b::0"), tenants.assign("b::1")
    args = ("--tenant-dir", str(short / "tenants"), "--simulated", "1", "--metrics", "127.0.0.1:0")
    with Akidad(short, *args) as daemon:
        for folder in (folder_a, folder_b):
            _wait((folder / "akida.sock").exists, 5, daemon.log())
        procs = [_flooder(folder_a / "akida.sock", f"a{i}") for i in range(4)]
        procs.append(_flooder(folder_b / "akida.sock", "b"))
        try:
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            with Client(daemon.socket) as admin:
                _wait(lambda: min(_books(admin)["frames"].get(u, 0) for u in (uid_a, uid_b)),
                      20, "both tenants served")  # fmt: skip
                before, start = _books(admin), time.monotonic()
                _wait(lambda: sum(_books(admin)["frames"].values())
                      - sum(before["frames"].values()) >= WINDOW_FRAMES, 60, "the window")  # fmt: skip
                after, span = _books(admin), time.monotonic() - start
                clients = admin.stats()["clients"]
                metrics = _metrics(daemon.log())
        finally:
            for proc in procs:
                proc.terminate()
        summaries = [json.loads(p.communicate(timeout=30)[0].splitlines()[-1]) for p in procs]
    share = {}
    for what in ("frames", "device_s", "answered"):
        got = {u: after[what][u] - before[what].get(u, 0) for u in (uid_a, uid_b)}
        share[what] = got[uid_b] / sum(got.values())
    print(f"tenant B's share over {span:.1f} s: {share}")
    # Per connection, B would get 1/5 (measured 0.22 before the two levels).
    assert 0.4 <= share["frames"] <= 0.6, share
    assert 0.4 <= share["device_s"] <= 0.6, share
    assert 0.35 <= share["answered"] <= 0.65, share  # answers trail runs by a batch
    assert sum(c["uid"] == uid_a for c in clients) == 4
    assert f'akida_tenant_clients{{tenant="{uid_a}"}} 4.0' in metrics
    assert f'akida_tenant_frames_total{{tenant="{uid_b}"}}' in metrics
    assert all(s["errors"] == 0 and s["frames"] > 0 for s in summaries), summaries


def test_a_share_reallocated_frees_the_tenant_it_replaced_even_across_a_restart(
    short: Path,
) -> None:
    tenants = Tenants(short / "tenants")
    (folder0, uid0), (folder1, uid1) = tenants.assign("b::0"), tenants.assign("b::1")
    users = short / "state" / "users"
    stranger = users / "1500000000"  # a tenant-range uid akidad never saw as a tenant
    args = ("--tenant-dir", str(short / "tenants"), "--simulated", "1")
    with Akidad(short, *args) as daemon:
        for folder in (folder0, folder1):
            _wait((folder / "akida.sock").exists, 5, daemon.log())
        with Client(daemon.socket) as admin:
            admin.put_state("host", b"root's own")
        pod0 = Client(folder0 / "akida.sock")
        pod0.put_state("weights", b"learned by pod 0")
        with Client(folder1 / "akida.sock") as pod1:
            pod1.put_state("weights", b"learned by pod 1")
            assert [t["uid"] for t in pod1.stats()["tenants"]] == [uid1]  # its own only
        stranger.mkdir()
        (stranger / "weights").write_bytes(b"not a tenant of this directory")
        assert (users / str(uid0) / "weights").exists()
        # kubelet gives share 0 to a new pod (Allocate): uid0 is retired, but its
        # client is still connected, so its state stays until that client goes.
        _, fresh0 = tenants.assign("b::0")
        _wait(lambda: f"tenant uid {uid0} retired" in daemon.log(), 5, daemon.log())
        time.sleep(1.5)  # a scan or two later
        assert (users / str(uid0) / "weights").exists()
        pod0.close()
        _wait(lambda: not (users / str(uid0)).exists(), 5, daemon.log())
        with Client(daemon.socket) as admin:
            assert uid0 not in {t["uid"] for t in admin.stats()["tenants"]}
        with Client(folder0 / "akida.sock") as pod:  # the new pod: a new tenant, no state
            assert pod.hello is not None and pod.hello.uid == fresh0
            pod.put_state("weights", b"learned by the new pod")
    # Share 1 is reallocated while akidad is down: freed at its first scan.
    _, fresh1 = tenants.assign("b::1")
    with Akidad(short, *args) as daemon:
        _wait(lambda: not (users / str(uid1)).exists(), 5, daemon.log())
        assert f"tenant uid {uid1} freed" in daemon.log()
    assert (users / str(fresh0) / "weights").read_bytes() == b"learned by the new pod"
    assert (users / "0" / "host").read_bytes() == b"root's own"  # a host user: untouched
    assert (stranger / "weights").exists()  # never a tenant here: untouched
    assert fresh1 != uid1


def test_a_tenant_file_missing_or_untrusted_for_a_while_retires_no_one(short: Path) -> None:
    from akida_rt.daemon.store import StateStore
    from akida_rt.daemon.tenant_ledger import TenantLedger
    from akida_rt.daemon.tenant_sockets import TenantSockets

    tenants = Tenants(short / "tenants")
    folder, uid = tenants.assign("b::0")
    sockets = TenantSockets(short / "tenants", lambda s, f: None, lambda s: None)
    store = StateStore(short / "state")
    ledger = TenantLedger(store, connected=lambda u: False)
    try:
        assert ledger.observe(sockets.scan() or {}) == []
        store.put(uid, "weights", b"learned")
        (folder / "tenant").chmod(0o666)  # untrusted: no socket, but nothing known either
        assert ledger.observe(sockets.scan() or {}) == []
        (folder / "tenant").unlink()
        assert ledger.observe(sockets.scan() or {}) == []
        assert store.get(uid, "weights") == b"learned"
        # A ledger that cannot be read is started afresh, with a warning, not trusted.
        (short / "state" / "tenants.json").write_text("{not json")
        assert TenantLedger(store, connected=lambda u: False).folders == {}
        shutil.rmtree(folder)  # the share is gone: its last tenant is freed
        assert ledger.observe(sockets.scan() or {}) == [uid]
        assert store.get(uid, "weights") is None
    finally:
        sockets.close()
