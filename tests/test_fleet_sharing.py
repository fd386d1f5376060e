"""Sharing boards between pods through akidad: tenant sockets (identity from the socket,
not the uid: this test runs as root), per-tenant limits, board health as akidad sees it
(a hung board turns unhealthy and back), and the device plugin's shares and metrics,
against a real akidad, the real plugin process and the official-proto kubelet stand-in.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

pytest.importorskip("grpc")

from akida_rt.client.client import Client
from akida_rt.errors import AkidaError
from akida_rt.k8s.board_health import AkidadHealth
from akida_rt.k8s.boards import Board
from akida_rt.k8s.inventory import Inventory
from akida_rt.k8s.tenants import Tenants
from akida_rt.model import zoo
from tests.daemon_harness import Akidad, random_input

from .official_kubelet import OfficialKubelet
from .test_device_plugin import PCIE, USB, Plugin

SIM = "sim://akd1000/{i}?mode=process"


@pytest.fixture
def short() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fl-", dir="/tmp"))  # Unix socket paths stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait(check, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, what
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_tenant_socket_makes_a_root_client_a_tenant_with_its_own_limits(short: Path) -> None:
    tenants = Tenants(short / "tenants")
    tenants.prepare(["board::0", "board::1"])
    config = short / "akidad.toml"
    config.write_text("max_connections_per_uid = 2\n")
    args = ("--config", str(config), "--tenant-dir", str(short / "tenants"), "--simulated", "1")
    with Akidad(short, *args) as daemon:
        socks = [short / "tenants" / f"board-{n}" / "akida.sock" for n in (0, 1)]
        _wait(lambda: all(s.exists() for s in socks), 5, daemon.log())
        uid0 = int((short / "tenants" / "board-0" / "tenant").read_text())
        with Client(socks[0]) as a, Client(socks[1]) as b, Client(daemon.socket) as admin:
            assert a.hello is not None and b.hello is not None
            assert a.hello.uid == uid0 and b.hello.uid != uid0 and a.hello.uid != 0
            assert admin.hello is not None and admin.hello.uid == 0  # the host's root
            # A tenant sees its own clients only; root on the main socket sees all.
            assert {c["uid"] for c in a.stats()["clients"]} == {uid0}
            assert {c["uid"] for c in admin.stats()["clients"]} >= {0, uid0, b.hello.uid}
            model = zoo.digits_cnn(seed=0)
            x = random_input(model, 1, 3)
            assert np.array_equal(a.load(model).forward(x), model.forward(x))
            # akidad's per-uid limit holds per tenant: a third connection is turned away.
            with Client(socks[0]), pytest.raises(AkidaError, match="max_connections_per_uid"):
                Client(socks[0], retry_s=0).devices()
        # A new allocation means a new tenant on the same socket.
        _, fresh = tenants.assign("board::0")
        with Client(socks[0]) as again:
            assert again.hello is not None and again.hello.uid == fresh != uid0
        # A tenant file anyone could have written is not trusted: no socket, no admission.
        (short / "tenants" / "board-0" / "tenant").chmod(0o666)
        _wait(lambda: not socks[0].exists(), 5, "the socket of an untrusted tenant file")
        assert "not trusted" in daemon.log()
        # A folder whose tenant file goes loses its socket.
        (short / "tenants" / "board-1" / "tenant").unlink()
        _wait(lambda: not socks[1].exists(), 5, "the socket of a folder without a tenant")


def test_a_hung_board_turns_unhealthy_in_akidad_and_for_kubelet_then_recovers(
    short: Path,
) -> None:
    config = short / "akidad.toml"
    config.write_text("device_timeout_scale = 0.05\n")  # command timeouts of ~0.6 s
    url = SIM.format(i=4)
    args = ("--config", str(config), f"--device={url}", "--metrics", "127.0.0.1:0")
    with Akidad(short, *args) as daemon:
        health = AkidadHealth(str(daemon.socket))
        assert health()[url] == ""
        board = Board(id="sim-4", kind="sim", url=url, container_url=url)
        changes: list[tuple[str, str]] = []
        inventory = Inventory(interval_s=0.2, scan=lambda: [board], identify=lambda _: False,
                              health=health, on_change=lambda i, h: changes.append((i, h)))  # fmt: skip
        inventory.start()
        try:
            assert inventory.board("sim-4").health == "Healthy"
            model = zoo.digits_cnn(seed=0)
            x = random_input(model, 1, 5)
            with Client(daemon.socket, timeout=20, retry_s=0) as c:
                remote = c.load(model)
                assert np.array_equal(remote.forward(x), model.forward(x))
                (sim,) = psutil.Process(daemon.proc.pid).children(recursive=True)
                sim.send_signal(signal.SIGUSR1)  # the firmware hangs at its next command
                time.sleep(0.2)
                hung_at = time.monotonic()
                assert np.array_equal(remote.forward(x), model.forward(x))  # reset, retried
                (dev,) = c.devices()
                assert dev["health"] == "unhealthy" and "Timeout" in dev["problem"], dev
                seen = _wait(lambda: inventory.board("sim-4").health == "Unhealthy", 3, "down")
                assert time.monotonic() - hung_at < 5, seen
                _wait(lambda: inventory.board("sim-4").health == "Healthy", 6, "recovery")
                assert time.monotonic() - hung_at < 8
                assert c.devices()[0]["health"] == "healthy"
                assert c.stats()["devices"][0]["meter"]["errors"] >= 1
            port = _logged_port(daemon.log(), "Prometheus metrics at http://")
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            lines = text.decode().splitlines()
            assert any(x.startswith("akida_device_healthy{") and x.endswith(" 1.0") for x in lines)
            errors = [x for x in lines if x.startswith("akida_device_errors_total{")]
            assert errors and float(errors[0].rsplit(" ", 1)[1]) >= 1
            assert changes == [("sim-4", "Unhealthy"), ("sim-4", "Healthy")]
        finally:
            inventory.stop()
            health.close()
    # akidad gone: the boards it ran cannot be used, so they are Unhealthy.
    with pytest.raises(AkidaError, match="akidad at"):
        health()


def test_shares_tenants_and_metrics_through_kubelet(short: Path) -> None:
    with Akidad(short, "--tenant-dir", str(short / "tenants"), "--simulated", "1") as daemon:
        plugin = Plugin(short, "--simulated", "--akidad-socket", str(daemon.socket),
                        "--tenant-dir", str(short / "tenants"), "--shares", "2",
                        "--metrics", "127.0.0.1:0")  # fmt: skip
        kubelet = OfficialKubelet(short).start()
        try:
            kubelet.wait_registered()
            want = {f"{b}::{n}": "Healthy" for b in (PCIE, USB) for n in (0, 1)}
            kubelet.wait_devices(lambda d: d == want)
            first, second = kubelet.allocate(f"{PCIE}::0"), kubelet.allocate(f"{PCIE}::1")
            assert not first.devices and not second.devices  # akidad owns the boards
            for got, n in ((first, 0), (second, 1)):
                (mount,) = got.mounts
                assert mount.host_path == str(short / "tenants" / f"{PCIE}-{n}")
                assert (mount.container_path, mount.read_only) == ("/run/akida", True)
                assert dict(got.envs) == {"AKIDA_SOCKET": "/run/akida/akida.sock"}
            uids = [int(g.annotations["brainchip.com/akida.tenant"]) for g in (first, second)]
            assert uids[0] != uids[1]
            # The two "pods": each connects through its own mounted folder.
            for got, uid in zip((first, second), uids, strict=True):
                sock = Path(got.mounts[0].host_path) / "akida.sock"
                _wait(sock.exists, 5, f"akidad's socket in {sock.parent}")
                with Client(sock) as pod:
                    assert pod.hello is not None and pod.hello.uid == uid
            port = _metrics_port(plugin)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            lines = text.decode().splitlines()
            assert 'akida_device_plugin_devices{health="Healthy"} 4' in lines
            assert f'akida_device_plugin_allocations_total{{device="{PCIE}::0"}} 1' in lines
            assert "akida_device_plugin_registrations_total 1" in lines
            plugin.sim("unplug SIMU0001")
            kubelet.wait_devices(lambda d: d.get(f"{USB}::1") == "Unhealthy", timeout_s=5)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            assert f'akida_device_plugin_health_changes_total{{device="{USB}"}} 1' in text.decode()
        finally:
            kubelet.stop()
            assert plugin.stop() == 0, plugin.output()


def _logged_port(log: str, marker: str) -> int:
    line = next(x for x in log.splitlines() if marker in x)
    return int(line.split(marker, 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def _metrics_port(plugin: Plugin) -> int:
    marker = "Prometheus metrics at http://"
    _wait(lambda: marker in plugin.output(), 10, plugin.output())
    return _logged_port(plugin.output(), marker)


def test_the_two_shared_pods_of_the_manifest_run_side_by_side_as_two_tenants(
    short: Path,
) -> None:
    """deploy/k8s/akida-shared-pods.yaml's command, run by two "pods" at once, each with
    the AKIDA_SOCKET Allocate gives it (the tenant socket of its share): both finish, on
    one board, as two tenants that akidad served side by side."""
    import os
    import subprocess
    import sys

    import yaml

    manifest = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "akida-shared-pods.yaml"
    pods = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    tenants = Tenants(short / "tenants")
    shares = [tenants.assign(f"board::{n}") for n in range(len(pods))]
    with Akidad(short, "--tenant-dir", str(short / "tenants"), "--simulated", "1") as daemon:
        for folder, _ in shares:
            _wait((folder / "akida.sock").exists, 5, daemon.log())
        procs = []
        for pod, (folder, _) in zip(pods, shares, strict=True):
            (container,) = pod["spec"]["containers"]
            work = short / pod["metadata"]["name"]
            work.mkdir()
            script = container["command"][2].replace("/tmp/", f"{work}/")
            script = script.replace("--frames 1000", "--frames 300").replace("akida ", "akida_cli ")
            env = {k: v for k, v in os.environ.items() if not k.startswith("AKIDA_")}
            env["AKIDA_SOCKET"] = str(folder / "akida.sock")  # /run/akida/akida.sock inside
            cli = f"{sys.executable} -m akida_rt.cli.main"
            procs.append(subprocess.Popen(["sh", "-c", f"akida_cli() {{ {cli} \"$@\"; }}; {script}"],
                                          env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))  # fmt: skip
        with Client(daemon.socket) as admin:
            seen: dict[int, int] = {}
            together = False  # a moment when both tenants had been served and were on
            while any(p.poll() is None for p in procs):
                busy = set()
                for c in admin.stats()["clients"]:
                    seen[c["uid"]] = max(seen.get(c["uid"], 0), c["meter"]["frames"])
                    if c["meter"]["frames"]:
                        busy.add(c["uid"])
                together = together or busy >= {uid for _, uid in shares}
                time.sleep(0.05)
        outs = [p.communicate(timeout=60) for p in procs]
        for proc, (out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err
            assert "AKD1000" in out  # akida devices listed akidad's board
        # Both tenants were served while the other was; neither is akidad's root.
        uids = {uid for _, uid in shares}
        assert set(seen) >= uids and 0 not in uids
        assert all(seen[u] > 0 for u in uids), seen
        assert together, "the two pods never ran at the same time"
