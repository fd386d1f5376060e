"""akidad configuration: defaults per mode (system or user), a TOML file, command-line
overrides. SIGHUP re-reads the file; paths and the socket are fixed at startup.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akida_rt.errors import DaemonError
from akida_rt.wire import ipc

from .settings import LIMITS, RELOADABLE, SETTINGS

__all__ = ["LIMITS", "RELOADABLE", "Config", "apply_file", "check_ranges", "defaults"]

SYSTEM_CONFIG = Path("/etc/akida/akidad.toml")


@dataclass
class Config:
    """Everything akidad can be told: the settings of daemon/settings.py (a test checks
    each field's type and default against that table), plus where it came from."""

    user_mode: bool = False
    socket_path: Path = Path(ipc.SYSTEM_SOCKET)
    socket_mode: int = 0o660
    socket_group: str = "akida"
    state_dir: Path = Path("/var/lib/akida")
    config_path: Path | None = None
    log_level: str = "INFO"
    # Simulated AKD1000s when no board is found: a count, or 0 for none ("off").
    simulated_devices: int = 1
    # Open exactly these device URLs instead of discovering (e.g. "sim://akd1000/0?mode=process").
    device_urls: list[str] = field(default_factory=list)
    max_batch_frames: int = 64
    default_timeout_ms: int = 30_000
    shm_threshold: int = ipc.DEFAULT_SHM_THRESHOLD
    # Limits (docs/daemon.md, "Limits"): every per-client resource is bounded.
    max_frame: int = ipc.DEFAULT_MAX_FRAME  # bytes of one frame (a program, an inline tensor)
    max_tensor_bytes: int = 128 << 20  # one input tensor, inline or in a memfd
    max_timeout_ms: int = 600_000  # the longest deadline a request may ask for
    max_in_flight: int = 256  # unanswered inference requests of one client
    max_queued_bytes: int = 512 << 20  # and their inputs, held until answered
    max_write_buffer: int = 16 << 20  # unsent answers of one client: reading pauses above it
    max_read_buffer_total: int = 256 << 20  # partial frames of every client together
    max_connections: int = 1000
    max_connections_per_uid: int = 64
    max_sessions_per_client: int = 64
    max_state_keys_per_uid: int = 1024
    max_state_bytes_per_uid: int = 1 << 30
    # Multiplies every device command timeout (identify, load, run...); set at startup.
    device_timeout_scale: float = 1.0
    drain_timeout_s: float = 20.0
    discovery_interval_s: float = 2.0
    metrics_listen: str = ""  # "127.0.0.1:9464" serves Prometheus text at /metrics
    # Also serve remote clients over mutual TLS 1.3 on "tcp://ADDR:PORT" (docs/fleet.md):
    # certificate, key, the CA that signs client certificates, and optionally its CRL.
    listen: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_crl: str = ""
    # Client certificate common name -> the uid that tenant acts as (sessions, state and
    # limits as for a local uid). A name not listed is refused after the handshake.
    tls_tenants: dict[str, int] = field(default_factory=dict)
    # Also listen in each tenant folder of this directory (the device plugin's shares).
    tenant_dir: str = ""
    generation: int = 0


def defaults(user_mode: bool) -> Config:
    """Paths for the system service (/run/akida, /var/lib/akida) or a user daemon."""
    if not user_mode:
        state = os.environ.get("STATE_DIRECTORY", "/var/lib/akida").split(":")[0]
        runtime = os.environ.get("RUNTIME_DIRECTORY", "/run/akida").split(":")[0]
        return Config(
            socket_path=Path(runtime) / "akida.sock",
            state_dir=Path(state),
            config_path=SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None,
        )
    home = Path.home()
    user_state = Path(os.environ.get("XDG_STATE_HOME", home / ".local" / "state")) / "akida"
    conf = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "akida" / "akidad.toml"
    return Config(
        user_mode=True,
        socket_path=ipc.user_socket_path(),
        socket_mode=0o600,
        socket_group="",
        state_dir=user_state,
        config_path=conf if conf.exists() else None,
    )


def apply_file(config: Config, path: Path, *, only_reloadable: bool = False) -> Config:
    """Overlay the keys of a TOML file; unknown keys and wrong types are errors."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DaemonError(f"config {path}: {exc}") from None
    data = data.get("akidad", data)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    updates: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields or key in ("generation", "config_path", "user_mode"):
            raise DaemonError(f"config {path}: unknown key '{key}'")
        if only_reloadable and key not in RELOADABLE:
            continue
        current = getattr(config, key)
        if isinstance(current, Path):
            value = Path(value)
        elif key == "socket_mode" and isinstance(value, str):
            value = int(value, 8)
        elif isinstance(current, float) and isinstance(value, int):
            value = float(value)
        if type(value) is not type(current) and not isinstance(current, Path):
            raise DaemonError(
                f"config {path}: '{key}' must be {type(current).__name__}, got {value!r}"
            )
        updates[key] = value
    check_ranges(updates, f"config {path}")
    return dataclasses.replace(config, **updates, generation=config.generation + 1)


def check_ranges(values: dict[str, Any], where: str) -> None:
    """Refuse out-of-range numbers, wherever they came from (file or command line): each
    setting's range in the table, then what settings say of each other."""
    for setting in SETTINGS:
        value = values.get(setting.name)
        if value is None:
            continue
        if setting.at_least is not None and value < setting.at_least:
            raise DaemonError(f"{where}: {setting.name} must be >= {setting.at_least:g}")
        if setting.above is not None and value <= setting.above:
            raise DaemonError(f"{where}: {setting.name} must be > {setting.above:g}")
    for name, uid in values.get("tls_tenants", {}).items():
        if not isinstance(uid, int) or uid < 1:
            raise DaemonError(f"{where}: tls_tenants.{name} must be a uid >= 1 (not root's)")
    timeout, most = values.get("default_timeout_ms", 1), values.get("max_timeout_ms", 1 << 62)
    if timeout > most:
        raise DaemonError(f"{where}: default_timeout_ms {timeout} is over max_timeout_ms {most}")
