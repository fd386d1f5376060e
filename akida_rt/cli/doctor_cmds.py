"""`akida doctor [--json]`: checks what a host needs to reach Akida boards, with exact fixes.

Kernel driver and /dev/akidaN nodes, node permissions and `akida` group membership, the
udev rule, libusb for USB boards, the daemon socket and versions. The checks read the
machine through a `System` value, so tests run them against fake sysfs trees and
permission setups.
"""

from __future__ import annotations

import argparse
import grp
import os
import platform
import pwd
import shutil
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from akida_rt.cli import command_name

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass
class Check:
    """One finding: what was checked, the outcome and, when it failed, the exact fix."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def _group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _group_members(name: str) -> set[str]:
    try:
        return set(grp.getgrnam(name).gr_mem)
    except KeyError:
        return set()


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _probe_libusb() -> str | None:
    from akida_rt.driver import usb as usb_transport

    backend = usb_transport.libusb_backend()
    if backend is None:
        return None
    lib = getattr(getattr(backend, "lib", None), "_name", None) or "libusb-1.0"
    return str(lib)


def _probe_usb() -> list[tuple[str, str | None]]:
    """(board, error) for every Akida USB board pyusb sees."""
    from akida_rt.driver import usb as usb_transport
    from akida_rt.errors import AkidaError

    found: list[tuple[str, str | None]] = []
    for dev in usb_transport.iter_devices():
        name = f"{dev.idVendor:04x}:{dev.idProduct:04x} at {dev.bus}:{dev.address}"
        try:
            found.append((f"{name} serial {usb_transport.serial_of(dev)}", None))
        except AkidaError as exc:
            found.append((name, str(exc)))
    return found


@dataclass
class System:
    """The parts of the machine the checks read (the real one by default)."""

    sysroot: Path = Path("/")
    uid: int = field(default_factory=os.getuid)
    gids: set[int] = field(default_factory=lambda: {os.getgid(), *os.getgroups()})
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    group_gid: Callable[[str], int | None] = _group_gid
    group_members: Callable[[str], set[str]] = _group_members
    user_name: Callable[[int], str] = _user_name
    libusb: Callable[[], str | None] = _probe_libusb
    usb_boards: Callable[[], list[tuple[str, str | None]]] = _probe_usb


def _access(st: os.stat_result, system: System) -> bool:
    """Whether `system`'s user may read and write a file with this owner and mode."""
    if system.uid == 0:
        return True
    if st.st_uid == system.uid:
        return st.st_mode & 0o600 == 0o600
    if st.st_gid in system.gids:
        return st.st_mode & 0o060 == 0o060
    return st.st_mode & 0o006 == 0o006


def check_pcie(system: System) -> list[Check]:
    """Akida PCI functions, the kernel driver, the nodes and their permissions."""
    from akida_rt.driver import pcie, sysfs, udev

    found = sysfs.scan(system.sysroot)
    if not found:
        return [Check("pcie", INFO, "no Akida PCI function (1e7c:bca1, 1e7c:a500) in sysfs")]
    out = [Check("pcie", OK, ", ".join(f"{f.model} at {f.address}" for f in found))]
    if not sysfs.module_loaded(system.sysroot):
        fn = next(f for f in found if f.node is None) if any(not f.node for f in found) else None
        detail = pcie.driver_missing_message(fn) if fn else "akida_dw_edma is not loaded"
        out.append(Check("kernel driver", FAIL, detail, f"sudo modprobe {sysfs.KERNEL_DRIVER}"))
        return out
    version = sysfs.module_version(system.sysroot) or "unknown version"
    out.append(Check("kernel driver", OK, f"{sysfs.KERNEL_DRIVER} loaded ({version})"))
    akida_gid = system.group_gid(udev.GROUP)
    for fn in found:
        if fn.node is None:
            out.append(
                Check(
                    f"node {fn.address}", FAIL, pcie.driver_missing_message(fn),
                    f"echo {fn.address} | sudo tee /sys/bus/pci/drivers/{sysfs.KERNEL_DRIVER}/bind",
                )
            )  # fmt: skip
            continue
        try:
            st = os.stat(fn.node)
        except FileNotFoundError:
            out.append(
                Check(
                    f"node {fn.node.name}", FAIL, f"sysfs has {fn.node.name} but {fn.node} is missing",
                    "sudo udevadm trigger --subsystem-match=misc",
                )
            )  # fmt: skip
            continue
        out += _node_checks(fn.node, st, system, akida_gid)
    return out


def _node_checks(node: Path, st: os.stat_result, system: System, akida_gid: int | None) -> list:
    from akida_rt.driver import udev

    mode = stat.S_IMODE(st.st_mode)
    shown = f"{node} mode {mode:04o} group {st.st_gid}"
    checks = []
    if mode & 0o006:
        checks.append(
            Check(
                f"node {node.name}", WARN,
                f"{shown}: any local user can drive the board (0666-style rule installed?)",
                f"{udev.install_rule_fix()} (ours sets group {udev.GROUP}, mode 0660)",
            )
        )  # fmt: skip
    if _access(st, system):
        checks.append(Check(f"access {node.name}", OK, f"{shown}: read/write allowed"))
    elif akida_gid is None or st.st_gid != akida_gid:
        checks.append(
            Check(
                f"access {node.name}", FAIL, f"{shown}: permission denied", udev.install_rule_fix()
            )
        )
    else:
        checks.append(
            Check(
                f"access {node.name}", FAIL,
                f"{shown}: permission denied; you are not in group {udev.GROUP}",
                udev.join_group_fix(),
            )
        )  # fmt: skip
    return checks


