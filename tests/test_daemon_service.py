"""akidad as a service: unit files (systemd-analyze), sd_notify readiness and watchdog,
socket activation, SIGHUP reload, socket permissions, peer credentials and uid isolation,
the state store, `akida service install`, `akida stats`, the Prometheus endpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from akida_rt.cli.daemon_cmds import render_units
from akida_rt.client.client import Client
from akida_rt.errors import RemoteError
from tests.conftest import run_akida
from tests.daemon_harness import Akidad, daemon_env, random_input, tiny_model

ROOT = Path(__file__).resolve().parents[1]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (make test installs it as root)"
)


def _write_units(tmp: Path, user: bool) -> Path:
    folder = tmp / ("user" if user else "system")
    folder.mkdir()
    for name, text in render_units(user, exec_path=f"{sys.executable} -m akida_rt.daemon").items():
        (folder / name).write_text(text)
    return folder


@needs_analyze
@pytest.mark.parametrize("user", [False, True])
def test_units_pass_systemd_analyze_verify_without_any_warning(tmp_path: Path, user: bool) -> None:
    folder = _write_units(tmp_path, user)
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="info")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    cmd = [ANALYZE, *(["--user"] if user else []), "verify", "akidad.service", "akidad.socket"]
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


@needs_analyze
def test_system_service_exposure_is_at_most_5(tmp_path: Path) -> None:
    folder = _write_units(tmp_path, user=False)
    out = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", "akidad.service"],
                         cwd=folder, capture_output=True, text=True, timeout=60)  # fmt: skip
    match = re.search(r"Overall exposure level for akidad\.service: ([0-9.]+)", out.stdout)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 5.0


def test_service_unit_declares_notify_watchdog_restart_and_directories() -> None:
    text = render_units(False, "/usr/bin/akidad")["akidad.service"]
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RuntimeDirectory=akida",
                 "StateDirectory=akida", "ExecStart=/usr/bin/akidad"):  # fmt: skip
        assert line in text
    sock = render_units(False)["akidad.socket"]
    assert "ListenStream=/run/akida/akida.sock" in sock and "SocketMode=0660" in sock


def test_akida_service_install_writes_both_units(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "akida_rt.cli.main", "service", "install",
                          "--user", "--dir", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "akidad.socket").read_text().count("%t/akida/akida.sock") == 1
    service = (tmp_path / "akidad.service").read_text()
    assert "--user" in service and "@AKIDAD@" not in service
    again = run_akida("service", "install", "--user", "--dir", str(tmp_path / "j"), "--json")
    written = json.loads(again.stdout)["written"]
    assert sorted(Path(w).name for w in written) == ["akidad.service", "akidad.socket"]
    assert all(Path(w).is_file() for w in written)


def test_service_install_user_without_a_user_bus_names_what_works(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")}  # fmt: skip
    out = run_akida("service", "install", "--user", "--dir", str(tmp_path), "--json", env=env)
    steps = json.loads(out.stdout)["next"]
    assert "no systemd user bus" in steps[0] and steps[1].endswith("akidad --user &")
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    (tmp_path / "bus").touch()
    out = run_akida("service", "install", "--user", "--dir", str(tmp_path / "b"), "--json", env=env)
    assert json.loads(out.stdout)["next"][0].startswith("systemctl --user daemon-reload")


def _notify_socket(tmp: Path) -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp / "notify.sock")
    sock.bind(path)
    sock.settimeout(20)
    return sock, path


def test_ready_and_watchdog_pings_over_the_notify_protocol(tmp_path: Path) -> None:
    notify, path = _notify_socket(tmp_path)
    env = daemon_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    daemon = Akidad(tmp_path, env=env)
    with daemon:
        messages = [notify.recv(4096).decode()]
        assert "READY=1" in messages[0] and f"MAINPID={daemon.proc.pid}" in messages[0]
        start = time.monotonic()
        pings = 0
        while pings < 3:
            if notify.recv(4096) == b"WATCHDOG=1":
                pings += 1
        assert time.monotonic() - start < 2.0  # every 0.1 s (half of WATCHDOG_USEC)
        daemon.signal(15)
        assert any("STOPPING=1" in notify.recv(4096).decode() for _ in range(20))
        assert daemon.proc.wait(20) == 0


def test_watchdog_is_off_when_meant_for_another_pid(tmp_path: Path) -> None:
    notify, path = _notify_socket(tmp_path)
    notify.settimeout(1.0)
    env = daemon_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    with Akidad(tmp_path, env=env):
        assert "READY=1" in notify.recv(4096).decode()
        with pytest.raises(TimeoutError):
            while True:
                assert notify.recv(4096) != b"WATCHDOG=1"


def test_socket_activation_serves_on_the_inherited_listener(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = tmp_path / "activated.sock"
    listener.bind(str(path))
    listener.listen(16)
    fd = listener.fileno()

    def as_fd3() -> None:  # what systemd does: the socket at fd 3, LISTEN_PID = the child
        os.dup2(fd, 3)
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDS"] = "1"
        os.execv(sys.executable, [sys.executable, "-m", "akida_rt.daemon", "--user",
                                  "--socket", str(tmp_path / "unused.sock"),
                                  "--state-dir", str(tmp_path / "state")])  # fmt: skip

    log = open(tmp_path / "activated.log", "wb")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(["true"], preexec_fn=as_fd3, pass_fds=(fd,), stdout=log,
                            stderr=subprocess.STDOUT, env=daemon_env())  # fmt: skip
    listener.close()
    try:
        model = tiny_model()
        x = random_input(model, 2, 0)
        with Client(path, retry_s=30) as client:
            assert np.array_equal(client.load(model).forward(x), model.forward(x))
        assert not (tmp_path / "unused.sock").exists()
        proc.terminate()
        assert proc.wait(20) == 0
        assert path.exists()  # systemd owns the socket file; the daemon leaves it alone
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert "serving on socket activation" in (tmp_path / "activated.log").read_text()


def test_sighup_reloads_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "akidad.toml"
    config.write_text("max_batch_frames = 64\n")
    with Akidad(tmp_path, "--config", str(config)) as daemon, Client(daemon.socket) as c:
        before = c.stats()["daemon"]
        assert before["max_batch_frames"] == 64
        config.write_text("max_batch_frames = 8\n")
        daemon.signal(1)
        deadline = time.monotonic() + 10
        while c.stats()["daemon"]["config_generation"] == before["config_generation"]:
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        assert c.stats()["daemon"]["max_batch_frames"] == 8
        config.write_text("no_such_key = 1\n")  # a broken file keeps the running config
        daemon.signal(1)
        time.sleep(0.5)
        assert c.stats()["daemon"]["max_batch_frames"] == 8
        assert "reload failed" in daemon.log() and "no_such_key" in daemon.log()


def test_socket_is_0660_with_the_configured_group(tmp_path: Path) -> None:
    import grp

    group = "akida" if _has_group("akida") else grp.getgrgid(os.getgid()).gr_name
    with Akidad(tmp_path, "--socket-mode", "0660", "--socket-group", group) as daemon:
        st = daemon.socket.stat()
        assert st.st_mode & 0o777 == 0o660
        assert st.st_gid == grp.getgrnam(group).gr_gid


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _as_other_uid(path: Path, uid: int) -> dict:
    """Fork, drop to `uid` (the interpreter is not executable by it) and try its luck."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            c = Client(path, name="other", retry_s=0)
            out: dict = {"uid": c.hello.uid, "sees": sorted(x["uid"] for x in c.stats()["clients"])}
            for what, call in (("state", lambda: c.get_state("weights.bin", owner_uid=0)),
                               ("own", lambda: c.get_state("weights.bin"))):  # fmt: skip
                try:
                    call()
                    out[what] = "ok"
                except RemoteError as exc:
                    out[what] = exc.status_name
            c.put_state("mine.bin", b"nobody")
            os.write(write, json.dumps(out).encode())
            code = 0
        except BaseException:
            import traceback

            os.write(write, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    data = os.read(read, 4096)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0, data.decode()
    return json.loads(data)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")
def test_peer_credentials_isolate_state_between_uids(tmp_path: Path) -> None:
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="akidad-uid-"))  # reachable by the other uid
    public.chmod(0o755)
    with Akidad(tmp_path, "--socket-mode", "0666") as daemon:
        link = public / "akida.sock"
        os.link(daemon.socket, link)
        with Client(daemon.socket) as root_client:
            assert root_client.hello.uid == 0
            root_client.put_state("weights.bin", b"learned by root")
            assert root_client.get_state("weights.bin") == b"learned by root"
            seen = _as_other_uid(link, 65534)  # while root's client is connected
        shutil.rmtree(public)
        # Another user sees only its own client in `akida stats`, not root's pid and name.
        assert seen == {"uid": 65534, "sees": [65534], "state": "PERMISSION_DENIED",
                        "own": "NOT_FOUND"}  # fmt: skip
        with Client(daemon.socket) as root_client:  # root (uid 0) may read any uid's state
            assert root_client.get_state("mine.bin", owner_uid=65534) == b"nobody"
    assert (tmp_path / "state" / "users" / "65534" / "mine.bin").read_bytes() == b"nobody"


