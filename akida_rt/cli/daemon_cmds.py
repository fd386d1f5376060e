"""`akida service install`, `akida stats` and `akida top`: the daemon from the command line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from akida_rt.cli.args import float_range, int_range
from akida_rt.cli.output import emit_json, table

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
WINDOW_S = 5.0  # the window of akidad's fps figures (daemon/metrics.py)


def register(sub: Any) -> None:
    p = sub.add_parser("service", help="install the akidad systemd units")
    ssub = p.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    inst = ssub.add_parser("install", help="write akidad.service and akidad.socket")
    inst.add_argument("--user", action="store_true", help="user units (~/.config/systemd/user)")
    inst.add_argument("--dir", type=Path, help="write the units here instead")
    inst.add_argument("--exec", dest="exec_path", help="the akidad command (default: found)")
    inst.add_argument("--json", action="store_true", help="machine-readable output")
    inst.set_defaults(func=cmd_install)

    for name, helptext in (("stats", "per-device and per-client counters from akidad"),
                           ("top", "live per-device and per-client fps, latency, power")):  # fmt: skip
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--socket", type=Path, help="daemon socket (default: found)")
        if name == "stats":
            q.add_argument("--json", action="store_true", help="machine-readable output")
            q.set_defaults(func=cmd_stats)
        else:
            q.add_argument("--interval", type=float_range(0.05, 3600), default=1.0,
                           help="seconds between updates (0.05..3600)")  # fmt: skip
            q.add_argument("--count", type=int_range(0), default=0,
                           help="stop after N updates (0: never)")  # fmt: skip
            q.add_argument("--json", action="store_true", help="one JSON object per update")
            q.set_defaults(func=cmd_top)


def akidad_command() -> str:
    """The command line that starts akidad from this installation."""
    found = shutil.which("akidad") or str(Path(sys.executable).parent / "akidad")
    if Path(found).exists():
        return found
    return f"{sys.executable} -m akida_rt.daemon"


def render_units(user: bool, exec_path: str | None = None) -> dict[str, str]:
    """The unit files' text, with ExecStart pointing at this installation's akidad."""
    units = resources.files("akida_rt.daemon") / "units"
    suffix = "-user" if user else ""
    command = exec_path or akidad_command()
    return {
        "akidad.service": (units / f"akidad{suffix}.service")
        .read_text()
        .replace("@AKIDAD@", command),
        "akidad.socket": (units / f"akidad{suffix}.socket").read_text(),
    }


# Sandboxing options that hide a directory tree from the service, and the trees they hide.
HIDDEN_BY = {
    "PrivateTmp": ("/tmp/", "/var/tmp/"),
    "ProtectHome": ("/home/", "/root/", "/run/user/"),
}


def unit_warnings(service: str) -> list[str]:
    """Why a rendered akidad.service cannot start: its ExecStart inside a tree it hides."""
    options = dict(
        line.split("=", 1) for line in service.splitlines() if "=" in line and line[0].isalpha()
    )
    command = options.get("ExecStart", "").split()
    exe = command[0] if command else ""
    warnings = []
    for option, trees in HIDDEN_BY.items():
        if options.get(option, "no").strip() not in ("yes", "true", "tmpfs"):
            continue
        for tree in trees:
            if exe.startswith(tree):
                warnings.append(
                    f"ExecStart {exe} lies under {tree} but the unit sets {option}="
                    f"{options[option].strip()}, so akidad cannot start: install akida-rt "
                    "outside it (e.g. a venv in /opt/akida) and pass --exec, or use --user"
                )
    return warnings


def user_bus() -> bool:
    """True when systemctl --user can reach a user manager (its bus socket exists)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    return runtime is not None and Path(runtime, "bus").exists()


