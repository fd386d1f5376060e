"""akidad's composition root: builds the store, device manager, scheduler, controller
and socket server by hand, then runs them on one asyncio loop until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import logging
import os
import resource
import signal
import socket
import ssl
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from akida_rt.errors import AkidaError, DaemonError
from akida_rt.wire import ipc, tls

from . import systemd
from .config import RELOADABLE, Config, apply_file, check_ranges, defaults
from .controller import Controller
from .devices import DeviceManager
from .metrics_http import serve_metrics
from .scheduler import Scheduler
from .server import Server
from .settings import SETTINGS, shown
from .store import StateStore
from .tenant_ledger import TenantLedger
from .tenant_sockets import SCAN_S as TENANT_SCAN_S
from .tenant_sockets import TenantSockets

log = logging.getLogger("akida_rt.daemon")
STUCK_S = 60.0


class JournalFormatter(logging.Formatter):
    """`<N>name: message`: journald reads the priority and adds its own timestamp."""

    PRIORITIES: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
    }

    def format(self, record: logging.LogRecord) -> str:
        prio = self.PRIORITIES.get(record.levelno, 2)
        return f"<{prio}>{record.name}: {super().format(record)}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def bind_socket(config: Config) -> socket.socket:
    """Bind the listening socket: refuse a directory another user could have planted
    (a user daemon's must be its own and 0700), refuse a live daemon, replace a stale
    socket file."""
    path = config.socket_path
    private = config.user_mode
    for folder in reversed([path.parent, *path.parent.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700 if private else 0o755)
    ipc.check_socket_dir(path.parent, {os.getuid()}, private=private)
    if path.exists() and not path.is_symlink() and not stat.S_ISSOCK(path.stat().st_mode):
        what = "a directory" if path.is_dir() else "a file that is not a socket"
        raise DaemonError(
            f"socket path {path} is {what}; akidad replaces only a stale socket: "
            "name a new path, or move that file away"
        )
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise DaemonError(f"another akidad is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, config.socket_mode)
    if config.socket_group:
        try:
            os.chown(path, -1, grp.getgrnam(config.socket_group).gr_gid)
        except KeyError:
            log.warning(
                "group '%s' does not exist; %s keeps group %d",
                config.socket_group,
                path,
                os.stat(path).st_gid,
            )
    sock.listen(128)
    return sock


def tls_listener(config: Config) -> tuple[socket.socket, ssl.SSLContext] | None:
    """The TCP listener and mutual-TLS context of `listen = "tcp://ADDR:PORT"`, if set."""
    if not config.listen:
        return None
    host, port = tls.address(config.listen, "tcp")
    ctx = tls.server_context(config.tls_cert, config.tls_key, config.tls_ca, config.tls_crl)
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise DaemonError(f"cannot listen on {config.listen}: {exc.strerror}") from None
    log.info("serving mutual-TLS clients on %s:%d", host, sock.getsockname()[1])
    return sock, ctx


class Daemon:
    """The running service; `run()` returns the exit status."""

    def __init__(self, config: Config, tenant_dir: Path | None = None) -> None:
        self.config = config
        self.tenant_dir = tenant_dir
        self.stopping = asyncio.Event()
        self.owns_socket = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        cfg = self.config
        store = StateStore(cfg.state_dir)
        self.manager = DeviceManager(
            cfg.simulated_devices, cfg.device_urls, timeout_scale=cfg.device_timeout_scale
        )
        self.scheduler = Scheduler(self.manager, loop, cfg.max_batch_frames)
        await self.rescan()
        self.controller = Controller(cfg, self.manager, self.scheduler, store)
        activated = systemd.listen_sockets()
        remote = tls_listener(cfg)  # before the Unix socket: a client there finds both up
        listener = activated[0] if activated else bind_socket(cfg)
        self.owns_socket = not activated
        server = Server(self.controller, listener, remote)
        metrics = await serve_metrics(cfg.metrics_listen, self.controller)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        where = "socket activation" if activated else str(cfg.socket_path)
        devices = (
            ", ".join(
                f"{s.id}{' (simulated)' if s.simulated else ''}" for s in self.manager.ready()
            )
            or "none"
        )
        log.info("akidad %d serving on %s; devices: %s", os.getpid(), where, devices)
        systemd.notify(f"READY=1\nSTATUS=serving on {where}\nMAINPID={os.getpid()}")
        background = [loop.create_task(self.watchdog()), loop.create_task(self.rescan_loop())]
        tenants = None
        if self.tenant_dir is not None:
            tenants = TenantSockets(
                self.tenant_dir, server.add_tenant_listener, server.remove_tenant_listener
            )
            self.controller.ledger = TenantLedger(store, self.controller.has_client)
            background.append(loop.create_task(self.tenant_loop(tenants, self.controller.ledger)))
        await self.stopping.wait()
        await self.drain(server)
        if tenants is not None:
            tenants.close()
        for task in background:
            task.cancel()
        if metrics is not None:
            metrics.close()
        self.scheduler.stop()
        if self.owns_socket:
            with contextlib.suppress(OSError):
                cfg.socket_path.unlink()
        log.info("akidad stopped")
        return 0

    async def tenant_loop(self, tenants: TenantSockets, ledger: TenantLedger) -> None:
        """Follow the tenant directory (folders come and go with the plugin's shares, a
        share's tenant changes at each allocation: the one it replaces is freed)."""
        while True:
            seen = tenants.scan()
            if seen is not None:
                ledger.observe(seen)
            await asyncio.sleep(TENANT_SCAN_S)

    async def drain(self, server: Server) -> None:
        """Stop taking work, let everything in flight finish, then hang up."""
        systemd.notify("STOPPING=1\nSTATUS=draining")
        self.controller.draining = True
        server.stop_accepting()
        if self.owns_socket:
            with contextlib.suppress(OSError):
                self.config.socket_path.unlink()
        left = self.controller.unanswered()
        log.info("draining: %d request(s) in flight", left)
        deadline = asyncio.get_running_loop().time() + self.config.drain_timeout_s
        while (self.controller.unanswered() or not server.idle()) and (
            asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.01)
        if self.controller.unanswered():
            log.warning("drain timeout: %d request(s) abandoned", self.controller.unanswered())
        server.close_all()

    def reload(self) -> None:
        """SIGHUP: re-read the reloadable keys of the config file."""
        systemd.notify("RELOADING=1")
        path = self.config.config_path
        try:
            if path is not None:
                new = apply_file(self.config, path, only_reloadable=True)
                for key in (*RELOADABLE, "generation"):
                    setattr(self.config, key, getattr(new, key))
                logging.getLogger().setLevel(self.config.log_level.upper())
                self.scheduler.max_batch_frames = self.config.max_batch_frames
                self.manager.simulated = self.config.simulated_devices
                self.manager.urls = list(self.config.device_urls)
                asyncio.get_running_loop().create_task(self.rescan())
            log.info("configuration reloaded (generation %d)", self.config.generation)
        except AkidaError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
        systemd.notify("READY=1")

    async def rescan(self) -> None:
        appeared, vanished = await asyncio.to_thread(self.manager.rescan)
        for slot in vanished:
            self.scheduler.detach(slot)
        for slot in appeared:
            self.scheduler.attach(slot)

    async def rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.discovery_interval_s)
            await self.rescan()

    async def watchdog(self) -> None:
        """Ping the watchdog while the loop runs and no device worker is stuck."""
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            stuck = self.scheduler.stuck(STUCK_S)
            if stuck:
                log.error("device worker(s) stuck for over %gs: %s", STUCK_S, stuck)
            else:
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


def build_parser() -> argparse.ArgumentParser:
    from akida_rt.daemon.arguments import Parser

    from akida_rt import __version__

    p = Parser(prog="akidad", description="The akida runtime daemon")
    p.add_argument("--version", action="version", version=f"akidad (akida_rt) {__version__}")
    p.add_argument("--user", action="store_true", help="user mode: socket under XDG_RUNTIME_DIR")
    p.add_argument("--config", type=Path, help="TOML config file (re-read on SIGHUP)")
    p.add_argument(
        "--device",
        action="append",
        dest="devices",
        metavar="URL",
        help="open this device URL instead of discovering (repeatable)",
    )
    for s in SETTINGS:  # the settings with an option (daemon/settings.py)
        if s.option:
            kind = s.type if s.type in (int, Path) and s.name != "socket_mode" else str
            default = f" (default {s.default_text or shown(s.default)})"
            p.add_argument(s.option, dest=s.name, type=kind, help=s.meaning + default,
                           metavar=s.option[2:].upper().replace("-", "_"))  # fmt: skip
    return p


def make_config(args: argparse.Namespace) -> Config:
    cfg = defaults(user_mode=args.user or os.getuid() != 0)
    if args.config is not None:
        cfg.config_path = args.config
    if cfg.config_path is not None:
        cfg = apply_file(cfg, cfg.config_path)
    for s in SETTINGS:
        value = getattr(args, s.name, None) if s.option and s.name != "socket_mode" else None
        if value is not None:
            check_ranges({s.name: value}, "command line")
            setattr(cfg, s.name, value)
    if args.devices:
        from akida_rt.driver.bus import check_url

        for url in args.devices:
            check_url(url)  # refused at once: an unknown scheme would be retried forever
        cfg.device_urls = list(args.devices)
    if args.socket_mode is not None:
        cfg.socket_mode = int(args.socket_mode, 8)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from akida_rt.daemon.arguments import check

        check(args)
        config = make_config(args)
    except (AkidaError, ValueError) as exc:
        print(f"akidad: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # room for max_connections
    if soft != resource.RLIM_INFINITY and soft < 65536:
        want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        tenants = Path(config.tenant_dir) if config.tenant_dir else None
        status = asyncio.Runner().run(Daemon(config, tenants).run())
    except AkidaError as exc:
        log.error("%s", exc)
        status = 1
    # Exit now: a device worker or a thread still busy after the drain (a hung board, a
    # huge program being parsed) must not hold the process past drain_timeout_s.
    logging.shutdown()
    os._exit(status)
