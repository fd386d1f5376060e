"""`akida doctor` against fake sysfs trees and permission setups: each failure names its fix."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from akida_rt.driver.sim_rack import SimRack

from akida_rt.cli import doctor_cmds as doc
from akida_rt.cli.main import main

USER = 12345


def _system(root: Path, **kw) -> doc.System:
    base = dict(
        sysroot=root,
        uid=USER,
        gids={USER},
        env={"XDG_RUNTIME_DIR": str(root / "run-user")},
        group_gid=lambda name: None,
        group_members=lambda name: set(),
        user_name=lambda uid: "alice",
        libusb=lambda: "libusb-1.0.so",
        usb_boards=lambda: [],
    )
    base.update(kw)
    return doc.System(**base)


def _by_name(checks: list[doc.Check]) -> dict[str, doc.Check]:
    return {c.name: c for c in checks}


@pytest.fixture
def rack(tmp_path: Path):
    made = SimRack(tmp_path)
    made.add_pcie("D1", mem=1 << 20)
    yield made
    made.close()


def test_driver_not_loaded(tmp_path: Path) -> None:
    rack = SimRack(tmp_path, driver_loaded=False)
    try:
        rack.add_pcie("D1", mem=1 << 20)
        checks = _by_name(doc.run_checks(_system(tmp_path)))
    finally:
        rack.close()
    assert checks["pcie"].status == doc.OK and "0000:01:00.0" in checks["pcie"].detail
    kd = checks["kernel driver"]
    assert kd.status == doc.FAIL and "akida_dw_edma is not loaded" in kd.detail
    assert kd.fix == "sudo modprobe akida_dw_edma"
    assert checks["group"].status == doc.FAIL  # a board is here and the group is missing


def test_node_in_akida_group_but_user_is_not(rack: SimRack) -> None:
    node = rack.root / "dev" / "akida0"
    gid = node.stat().st_gid
    system = _system(rack.root, group_gid=lambda name: gid)
    checks = _by_name(doc.run_checks(system))
    assert checks["kernel driver"].status == doc.OK and "sim" in checks["kernel driver"].detail
    access = checks["access akida0"]
    assert access.status == doc.FAIL and "not in group akida" in access.detail
    assert "usermod -aG akida" in (access.fix or "")
    assert checks["group"].status == doc.FAIL and "usermod -aG akida" in (checks["group"].fix or "")


def test_node_without_our_rule_needs_the_udev_rule(rack: SimRack) -> None:
    checks = _by_name(doc.run_checks(_system(rack.root, group_gid=lambda name: 999_999)))
    access = checks["access akida0"]
    assert access.status == doc.FAIL and "99-akida.rules" in (access.fix or "")
    assert checks["udev rule"].status == doc.WARN and "udevadm" in (checks["udev rule"].fix or "")


def test_member_of_akida_passes_and_world_writable_node_warns(rack: SimRack) -> None:
    node = rack.root / "dev" / "akida0"
    gid = node.stat().st_gid
    rules = rack.root / "etc" / "udev" / "rules.d"
    rules.mkdir(parents=True)
    (rules / "99-akida.rules").write_text("# installed\n")
    system = _system(rack.root, gids={USER, gid}, group_gid=lambda name: gid)
    checks = _by_name(doc.run_checks(system))
    assert checks["access akida0"].status == doc.OK
    assert checks["group"].status == doc.OK and checks["udev rule"].status == doc.OK
    assert "node akida0" not in checks
    os.chmod(node, 0o666)
    warn = _by_name(doc.run_checks(system))["node akida0"]
    assert warn.status == doc.WARN and "0666" in warn.detail and "0660" in (warn.fix or "")


def test_added_to_group_but_session_is_older(tmp_path: Path) -> None:
    system = _system(tmp_path, group_gid=lambda name: 4242, group_members=lambda name: {"alice"})
    (check,) = doc.check_group(system)
    assert check.status == doc.FAIL and "log out and in" in (check.fix or "")


def test_libusb_missing_and_usb_permission_failures(tmp_path: Path) -> None:
    (check,) = doc.check_libusb(_system(tmp_path, libusb=lambda: None))
    assert check.status == doc.FAIL and "pip install libusb-package" in (check.fix or "")
    boards = [("1e7c:bca1 at 1:4 serial X", None), ("1e7c:bca1 at 1:5", "permission denied")]
    ok, good, bad = doc.check_libusb(_system(tmp_path, usb_boards=lambda: boards))
    assert (ok.status, good.status, bad.status) == (doc.OK, doc.OK, doc.FAIL)
    assert "99-akida.rules" in (bad.fix or "")


def test_daemon_socket(tmp_path: Path) -> None:
    system = _system(tmp_path)
    (missing,) = doc.check_daemon(system)
    assert missing.status == doc.WARN and "akidad.socket" in (missing.fix or "")
    assert "akidad --user" in (missing.fix or "")
    path = tmp_path / "run-user" / "akida" / "akida.sock"
    path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    try:
        (up,) = doc.check_daemon(system)
        assert up.status == doc.OK and str(path) in up.detail
    finally:
        server.close()
    (stale,) = doc.check_daemon(system)  # the file remains, nobody listens
    assert stale.status == doc.FAIL and f"rm {path}" in (stale.fix or "")
    other = tmp_path / "custom.sock"
    (env,) = doc.check_daemon(_system(tmp_path, env={"AKIDA_SOCKET": str(other)}))
    assert str(other) in env.detail


def test_cli_json_exit_code(rack: SimRack, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKIDA_SYSROOT", str(rack.root))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(rack.root / "run-user"))
    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    names = {c["name"] for c in report["checks"]}
    assert {"pcie", "kernel driver", "libusb", "daemon", "versions"} <= names
    assert code == (0 if report["ok"] else 1)
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail")
    main(["doctor"])
    text = capsys.readouterr().out
    assert "[  ok] kernel driver" in text and "versions: akida_rt" in text