def test_state_writes_are_atomic_and_survive_a_restart(tmp_path: Path) -> None:
    from akida_rt.daemon.store import StateStore

    store = StateStore(tmp_path / "state")
    store.put(1000, "model.weights", b"v1")
    folder = tmp_path / "state" / "users" / "1000"
    (folder / ".model.weights.99.tmp").write_bytes(b"torn")  # an interrupted write
    store.put(1000, "model.weights", b"v2")
    assert StateStore(tmp_path / "state").get(1000, "model.weights") == b"v2"
    assert sorted(p.name for p in folder.iterdir()) == ["model.weights"]
    with pytest.raises(Exception, match="bad state key"):
        store.put(1000, "../escape", b"x")
    with Akidad(tmp_path) as daemon, Client(daemon.socket) as c:
        c.put_state("learned", b"\x01\x02")
    with Akidad(tmp_path) as daemon, Client(daemon.socket) as c:
        assert c.get_state("learned") == b"\x01\x02"


def test_devices_listing_and_simulated_off(tmp_path: Path) -> None:
    with Akidad(tmp_path) as daemon, Client(daemon.socket) as c:
        devices = c.devices()
        assert devices and all(d["simulated"] for d in devices)
        assert devices[0]["name"] == "AKD1000"
    off = tmp_path / "off"
    off.mkdir()
    with Akidad(off, "--simulated", "0") as daemon, Client(daemon.socket) as c:
        if not c.devices():  # no board here: nothing to serve, and loads say why
            with pytest.raises(RemoteError, match="NO_DEVICE"):
                c.load(tiny_model())


