"""The sdist carries the C sources and an install from it compiles akida_rt.native._kernels
(tests/test_wheel_install.py covers `pip wheel`; the editable install is the venv's own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("akida_rt", "driver", "daemon", "firmware_sim", "tools", "pyproject.toml",
           "setup.py", "MANIFEST.in", "README.md")  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def test_an_sdist_install_builds_the_kernels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(path, src / name)
    build = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
         "print(b.build_sdist(sys.argv[1]))", str(tmp_path / "dist")],
        cwd=src, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    sdist = tmp_path / "dist" / build.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"setup.py", "kernels.h", "events.c", "engine.c", "learning.c", "module.c"} <= names
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(sdist)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    (built,) = (site / "akida_rt" / "native").glob("_kernels*.so")
    probe = subprocess.run(
        [sys.executable, "-c", "import numpy as np; from akida_rt.native import _kernels as k; "
         "print(k.__file__); print(k.count_nonzero(np.array([0.0, 2.0, -1.0])))"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(built), "2"]
