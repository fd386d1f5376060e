"""The CDI spec `akida cdi generate` writes, given to the real podman: the container gets
the boards' nodes and environment for every name form, two boards at once included, and
akida_rt inside sees both. Skips (saying why) without podman, root or an OCI runtime.

The simulated boards' nodes are plain files, so the test turns each hostPath of the spec
into a character device (1:3, like /dev/null) before podman reads it; the spec itself is
used as written. Podman 4.3 reads specs from /etc/cdi and /var/run/cdi only (no
cdi_spec_dirs), so the spec goes to /var/run/cdi under a name of its own, removed after.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_akida

PODMAN = shutil.which("podman")
RUNTIME = shutil.which("runc") or shutil.which("crun")
pytestmark = [
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed (apt-get install podman)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman with device nodes needs root"),
    pytest.mark.skipif(RUNTIME is None, reason="no OCI runtime (runc or crun)"),
]
BIN = ("/bin/sh", "/usr/bin/env", "/bin/ls")


def _rootfs(root: Path) -> Path:
    """A minimal root filesystem: sh, env and ls with their libraries."""
    for tool in BIN:
        paths = [tool] + [
            p for p in subprocess.run(["ldd", tool], capture_output=True, text=True).stdout.split()
            if p.startswith("/")
        ]  # fmt: skip
        for path in paths:
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(path), target)
    for folder in ("dev", "proc", "sys", "etc", "tmp"):
        (root / folder).mkdir(exist_ok=True)
    return root


def _podman_version() -> str:
    out = subprocess.run([PODMAN, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def podman_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cdi")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKIDA_VISIBLE_DEVICES")}
    env |= {"AKIDA_SIM_BOARDS": "pcie:2", "TMPDIR": str(tmp)}
    spec_path = tmp / "spec.json"
    res = run_akida("cdi", "generate", "--simulated", "-o", str(spec_path), env=env)
    assert res.returncode == 0, res.stderr
    spec = json.loads(spec_path.read_text())
    for device in spec["devices"]:
        for node in device["containerEdits"]["deviceNodes"]:
            host = Path(node["hostPath"])
            host.unlink(missing_ok=True)
            os.mknod(host, 0o666 | 0o020000, os.makedev(1, 3))
    cdi_dir = Path("/var/run/cdi")
    cdi_dir.mkdir(parents=True, exist_ok=True)
    installed = cdi_dir / f"akida-rt-test-{os.getpid()}.json"
    shutil.copy(spec_path, installed)
    root = _rootfs(tmp / "rootfs")
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)

    def run(*names: str) -> subprocess.CompletedProcess[str]:
        devices = [f"--device=brainchip.com/akida={n}" for n in names]
        cmd = [PODMAN, "--runtime", RUNTIME, "run", "--rm", "--network=none",
               f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={nproc}:{nproc}",
               *devices, "--rootfs", str(root),
               "/bin/sh", "-c", "env; ls -l /dev/"]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    probe = run("0")
    if probe.returncode != 0 and "OCI runtime" in probe.stderr and "CDI" not in probe.stderr:
        pytest.skip(f"{_podman_version()} cannot start containers here: {probe.stderr.strip()}")
    try:
        yield spec, run
    finally:
        installed.unlink(missing_ok=True)


def _seen(out: subprocess.CompletedProcess[str]) -> tuple[dict[str, str], list[str]]:
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    env = dict(x.split("=", 1) for x in lines if x.startswith("AKIDA_VISIBLE_DEVICES"))
    nodes = sorted(x.split()[-1] for x in lines if x.startswith("c") and "akida" in x)
    return env, nodes


def test_podman_accepts_the_spec_for_every_name_form(podman_run) -> None:
    spec, run = podman_run
    assert spec["cdiVersion"] == "0.5.0"
    for name in ("0", "pcie-0000-01-00.0"):
        env, nodes = _seen(run(name))
        assert env == {"AKIDA_VISIBLE_DEVICES_PCIE_0000_01_00_0": "pcie:///dev/akida0"}
        assert nodes == ["akida0"]
    env, nodes = _seen(run("all"))
    assert nodes == ["akida0", "akida1"] and len(env) == 2


def test_two_boards_in_one_container_are_both_visible_to_akida_rt(podman_run) -> None:
    _, run = podman_run
    env, nodes = _seen(run("0", "1"))
    assert nodes == ["akida0", "akida1"]
    # akida_rt's discovery, given the container's environment, lists both boards.
    probe = "from akida_rt.driver.discovery import visible_urls; print(visible_urls())"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AKIDA_VISIBLE_DEVICES")}
    out = subprocess.run([sys.executable, "-c", probe], env=clean | env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "['pcie:///dev/akida0', 'pcie:///dev/akida1']", out.stderr
