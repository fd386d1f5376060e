"""akidad's command-line values, checked before anything starts: one line per bad value.

Each check names the option, the value and the fix; akidad exits 2 without booting a device.
"""

from __future__ import annotations

import argparse
import logging
import stat
import tomllib
from pathlib import Path
from typing import NoReturn

from akida_rt.errors import DaemonError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the option and where help is; exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _host_port(option: str, value: str, example: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise DaemonError(f"{option} {value!r}: give {example} with a port of 0..65535")
    if host.startswith("tcp://") or "/" in host:
        raise DaemonError(f"{option} {value!r}: give {example} (a host name or address)")


def _existing_file(option: str, path: Path) -> None:
    if not path.exists():
        raise DaemonError(f"{option} {path}: no such file; name an existing file")
    if path.is_dir():
        raise DaemonError(f"{option} {path}: is a directory; name a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise DaemonError(f"{option} {path}: cannot read it ({exc.strerror})") from None


def _not_a_file(option: str, path: Path, want: str) -> None:
    if path.exists() and not path.is_dir():
        raise DaemonError(f"{option} {path}: is a file, not a directory; name {want}")


def _named(args: argparse.Namespace) -> argparse.Namespace:
    """The options under their option names (the parser stores them by setting name)."""
    names = {"socket": "socket_path", "simulated": "simulated_devices", "metrics": "metrics_listen"}
    values = {k: getattr(args, v, getattr(args, k, None)) for k, v in names.items()}
    for key in ("config", "state_dir", "tenant_dir", "socket_mode", "log_level", "listen",
                "tls_cert", "tls_key", "tls_ca", "tls_crl"):  # fmt: skip
        values[key] = getattr(args, key, None)
    return argparse.Namespace(**values)


def check(args: argparse.Namespace) -> None:
    """Refuse a bad command-line value before the daemon starts.

    Raises:
        DaemonError: naming the option, the value and what would be accepted.
    """
    args = _named(args)
    if args.socket is not None:
        path = Path(args.socket)
        if str(path) in ("", "."):
            raise DaemonError("--socket: give a socket file path")
        if path.is_dir():
            raise DaemonError(f"--socket {path}: is a directory; name a socket file in it")
        if path.exists() and not path.is_symlink() and not stat.S_ISSOCK(path.stat().st_mode):
            raise DaemonError(
                f"--socket {path}: is a file that is not a socket; akidad replaces only a "
                "stale socket: name a new path, or move that file away"
            )
    if args.config is not None:
        _existing_file("--config", Path(args.config))
        try:
            tomllib.loads(Path(args.config).read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DaemonError(f"--config {args.config}: not a TOML file ({exc})") from None
    if args.state_dir is not None:
        _not_a_file("--state-dir", Path(args.state_dir), "a directory (it is created if missing)")
    if args.tenant_dir is not None:
        _not_a_file("--tenant-dir", Path(args.tenant_dir), "the device plugin's share directory")
    if args.socket_mode is not None:
        try:
            mode = int(str(args.socket_mode), 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise DaemonError(
                f"--socket-mode {args.socket_mode!r}: give an octal mode such as 0660"
            )
    if args.log_level is not None and str(args.log_level).upper() not in LEVELS:
        raise DaemonError(f"--log-level {args.log_level!r}: give one of {', '.join(LEVELS)}")
    if args.metrics is not None:
        _host_port("--metrics", args.metrics, "HOST:PORT such as 127.0.0.1:9464")
    if args.listen is not None:
        _host_port("--listen", args.listen.removeprefix("tcp://"), "tcp://ADDR:PORT")
    for part in ("cert", "key", "ca", "crl"):
        value = getattr(args, f"tls_{part}")
        if value is not None:
            _existing_file(f"--tls-{part}", Path(value))
    if isinstance(args.simulated, int) and args.simulated > 64:
        raise DaemonError(f"--simulated {args.simulated}: at most 64 simulated boards")
    logging.getLogger(__name__).debug("command line checked")