def check_group(system: System) -> list[Check]:
    """The `akida` group exists and this user is in it (in this session, too)."""
    from akida_rt.driver import sysfs, udev

    gid = system.group_gid(udev.GROUP)
    if gid is None:
        status = FAIL if sysfs.scan(system.sysroot) else WARN  # matters once a board is here
        return [Check("group", status, f"group {udev.GROUP} does not exist", udev.join_group_fix())]
    user = system.user_name(system.uid)
    if gid in system.gids or system.uid == 0:
        return [Check("group", OK, f"{user} is in group {udev.GROUP}")]
    if user in system.group_members(udev.GROUP):
        return [
            Check(
                "group", FAIL, f"{user} was added to {udev.GROUP} but this session predates it",
                "log out and in again (or run: newgrp akida)",
            )
        ]  # fmt: skip
    return [Check("group", FAIL, f"{user} is not in group {udev.GROUP}", udev.join_group_fix())]


def check_udev_rule(system: System) -> list[Check]:
    """Our udev rule is installed."""
    from akida_rt.driver import udev

    for rules_dir in ("etc/udev/rules.d", "usr/lib/udev/rules.d", "lib/udev/rules.d"):
        path = system.sysroot / rules_dir / udev.RULE_NAME
        if path.exists():
            return [Check("udev rule", OK, f"{path}")]
    return [Check("udev rule", WARN, f"{udev.RULE_NAME} is not installed", udev.install_rule_fix())]


def check_libusb(system: System) -> list[Check]:
    """A libusb pyusb can load (for USB boards)."""
    lib = system.libusb()
    if lib is None:
        return [
            Check(
                "libusb", FAIL, "pyusb finds no libusb-1.0: USB boards cannot be used",
                "pip install libusb-package   (or: sudo apt install libusb-1.0-0)",
            )
        ]  # fmt: skip
    out = [Check("libusb", OK, lib)]
    for board, error in system.usb_boards():
        if error is None:
            out.append(Check("usb", OK, board))
        else:
            from akida_rt.driver import udev

            out.append(Check("usb", FAIL, f"{board}: {error}", udev.install_rule_fix()))
    return out


def socket_paths(system: System) -> list[Path]:
    """Where the daemon listens: $AKIDA_SOCKET, else the user and system locations."""
    if system.env.get("AKIDA_SOCKET"):
        return [Path(system.env["AKIDA_SOCKET"])]
    runtime = system.env.get("XDG_RUNTIME_DIR") or f"/tmp/akida-{system.uid}"
    return [Path(runtime) / "akida" / "akida.sock", system.sysroot / "run/akida/akida.sock"]


def check_daemon(system: System) -> list[Check]:
    """The daemon socket exists and accepts connections."""
    paths = socket_paths(system)
    for path in paths:
        if not path.exists():
            continue
        if not stat.S_ISSOCK(path.stat().st_mode):
            return [Check("daemon", FAIL, f"{path} is not a socket", f"sudo rm {path}")]
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            return [
                Check(
                    "daemon", FAIL, f"{path}: {exc.strerror or exc} (stale socket?)",
                    f"rm {path} and start the daemon: akidad --user (or: sudo systemctl start akidad.socket)",
                )
            ]  # fmt: skip
        finally:
            probe.close()
        return [Check("daemon", OK, f"listening on {path}")]
    where = " or ".join(str(p) for p in paths)
    return [
        Check(
            "daemon", WARN, f"no daemon socket at {where} (programs use devices in-process)",
            "sudo systemctl enable --now akidad.socket   (or, as a user: akidad --user &)",
        )
    ]  # fmt: skip


def check_versions(system: System) -> list[Check]:
    """Versions of everything on the path to a board."""
    from importlib.metadata import PackageNotFoundError, version

    from akida_rt import __version__
    from akida_rt.driver import sysfs

    parts = [f"akida_rt {__version__}", f"python {platform.python_version()}"]
    for dist in ("pyusb", "pyserial", "libusb-package"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} absent")
    parts.append(f"kernel {platform.release()}")
    module = sysfs.module_version(system.sysroot)
    if module:
        parts.append(f"{sysfs.KERNEL_DRIVER} {module}")
    return [Check("versions", INFO, ", ".join(parts))]


def check_command(system: System) -> list[Check]:
    """The `akida` on PATH is akida_rt's, not BrainChip's (akida_rt.cli.command_name)."""
    path = system.env.get("PATH")
    found = shutil.which("akida", path=path) if path else None
    if found is None:
        msg = "no `akida` on PATH; `python -m akida_rt` works"
        return [Check("command", INFO, msg, command_name.FIX)]
    who = command_name.owner(Path(found))
    if who == "akida_rt":
        return [Check("command", OK, f"{found} is akida_rt's")]
    what = "BrainChip's akida package" if who == "brainchip" else "another program"
    return [Check("command", WARN, f"{found} belongs to {what}, not akida_rt", command_name.FIX)]


CHECKS = (
    check_pcie,
    check_group,
    check_udev_rule,
    check_libusb,
    check_daemon,
    check_command,
    check_versions,
)


def run_checks(system: System | None = None) -> list[Check]:
    """Every check against `system` (the real machine when None)."""
    system = system or System(sysroot=Path(os.environ.get("AKIDA_SYSROOT", "/").split(":")[0]))
    return [c for check in CHECKS for c in check(system)]


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check drivers, permissions, libusb and the daemon")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from akida_rt.cli.output import emit_json

    checks = run_checks()
    failed = any(c.status == FAIL for c in checks)
    if args.json:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
        return 1 if failed else 0
    for c in checks:
        print(f"[{c.status:>4}] {c.name}: {c.detail}")
        if c.fix and c.status in (FAIL, WARN):
            print(f"       fix: {c.fix}")
    print("all required checks passed" if not failed else "some checks failed; see the fixes")
    return 1 if failed else 0
