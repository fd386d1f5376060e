"""`akida-device-plugin`: offers this node's Akida boards to kubelet as brainchip.com/akida.

Serves the DevicePlugin API on a socket in kubelet's device-plugin folder, registers with
kubelet, registers again when kubelet restarts (its socket is replaced, or ours is wiped),
and exits cleanly on SIGTERM. Logs go to stderr, one line each, without timestamps (the
container runtime or journald adds them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("akida_rt.k8s")
POLL_S = 0.2  # how often kubelet's socket and ours are checked


def build_parser() -> argparse.ArgumentParser:
    from akida_rt.k8s.plugin import ENDPOINT, KUBELET_SOCKET

    p = argparse.ArgumentParser(
        prog="akida-device-plugin",
        description="Kubernetes device plugin for Akida boards (resource brainchip.com/akida)",
    )
    p.add_argument("--config", metavar="FILE",
                   help="TOML file whose [akida-device-plugin] table sets any of these "
                        "options by their long names (kubelet-socket, shares, ...); flags "
                        "given on the command line win")  # fmt: skip
    p.add_argument("--kubelet-socket", default=KUBELET_SOCKET, metavar="PATH",
                   help=f"kubelet's registration socket (default {KUBELET_SOCKET}); the "
                        "plugin's own socket goes in the same folder")  # fmt: skip
    p.add_argument("--endpoint", default=ENDPOINT, metavar="NAME",
                   help=f"file name of the plugin's socket (default {ENDPOINT})")  # fmt: skip
    p.add_argument("--simulated", action="store_true",
                   help="also offer boards that identify as simulated chips ($AKIDA_SIM_BOARDS)")  # fmt: skip
    p.add_argument("--akidad-socket", metavar="PATH",
                   help="akidad runs the boards: their health comes from it, and containers "
                        "get this socket (and AKIDA_SOCKET) instead of device nodes, unless "
                        "--tenant-dir gives each its own")  # fmt: skip
    p.add_argument("--tenant-dir", metavar="DIR",
                   help="share boards through akidad's tenant sockets (akidad --tenant-dir "
                        "DIR): each container gets its own socket and tenant identity")  # fmt: skip
    p.add_argument("--health-dir", metavar="DIR",
                   help="plugin mode: give each container a folder per board under DIR, where "
                        "akida_rt's driver reports timeouts and device errors; such a board "
                        "turns Unhealthy until the faults stop")  # fmt: skip
    p.add_argument("--shares", type=_shares, default=1, metavar="N",
                   help="list each board N times (akidad modes only): up to N containers "
                        "share a board, akidad keeping them apart (default 1)")  # fmt: skip
    p.add_argument("--metrics", type=_listen, metavar="HOST:PORT",
                   help="serve the plugin's Prometheus metrics at http://HOST:PORT/metrics")  # fmt: skip
    p.add_argument("--interval", type=_interval, default=0.5, metavar="S",
                   help="seconds between board scans (default 0.5; health shows within 2x)")  # fmt: skip
    p.add_argument("--list", action="store_true",
                   help="print the boards that would be offered, and exit")  # fmt: skip
    p.add_argument("--json", action="store_true", help="with --list: machine-readable output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    return p


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.05 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be within 0.05..60 s, got {text}")
    return value


def _listen(text: str) -> str:
    from akida_rt.k8s.metrics import parse_listen

    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


NOT_IN_CONFIG = {"help", "config", "list", "json", "verbose"}


def config_defaults(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """The options a --config file sets, checked as the command line checks them
    (parser.error, one line naming the file and key, on anything wrong)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        parser.error(f"--config {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        parser.error(f"--config {path}: not TOML: {exc}")
    table = data.get(parser.prog)
    if not isinstance(table, dict):
        parser.error(f"--config {path}: no [{parser.prog}] table")
    actions = {a.dest: a for a in parser._actions if a.dest not in NOT_IN_CONFIG}
    values: dict[str, Any] = {}
    for key, value in table.items():
        action = actions.get(key.replace("-", "_"))
        if action is None:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            parser.error(f"--config {path}: unknown key {key!r}; known: {known}")
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                parser.error(f"--config {path}: {key} must be true or false")
        elif isinstance(value, dict | list | bool):
            parser.error(f"--config {path}: {key} must be a string or a number")
        elif callable(action.type):
            try:
                value = action.type(str(value))
            except argparse.ArgumentTypeError as exc:
                parser.error(f"--config {path}: {key}: {exc}")
        else:
            value = str(value)
        values[action.dest] = value
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line over the --config file over the defaults, checked together."""
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    if first.config:
        parser.set_defaults(**config_defaults(parser, first.config))
    args = parser.parse_args(argv)
    if args.shares > 1 and not (args.akidad_socket or args.tenant_dir):
        parser.error("--shares needs akidad: add --akidad-socket (and --tenant-dir)")
    if args.tenant_dir and not args.akidad_socket:
        parser.error("--tenant-dir needs --akidad-socket (the plugin reads board health there)")
    return args


def _shares(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number within 1..64, got {text!r}")
    return int(text)


def _list(args: argparse.Namespace) -> int:
    from akida_rt.k8s import boards

    offered = boards.offered(boards.scan(), args.simulated)
    if args.json:
        json.dump([b.as_dict() for b in offered], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for b in offered:
            print(f"{b.id}  {b.url}  {'Healthy' if b.healthy else 'Unhealthy: ' + b.problem}")
    return 0


def _kubelet_ident(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def serve(args: argparse.Namespace, stop: threading.Event) -> None:
    """Serve and stay registered until `stop` is set.

    Every pass checks our own socket first: kubelet removes every socket in its folder
    when it starts, which may be before or after it (re)creates kubelet.sock, and its
    Register dials our socket back, so registering with a wiped socket can never succeed.
    """
    import grpc

    from akida_rt.k8s.board_health import AkidadHealth, DriverNotes
    from akida_rt.k8s.inventory import Inventory
    from akida_rt.k8s.metrics import PluginMetrics
    from akida_rt.k8s.metrics import serve as serve_metrics
    from akida_rt.k8s.plugin import AkidaDevicePlugin, PluginServer, register
    from akida_rt.k8s.tenants import Tenants

    metrics = PluginMetrics()
    if args.akidad_socket and not args.tenant_dir:
        log.warning("pods share akidad's socket and are told apart by uid (a root pod is "
                    "akidad's administrator): add --tenant-dir to give each its own tenant")  # fmt: skip
    notes = DriverNotes(args.health_dir) if args.health_dir and not args.akidad_socket else None
    health = AkidadHealth(args.akidad_socket) if args.akidad_socket else notes
    inventory = Inventory(simulated=args.simulated, interval_s=args.interval,
                          health=health, on_change=lambda ident, _: metrics.health_changes.inc(ident))  # fmt: skip
    tenants = Tenants(args.tenant_dir) if args.tenant_dir else None
    servicer = AkidaDevicePlugin(inventory, akidad_socket=args.akidad_socket, tenants=tenants,
                                 shares=args.shares, metrics=metrics, notes=notes)  # fmt: skip
    http = serve_metrics(metrics, args.metrics) if args.metrics else None
    inventory.start()
    folder = os.path.dirname(os.path.abspath(args.kubelet_socket))
    server: PluginServer | None = None
    registered_with: tuple[int, int, int] | None = None
    waiting_logged = False
    try:
        while not stop.is_set():
            if tenants is not None:
                _, listed = inventory.snapshot()
                tenants.prepare([i for b in listed for i in servicer.share_ids(b.board.id)])
            if server is None or server.socket_gone():
                if server is not None:
                    log.warning("%s was removed (kubelet restarted?): serving again", server.path)
                    server.stop()
                server = PluginServer(servicer, folder, args.endpoint).start()
                registered_with = None
            kubelet = _kubelet_ident(args.kubelet_socket)
            if kubelet is None:
                if registered_with is not None or not waiting_logged:
                    log.info("waiting for kubelet's socket %s", args.kubelet_socket)
                registered_with, waiting_logged = None, True
            elif kubelet != registered_with:
                if registered_with is not None:
                    log.warning("kubelet restarted (%s replaced): registering again",
                                args.kubelet_socket)  # fmt: skip
                try:
                    register(args.kubelet_socket, args.endpoint)
                except grpc.RpcError as exc:
                    registered_with = None
                    log.warning("registration at %s failed: %s; retrying",
                                args.kubelet_socket, exc.details() or exc.code())  # fmt: skip
                    stop.wait(1.0)
                    continue
                registered_with, waiting_logged = kubelet, False
                servicer.metrics.registrations.inc()
                log.info("registered with kubelet at %s", args.kubelet_socket)
            stop.wait(POLL_S)
    finally:
        if server is not None:
            server.stop()
        if http is not None:
            http.shutdown()
        inventory.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet = logging.WARNING if args.list else logging.INFO  # --list prints; logs only trouble
    logging.basicConfig(
        level=quiet - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import grpc  # noqa: F401
    except ImportError:
        print("akida-device-plugin: error: grpc is missing; install it with "
              "pip install 'akida-rt[k8s]'", file=sys.stderr)  # fmt: skip
        return 1
    if args.list:
        return _list(args)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        serve(args, stop)
    except OSError as exc:
        print(f"akida-device-plugin: error: {exc}", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
