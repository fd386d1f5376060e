"""akida-device-plugin against a kubelet stand-in built from kubelet's official API
(tests/official_kubelet.py): the real plugin process (simulated boards behind the real
PCIe and USB transports) and a gRPC kubelet on a Unix socket that wipes the folder when
it starts and dials the plugin back before it answers Register.

Registration, ListAndWatch, Allocate, GetPreferredAllocation, health within 2 s of the
simulator's unplug and replug, re-registration after every kind of kubelet restart
(including the orders that used to stall it for good), SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")

from akida_rt.firmware_sim.control import request as sim_control  # noqa: E402

from .official_kubelet import OfficialKubelet  # noqa: E402

PCIE, USB = "pcie-0000-01-00.0", "usb-SIMU0001"
BOTH_HEALTHY = {PCIE: "Healthy", USB: "Healthy"}


class Plugin:
    """The plugin as a subprocess, with its simulated boards' control socket."""

    def __init__(self, folder: Path, *flags: str, boards: str = "pcie:1,usb:1") -> None:
        self.folder = folder
        (folder / "sim").mkdir(exist_ok=True)
        self.control = folder / "sim" / "control.sock"
        self.log = folder / "plugin.log"
        env = {k: v for k, v in os.environ.items() if k != "AKIDA_VISIBLE_DEVICES"}
        env |= {
            "AKIDA_SIM_BOARDS": boards,
            "AKIDA_SIM_CONTROL": str(self.control),
            "TMPDIR": str(folder / "sim"),  # its own simulated system root
        }
        cmd = [sys.executable, "-m", "akida_rt.k8s.main",
               "--kubelet-socket", str(folder / "kubelet.sock"), *flags]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def sim(self, line: str) -> None:
        deadline = time.monotonic() + 10
        while not self.control.exists():
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.05)
        assert sim_control(self.control, line).startswith("ok"), line

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))  # short: Unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(folder: Path) -> Iterator[tuple[OfficialKubelet, Plugin]]:
    kubelet = OfficialKubelet(folder).start()
    plugin = Plugin(folder, "--simulated")
    try:
        yield kubelet, plugin
    finally:
        kubelet.stop()
        if plugin.stop() != 0:
            print(plugin.output())


def test_registers_lists_the_boards_and_allocates_them(cluster) -> None:
    kubelet, _ = cluster
    reg = kubelet.wait_registered()
    assert (reg.version, reg.resource_name, reg.endpoint) == (
        "v1beta1", "brainchip.com/akida", "akida.sock",
    )  # fmt: skip
    assert kubelet.options[0].get_preferred_allocation_available
    assert not kubelet.options[0].pre_start_required
    kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)

    pcie = kubelet.allocate(PCIE)
    (node,) = pcie.devices
    assert node.container_path == "/dev/akida0" and node.permissions == "rw"
    assert node.host_path.endswith("/dev/akida0") and Path(node.host_path).exists()
    assert dict(pcie.envs) == {"AKIDA_VISIBLE_DEVICES": "pcie:///dev/akida0"}

    usb = kubelet.allocate(USB)
    assert [d.host_path for d in usb.devices] == ["/dev/bus/usb/001/001"]
    assert dict(usb.envs) == {"AKIDA_VISIBLE_DEVICES": "usb://1e7c:bca1?serial=SIMU0001"}
    both = kubelet.allocate(PCIE, USB)
    assert len(both.devices) == 2
    assert both.envs["AKIDA_VISIBLE_DEVICES"].split(",") == [
        "pcie:///dev/akida0", "usb://1e7c:bca1?serial=SIMU0001",
    ]  # fmt: skip

    with pytest.raises(grpc.RpcError) as err:
        kubelet.allocate("pcie-9999")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "pcie-9999" in err.value.details() and PCIE in err.value.details()

    api = kubelet.api
    preferred = kubelet.plugin_call(
        "GetPreferredAllocation",
        api.PreferredAllocationRequest(
            container_requests=[
                api.ContainerPreferredAllocationRequest(
                    available_deviceIDs=[USB, PCIE],
                    must_include_deviceIDs=[USB],
                    allocation_size=2,
                )
            ]
        ),
    )
    assert list(preferred.container_responses[0].deviceIDs) == [USB, PCIE]
    kubelet.plugin_call("PreStartContainer", api.PreStartContainerRequest(devices_ids=[PCIE]))


