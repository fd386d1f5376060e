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

from akida_rt import ipc
from akida_rt.errors import DaemonError

SYSTEM_CONFIG = Path("/etc/akida/akidad.toml")
# Keys SIGHUP can change; the rest need a restart.
RELOADABLE = (
    "log_level",
    "simulated_devices",
    "device_urls",
    "max_batch_frames",
    "batch_window_us",
    "default_timeout_ms",
    "shm_threshold",
    "max_frame",
    "drain_timeout_s",
    "discovery_interval_s",
    "max_in_flight",
)


@dataclass
class Config:
    """Everything akidad can be told; see docs/daemon.md for each key."""

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
    batch_window_us: int = 0
    default_timeout_ms: int = 30_000
    shm_threshold: int = ipc.DEFAULT_SHM_THRESHOLD
    max_frame: int = ipc.DEFAULT_MAX_FRAME
    # Unanswered inference requests one client may have queued: a client that floods the
    # daemon is refused (TOO_MANY_REQUESTS) instead of exhausting its memory.
    max_in_flight: int = 1024
    # Multiplies every device command timeout (identify, load, run...); set at startup.
    device_timeout_scale: float = 1.0
    drain_timeout_s: float = 20.0
    # Low-latency mode: poll the sockets this long after each wake-up before sleeping
    # (daemon/busy_poll.py); costs up to a core while clients are active. Startup only.
    busy_poll_us: int = 0
    # Pin the event loop (where lone requests run) to this CPU, for clients that share it
    # (Client.colocate(); daemon/affinity.py); -1: not pinned. Startup only.
    loop_cpu: int = -1
    discovery_interval_s: float = 2.0
    metrics_listen: str = ""  # "127.0.0.1:9464" serves Prometheus text at /metrics
    generation: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        out["socket_mode"] = oct(self.socket_mode)
        return out


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
        if key not in fields or key in ("generation", "extra", "config_path", "user_mode"):
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
    """Refuse out-of-range numbers, wherever they came from (file or command line)."""
    if values.get("simulated_devices", 0) < 0:
        raise DaemonError(f"{where}: simulated_devices must be >= 0")
    if values.get("device_timeout_scale", 1.0) <= 0:
        raise DaemonError(f"{where}: device_timeout_scale must be > 0")
    if not 0 <= values.get("busy_poll_us", 0) <= 1_000_000:
        raise DaemonError(f"{where}: busy_poll_us must be within 0..1000000")
    if values.get("loop_cpu", -1) < -1:
        raise DaemonError(f"{where}: loop_cpu must be a CPU number, or -1 for not pinned")
    if values.get("max_in_flight", 1) < 1:
        raise DaemonError(f"{where}: max_in_flight must be >= 1")
