"""AKIDA_VISIBLE_DEVICES (set by the device plugin or CDI in a container): akida_rt lists
exactly the boards it names, and fails, naming it, rather than fall back to another."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import run_akida


def devices(tmp_path: Path, **extra: str) -> tuple[int, list[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "AKIDA_VISIBLE_DEVICES"}
    env |= {"AKIDA_SIM_BOARDS": "pcie:2", "TMPDIR": str(tmp_path), **extra}
    res = run_akida("devices", "--json", env=env)
    urls = [d["url"] for d in json.loads(res.stdout)] if res.returncode == 0 else []
    return res.returncode, urls, res.stderr


def test_only_the_named_board_is_listed(tmp_path: Path) -> None:
    code, both, err = devices(tmp_path)
    assert code == 0 and len(both) == 2, err
    code, urls, err = devices(tmp_path, AKIDA_VISIBLE_DEVICES=both[1])
    assert (code, urls) == (0, [both[1]]), err
    code, urls, err = devices(tmp_path, AKIDA_VISIBLE_DEVICES=f"{both[1]},{both[0]}")
    assert (code, urls) == (0, [both[1], both[0]]), err


def test_a_missing_board_is_an_error_not_a_simulator(tmp_path: Path) -> None:
    code, _, err = devices(tmp_path, AKIDA_VISIBLE_DEVICES="pcie:///dev/akida9")
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "AKIDA_VISIBLE_DEVICES" in line and "/dev/akida9" in line