def test_the_allocated_env_gives_akida_rt_in_the_container_exactly_that_board(
    cluster, folder: Path
) -> None:
    kubelet, _ = cluster
    kubelet.wait_registered()
    kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
    envs = dict(kubelet.allocate(USB).envs)
    # The "container": another process with the same boards plugged in, and the env.
    env = {k: v for k, v in os.environ.items() if k != "AKIDA_VISIBLE_DEVICES"}
    env |= {"AKIDA_SIM_BOARDS": "pcie:1,usb:1", "TMPDIR": str(folder), **envs}
    out = subprocess.run([sys.executable, "-m", "akida_rt", "devices", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [d["url"] for d in json.loads(out.stdout)] == ["usb://1e7c:bca1?serial=SIMU0001"]


def test_a_board_that_vanishes_turns_unhealthy_within_2s_and_healthy_when_back(cluster) -> None:
    kubelet, plugin = cluster
    kubelet.wait_registered()
    kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
    for board, serial, other in ((PCIE, "SIMP0001", USB), (USB, "SIMU0001", PCIE)):
        for op, health in (("unplug", "Unhealthy"), ("replug", "Healthy")):
            start = time.monotonic()
            plugin.sim(f"{op} {serial}")
            seen, devices = kubelet.wait_devices(
                lambda d, b=board, h=health: d.get(b) == h, timeout_s=5
            )
            assert seen - start < 2.0, (board, op, seen - start)
            assert devices[other] == "Healthy"  # the other board is untouched
            kubelet.forget_lists()


@pytest.mark.parametrize(
    ("gap_s", "crash"),
    [
        (0.0, False),  # kubelet.sock goes and comes back at once
        (0.6, False),  # gone for longer than the plugin's poll: it used to stall for good
        (1.5, False),
        (0.6, True),  # kubelet killed: its socket file stays until the new one wipes it
    ],
)
def test_kubelet_restart_means_a_new_registration_and_watch(
    cluster, gap_s: float, crash: bool
) -> None:
    kubelet, _ = cluster
    kubelet.wait_registered()
    kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
    kubelet.stop(crash=crash)
    time.sleep(gap_s)
    start = time.monotonic()
    kubelet.start()  # wipes the plugin's socket, then listens
    assert "akida.sock" in kubelet.wiped
    reg = kubelet.wait_registered(count=2, timeout_s=8)
    assert time.monotonic() - start < 3, "re-registration took too long"
    assert reg.resource_name == "brainchip.com/akida"
    kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
    assert kubelet.allocate(PCIE).devices[0].container_path == "/dev/akida0"
    assert kubelet.refused == [], kubelet.refused


def test_a_plugin_started_before_kubelet_registers_once_kubelet_wipes_and_listens(
    folder: Path,
) -> None:
    plugin = Plugin(folder, "--simulated")
    kubelet = OfficialKubelet(folder)
    try:
        deadline = time.monotonic() + 10
        while not (folder / "akida.sock").exists():  # serving, no kubelet yet
            assert plugin.proc.poll() is None and time.monotonic() < deadline, plugin.output()
            time.sleep(0.05)
        time.sleep(0.5)
        kubelet.start()  # removes akida.sock first, as kubelet's device manager does
        assert kubelet.wiped == ["akida.sock"]
        kubelet.wait_registered(timeout_s=5)
        kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
        assert kubelet.refused == []
    finally:
        kubelet.stop()
        assert plugin.stop() == 0, plugin.output()


def test_waits_for_kubelet_then_exits_cleanly_on_sigterm(folder: Path) -> None:
    plugin = Plugin(folder, "--simulated")
    try:
        deadline = time.monotonic() + 10
        while "waiting for kubelet" not in plugin.output():  # serving, no kubelet yet
            assert plugin.proc.poll() is None and time.monotonic() < deadline, plugin.output()
            time.sleep(0.05)
        kubelet = OfficialKubelet(folder).start()
        kubelet.wait_registered()
        kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
        start = time.monotonic()
        assert plugin.stop() == 0, plugin.output()
        assert time.monotonic() - start < 5
        assert not (folder / "akida.sock").exists()
        with kubelet._cond:
            assert kubelet._cond.wait_for(lambda: kubelet.watches[-1].ended, 5)
        assert "SIGTERM: stopping" in plugin.output() and "Traceback" not in plugin.output()
        kubelet.stop()
    finally:
        plugin.stop()


def test_simulated_boards_are_offered_only_with_the_flag(folder: Path) -> None:
    kubelet = OfficialKubelet(folder).start()
    plugin = Plugin(folder)
    try:
        kubelet.wait_registered()
        deadline = time.monotonic() + 10
        while plugin.output().count("not offered without --simulated") < 2:  # both seen
            assert time.monotonic() < deadline, plugin.output()
            time.sleep(0.05)
        time.sleep(0.6)  # and a scan after that
        assert [lst for _, lst in kubelet.watches[-1].lists] == [{}]
        assert "simulated chip: not offered without --simulated" in plugin.output()
    finally:
        assert plugin.stop() == 0
        kubelet.stop()


def test_akidad_socket_mode_mounts_the_socket_instead_of_nodes(folder: Path) -> None:
    from tests.daemon_harness import Akidad

    kubelet = OfficialKubelet(folder).start()
    with Akidad(folder, "--simulated", "1") as daemon:
        plugin = Plugin(folder, "--simulated", "--akidad-socket", str(daemon.socket))
        try:
            kubelet.wait_registered()
            kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)  # akidad answers: as they are
            got = kubelet.allocate(PCIE)
            assert not got.devices
            assert dict(got.envs) == {"AKIDA_SOCKET": str(daemon.socket)}
            (mount,) = got.mounts
            assert (mount.host_path, mount.container_path, mount.read_only) == (
                str(daemon.socket.parent), str(daemon.socket.parent), True,
            )  # fmt: skip
            kubelet.forget_lists()
            daemon.stop()  # pods cannot use boards that akidad no longer runs
            kubelet.wait_devices(lambda d: set(d.values()) == {"Unhealthy"}, timeout_s=5)
        finally:
            assert plugin.stop() == 0, plugin.output()
            kubelet.stop()


def test_sharing_needs_akidad_and_says_so(folder: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "akida_rt.k8s.main", "--shares", "2"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "akida-device-plugin: error: --shares needs akidad: add --akidad-socket (and --tenant-dir)"
    )


USB_URL = "usb://1e7c:bca1?serial=SIMU0001"
NOTE = "usb-1e7c-bca1-serial-SIMU0001"  # driver.health.note_name(USB_URL)
CONTAINER = """
import sys
from akida_rt.driver import discovery
from akida_rt.driver.device import Timeouts
assert sys.argv[1] in discovery.discover_urls()  # attaches the simulated boards
import numpy as np
from akida_rt.model import zoo
dev = discovery.open_device(sys.argv[1], timeouts=Timeouts().scaled(0.05))
model = zoo.digits_cnn()
model.map(dev)  # a hung chip shows in its work: registers still answer identify
x = np.zeros((1, *model.input_shape), np.uint8)
print("ready", flush=True)
for _ in sys.stdin:
    try:
        model.forward(x)
        print("ok", flush=True)
    except Exception as exc:
        print("fault", type(exc).__name__, flush=True)
"""


def test_a_board_that_times_out_in_its_container_turns_unhealthy_and_back(folder: Path) -> None:
    """Plugin mode: the driver in the container that owns the board reports its timeouts
    through the folder Allocate mounted; kubelet sees the board Unhealthy, then Healthy
    once the driver sees it answer again."""
    kubelet = OfficialKubelet(folder).start()
    plugin = Plugin(folder, "--simulated", "--health-dir", str(folder / "health"))
    try:
        kubelet.wait_registered()
        kubelet.wait_devices(lambda d: d == BOTH_HEALTHY)
        got = kubelet.allocate(USB)
        assert dict(got.envs)["AKIDA_HEALTH_DIR"] == "/run/akida-health"
        (mount,) = got.mounts
        assert mount.container_path == f"/run/akida-health/{NOTE}"
        assert mount.host_path == str(folder / "health" / USB) and not mount.read_only
        # The container: its own process and simulated board; the bind mount a symlink.
        root = folder / "ctr"
        (root / "health").mkdir(parents=True)
        (root / "health" / NOTE).symlink_to(mount.host_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AKIDA_VISIBLE")}
        env |= {"AKIDA_SIM_BOARDS": "usb:1", "TMPDIR": str(root),
                "AKIDA_SIM_CONTROL": str(root / "control.sock"),
                "AKIDA_HEALTH_DIR": str(root / "health")}  # fmt: skip
        ctr = subprocess.Popen([sys.executable, "-c", CONTAINER, USB_URL], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert ctr.stdin is not None and ctr.stdout is not None
        try:
            assert ctr.stdout.readline().strip() == "ready"
            kubelet.forget_lists()
            for op, answer, health in (
                ("hang", "fault", "Unhealthy"),
                ("recover", "ok", "Healthy"),
            ):
                assert sim_control(root / "control.sock", f"{op} SIMU0001").startswith("ok")
                ctr.stdin.write("\n")
                ctr.stdin.flush()
                assert ctr.stdout.readline().split()[0] == answer
                start = time.monotonic()
                seen, devices = kubelet.wait_devices(lambda d, h=health: d[USB] == h, 5)
                assert seen - start < 2.0 and devices[PCIE] == "Healthy"
        finally:
            ctr.kill()
            ctr.wait()
        assert "driver in the container: TransportTimeout" in plugin.output()
    finally:
        kubelet.stop()
        assert plugin.stop() == 0, plugin.output()


def _plugin_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "akida_rt.k8s.main", *argv],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_config_file_sets_the_options_and_the_command_line_wins(folder: Path) -> None:
    from akida_rt.k8s.main import parse_args

    config = folder / "plugin.toml"
    config.write_text(
        "[akida-device-plugin]\n"
        'akidad-socket = "/run/akida/akida.sock"\ntenant-dir = "/run/akida/tenants"\n'
        'shares = 4\nmetrics = ":9465"\nsimulated = true\n'
    )
    args = parse_args(["--config", str(config)])
    assert (args.akidad_socket, args.tenant_dir, args.shares) == (
        "/run/akida/akida.sock", "/run/akida/tenants", 4,
    )  # fmt: skip
    assert args.simulated and args.metrics == ":9465"
    assert parse_args(["--config", str(config), "--shares", "2"]).shares == 2
    for body, error in (
        ("shares = 4\n", "no [akida-device-plugin] table"),
        ("[akida-device-plugin]\nshare = 4\n", "unknown key 'share'; known: akidad-socket"),
        ("[akida-device-plugin]\nshares = 99\n", "shares: must be a whole number within 1..64"),
        ("[akida-device-plugin]\nsimulated = 1\n", "simulated must be true or false"),
        ("[akida-device-plugin]\nmetrics = 9465\n", "metrics: expected HOST:PORT or :PORT"),
        ("[akida-device-plugin\n", "not TOML"),
    ):
        config.write_text(body)
        out = _plugin_cli("--config", str(config))
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"akida-device-plugin: error: --config {config}: "), last
        assert error in last, last
