"""AKIDA_VISIBLE_DEVICES (set by the device plugin or CDI in a container): akida_rt lists
exactly the boards it names, in that order, and fails, naming it, rather than fall back
to another board or to a simulator. (The CLI side: tests/test_device_plugin.py runs
`akida devices` with the env a plugin Allocate returned.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, os
import akida_rt
from akida_rt.errors import DeviceNotFound

def urls():
    try:
        return [d.url for d in akida_rt.devices()]
    except DeviceNotFound as exc:
        return str(exc)

both = urls()
out = {"all": both}
for name, value in (("second", both[1]), ("swapped", f"{both[1]}, {both[0]}"),
                    ("missing", "pcie:///dev/akida9"), ("empty", " ")):
    os.environ["AKIDA_VISIBLE_DEVICES"] = value
    out[name] = urls()
print(json.dumps(out))
"""


def test_discovery_lists_exactly_the_named_boards(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AKIDA_VISIBLE_DEVICES"}
    env |= {"AKIDA_SIM_BOARDS": "pcie:2", "TMPDIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    first, second = got["all"]
    assert first.startswith("pcie://") and first != second
    assert got["second"] == [second]
    assert got["swapped"] == [second, first]
    assert "AKIDA_VISIBLE_DEVICES" in got["missing"] and "/dev/akida9" in got["missing"]
    assert got["empty"] == [first, second]  # blank means unset


def test_per_board_variables_merge_after_the_list_in_name_order(monkeypatch) -> None:
    """CDI gives each board its own variable (two devices cannot share one); discovery
    merges them, dropping repeats (a board asked for by position and by id)."""
    from akida_rt.driver.discovery import visible_urls

    for key in [k for k in os.environ if k.startswith("AKIDA_VISIBLE_DEVICES")]:
        monkeypatch.delenv(key)
    assert visible_urls() is None
    monkeypatch.setenv("AKIDA_VISIBLE_DEVICES_USB_SN2", "usb://1e7c:bca1?serial=SN2")
    monkeypatch.setenv("AKIDA_VISIBLE_DEVICES_PCIE_0000_01_00_0", "pcie:///dev/akida0")
    assert visible_urls() == ["pcie:///dev/akida0", "usb://1e7c:bca1?serial=SN2"]
    monkeypatch.setenv("AKIDA_VISIBLE_DEVICES", "usb://1e7c:bca1?serial=SN2")
    assert visible_urls() == ["usb://1e7c:bca1?serial=SN2", "pcie:///dev/akida0"]