def test_akida_stats_json_and_prometheus_endpoint(tmp_path: Path) -> None:
    with Akidad(tmp_path, "--metrics", "127.0.0.1:0") as daemon, Client(daemon.socket) as c:
        model = tiny_model()
        remote = c.load(model)
        remote.forward_many([random_input(model, 1, s) for s in range(10)])
        out = subprocess.run([sys.executable, "-m", "akida_rt.cli.main", "stats", "--json",
                              "--socket", str(daemon.socket)], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        stats = json.loads(out.stdout)
        dev = stats["devices"][0]
        assert dev["meter"]["frames"] == 10 and dev["meter"]["latency_ms"]["p50"] > 0
        assert dev["driver"]["reloads"] >= 1
        text = subprocess.run([sys.executable, "-m", "akida_rt.cli.main", "top", "--count", "1",
                               "--socket", str(daemon.socket)], capture_output=True, text=True,
                              cwd=ROOT, timeout=60).stdout  # fmt: skip
        assert "(simulated)" in text and "p99 ms" in text
        lines = run_akida("top", "--count", "2", "--interval", "0.05", "--json",
                          "--socket", str(daemon.socket)).stdout.splitlines()  # fmt: skip
        assert len(lines) == 2
        assert all(json.loads(line)["devices"][0]["meter"]["frames"] == 10 for line in lines)
        port = int(re.search(r"127\.0\.0\.1:(\d+)/metrics", daemon.log()).group(1))
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert b"# TYPE akida_device_frames_total counter" in body
        assert re.search(rb'akida_device_frames_total\{device="[^"]+"\} 10\.0', body)


def test_state_blobs_are_private_and_interrupted_writes_are_cleaned(tmp_path: Path) -> None:
    from akida_rt.daemon.store import StateStore

    store = StateStore(tmp_path / "state")
    store.put(1000, "weights.bin", b"abc")
    blob = tmp_path / "state" / "users" / "1000" / "weights.bin"
    assert blob.stat().st_mode & 0o777 == 0o600 and store.get(1000, "weights.bin") == b"abc"
    leftover = blob.with_name(".weights.bin.x1y2z3.tmp")  # as a crash mid-write leaves it
    leftover.write_bytes(b"partial")
    StateStore(tmp_path / "state")
    assert not leftover.exists() and store.keys(1000) == ["weights.bin"]
