"""The built wheel, installed with the runtime only, runs every `akida` command.

The wheel is built from a copy of the sources without build isolation (and with no
setuptools warning). The fresh venv sees exactly the distributions the wheel requires,
linked from this environment with their own requirements, so nothing is downloaded and
a module missing from the runtime requirements fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (
    "akida_rt",
    "driver",
    "daemon",
    "firmware_sim",
    "tools",
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
)
TOOLCHAIN_HINT = "pip install 'akida-rt[tools]'"


def _requirements(dist: metadata.Distribution, extras: tuple[str, ...] = ()) -> list[str]:
    """Names of the distributions `dist` requires (with these extras), markers evaluated."""
    from packaging.requirements import Requirement

    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        env = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is None or any(req.marker.evaluate(e) for e in env):
            names.append(req.name)
    return names


def closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """These installed distributions and everything they require, by normalized name."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in found:
            continue
        dist = metadata.distribution(name)
        found[name] = dist
        todo += _requirements(dist)
    return found


def _link_distribution(dist: metadata.Distribution, site: Path) -> None:
    for entry in {Path(str(f)).parts[0] for f in dist.files or []}:
        if entry in ("..", "__pycache__") or entry.endswith(".pth"):
            continue
        target = site / entry
        if not target.exists():
            target.symlink_to(Path(str(dist.locate_file(entry))))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(path, src / name)
    out = src / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert "Warning" not in build.stdout + build.stderr, build.stdout + build.stderr
    (whl,) = out.glob("akida_rt-*.whl")
    return whl


@pytest.fixture(scope="module")
def runtime_venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and its runtime requirements, and nothing else."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in zf.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
    for dist in closure([re.split(r"[<>=!~ ;\[]", r)[0] for r in requires]).values():
        _link_distribution(dist, site)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return venv


def _run(venv: Path, cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AKIDA_SIM_BOARDS")}
    env["AKIDA_SOCKET"] = str(cwd / "no-daemon.sock")
    return subprocess.run(
        [str(venv / "bin" / cmd[0]), *cmd[1:]],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
    )  # fmt: skip


def test_runtime_only_install_runs_every_command(runtime_venv: Path, tmp_path: Path) -> None:
    probe = _run(runtime_venv, tmp_path, "python", "-c",
                 "import akida_rt, akida_rt.tools, sys; print(akida_rt.__file__); "
                 "print('keras' in sys.modules)")  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert str(runtime_venv) in probe.stdout and probe.stdout.split()[-1] == "False"
    assert _run(runtime_venv, tmp_path, "python", "-c", "import keras").returncode != 0

    ok = {
        ("akida", "--version"): "akida_rt 0.1.0",
        ("akidad", "--version"): "0.1.0",
        ("akida", "version", "--json"): '"program_format"',
        ("akida", "devices", "--json"): "sim://akd1000/0",
        ("akida", "sample", "-o", "s.akp"): "wrote s.akp",
        ("akida", "summary", "-m", "s.akp", "--json"): '"sequences"',
        ("akida", "run", "-m", "s.akp", "--json"): '"statistics"',
        ("akida", "report", "-m", "s.akp", "--json"): '"sequences"',
        ("akida", "service", "install", "--dir", "units", "--json"): "akidad.service",
    }
    for cmd, needle in ok.items():
        out = _run(runtime_venv, tmp_path, *cmd)
        assert out.returncode == 0 and needle in out.stdout, (cmd, out.stdout, out.stderr)
    doctor = _run(runtime_venv, tmp_path, "akida", "doctor", "--json")
    assert doctor.returncode in (0, 1) and "checks" in json.loads(doctor.stdout)

    (tmp_path / "m.keras").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip archive
    failing = {
        ("akida", "check", "-m", "m.keras"): TOOLCHAIN_HINT,
        ("akida", "quantize", "-m", "m.keras", "-o", "q.keras"): TOOLCHAIN_HINT,
        ("akida", "convert", "-m", "m.keras", "-o", "p.akp"): TOOLCHAIN_HINT,
        ("akida", "report", "-m", "m.keras"): TOOLCHAIN_HINT,
        ("akida", "report", "-m", "s.akp", "--dataset", "digits"): TOOLCHAIN_HINT,
        ("akida", "stats"): "no-daemon.sock",
        ("akida", "top", "--count", "1"): "no-daemon.sock",
    }
    for cmd, needle in failing.items():
        out = _run(runtime_venv, tmp_path, *cmd)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 1 and len(lines) == 1 and needle in lines[0], (cmd, out.stderr)