def cmd_install(args: argparse.Namespace) -> int:
    if args.dir is not None:
        target = args.dir
    elif args.user:
        target = Path.home() / ".config" / "systemd" / "user"
    else:
        target = SYSTEM_UNIT_DIR
    target.mkdir(parents=True, exist_ok=True)
    from akida_rt.format.program import atomic_write

    written = []
    units = render_units(args.user, args.exec_path)
    warnings = unit_warnings(units["akidad.service"])
    for name, text in units.items():
        atomic_write(target / name, text.encode())
        written.append(str(target / name))
    scope = "--user " if args.user else ""
    steps = [f"systemctl {scope}daemon-reload && systemctl {scope}enable --now akidad.socket"]
    if args.user and not user_bus():
        steps = [
            "this session has no systemd user bus ($XDG_RUNTIME_DIR/bus), so systemctl --user "
            "cannot reach a user manager here: log in through a normal session (or run "
            "`loginctl enable-linger $USER` as root, then log in again) and run: " + steps[0],
            "or, without systemd: akidad --user &",
        ]
    if not args.user:
        steps.append("groupadd --system akida; usermod -aG akida USER (clients need the group)")
    if args.json:
        emit_json({"written": written, "next": steps, "warnings": warnings})
        return 0
    for warning in warnings:
        print(f"akida service install: warning: {warning}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    print("next: " + "\n      ".join(steps))
    return 0


def _stats(socket_path: Path | None) -> dict[str, Any]:
    from akida_rt.client.client import Client

    with Client(socket_path, name="akida-stats", retry_s=0) as client:
        return client.stats()


def render_stats(stats: dict[str, Any], recent: dict[str, Any] | None = None) -> str:
    """The text view of a stats snapshot (what `akida top` redraws). `recent`: per device
    id, power over top's last interval and its history (a sparkline column)."""
    d = stats["daemon"]
    lines = [
        f"akidad pid {d['pid']}  up {d['uptime_s']:.0f}s  sessions {stats['sessions']}  "
        f"outstanding {stats['outstanding']}{'  DRAINING' if d['draining'] else ''}",
        "",
    ]
    rows = []
    for dev in stats["devices"]:
        m, drv = dev["meter"], dev.get("driver", {})
        power, energy = drv.get("power_mw"), drv.get("energy_per_inference_mj")
        if recent is not None:  # top: this interval's power, "idle" when the board did nothing
            mine = recent.get(dev["id"], {})
            power, energy = mine.get("power_mw"), mine.get("energy_mj_per_frame")
        rows.append([
            dev["id"] + (" (simulated)" if dev["simulated"] else ""), dev["state"],
            f"{m['fps']:.1f}", "-" if drv.get("fps") is None else f"{drv['fps']:.1f}",
            f"{m['latency_ms']['p50']:.2f}", f"{m['latency_ms']['p99']:.2f}",
            ("idle" if recent is not None else "-") if power is None else f"{power:.1f}", "-" if energy is None else f"{energy:.4f}",
            str(drv.get("reloads", "-")), str(dev["queued_frames"]),
        ] + ([(recent.get(dev["id"], {}).get("spark") or "idle")] if recent is not None else []))  # fmt: skip
    # fps: frames served over the last few seconds (akida run's host fps is over its run);
    # power and mJ/frame: what the device measured, as akida run reports them.
    # board fps: frames over the device's host-visible time inferring (modelled when simulated).
    header = ["device", "state", f"fps ({WINDOW_S:g} s)", "board fps", "p50 ms", "p99 ms", "power mW",
              "mJ/frame", "reloads", "queue"]  # fmt: skip
    if recent is not None:
        header += ["power history"]
    lines.append(table(rows, header))
    lines.append("")
    rows = [
        [str(c["client_id"]), str(c["pid"]), str(c["uid"]), c["name"], str(c["priority"]),
         f"{c['meter']['fps']:.1f}", f"{c['meter']['latency_ms']['p50']:.2f}",
         f"{c['meter']['latency_ms']['p99']:.2f}", str(c["meter"]["frames"]), str(c["in_flight"])]
        for c in stats["clients"]
    ]  # fmt: skip
    header = [
        "client",
        "pid",
        "uid",
        "name",
        "prio",
        f"fps ({WINDOW_S:g} s)",
        "p50 ms",
        "p99 ms",
        "frames",
        "busy",
    ]
    lines.append(table(rows, header))
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    stats = _stats(args.socket)
    if args.json:
        emit_json(stats)
    else:
        print(render_stats(stats))
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from akida_rt.model import run_figures
    from akida_rt.plots import sparkline

    shown = 0
    previous: dict[str, dict[str, Any]] | None = None
    history: dict[str, list[float | None]] = {}
    keys = _Keys()
    try:
        while True:
            snapshot = _stats(args.socket)
            recent: dict[str, Any] = {}
            for dev in snapshot["devices"]:
                now = run_figures.from_daemon_device(dev)
                before: dict[str, Any] | None = (previous or {}).get(dev["id"])
                step: dict[str, Any] | None = run_figures.delta(before, now) if before else None
                watts: float | None = step["power_mw"] if step and step["board_s"] > 0 else None
                past = history.setdefault(dev["id"], [])
                if step is not None:
                    past[:] = [*past, watts][-HISTORY:]
                recent[dev["id"]] = {
                    "power_mw": watts, "energy_mj_per_frame": step and step["energy_mj_per_frame"],
                    "spark": sparkline(past) if any(v is not None for v in past) else "",
                }  # fmt: skip
            previous = {d["id"]: run_figures.from_daemon_device(d) for d in snapshot["devices"]}
            if args.json:  # JSON Lines: one object per update
                print(json.dumps({**snapshot, "interval": recent}, default=str), flush=True)
            else:
                if sys.stdout.isatty():
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(render_stats(snapshot, recent), flush=True)
                if keys.active:
                    print("q: quit", flush=True)
            shown += 1
            if args.count and shown >= args.count:
                return 0
            if keys.wait_for_q(args.interval):
                return 0
    finally:
        keys.close()


HISTORY = 30  # intervals in top's power sparkline


class _Keys:
    """`q` quits top on a terminal: stdin in cbreak mode, restored on exit."""

    def __init__(self) -> None:
        self.active = False
        self._saved: Any = None
        if sys.stdin.isatty() and sys.stdout.isatty():
            import termios
            import tty

            self._saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())
            self.active = True

    def wait_for_q(self, seconds: float) -> bool:
        if not self.active:
            time.sleep(seconds)
            return False
        import select

        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sys.stdin], [], [], left)
            if ready and sys.stdin.read(1).lower() == "q":
                return True
        return False

    def close(self) -> None:
        if self.active:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self.active = False
