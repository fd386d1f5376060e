"""Every akidad setting in one table: name, type, default, range, whether SIGHUP reloads
it, a one-line meaning and its command-line option; the config parser, the reload, the
range checks, `akidad --help` and docs/daemon.md's settings table come from it.

`python -m akida_rt.daemon.settings` prints the docs' table (a test checks the docs hold it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akida_rt.wire import ipc


@dataclass(frozen=True)
class Setting:
    """One setting of akidad.

    Attributes:
        at_least: the smallest value allowed (numbers), or None.
        above: the value must be strictly greater than this (numbers), or None.
        limit: a per-client, per-uid or global bound (docs/daemon.md, "Limits").
        option: its command-line option (`--simulated`), or "" when only the file sets it.
        default_text: how the docs show the default when it depends on the mode.
    """

    name: str
    type: type
    default: Any
    reloadable: bool
    meaning: str
    at_least: float | None = None
    above: float | None = None
    limit: bool = False
    option: str = ""
    default_text: str = ""

    @property
    def range_text(self) -> str:
        if self.at_least is not None:
            return f">= {self.at_least:g}"
        if self.above is not None:
            return f"> {self.above:g}"
        return ""


def _limit(name: str, default: int, meaning: str) -> Setting:
    return Setting(name, int, default, True, meaning, at_least=1, limit=True)


SETTINGS: tuple[Setting, ...] = (
    Setting("socket_path", Path, Path(ipc.SYSTEM_SOCKET), False, "the listening socket",
            option="--socket", default_text="/run/akida/akida.sock; user: see above"),
    Setting("socket_mode", int, 0o660, False, "octal mode of the socket file",
            option="--socket-mode", default_text="0660; user: 0600"),
    Setting("socket_group", str, "akida", False, "group of the socket file",
            option="--socket-group", default_text="akida; user: none"),
    Setting("state_dir", Path, Path("/var/lib/akida"), False, "state directory (learned "
            "state, blobs)", option="--state-dir", default_text="/var/lib/akida; user: see above"),
    Setting("log_level", str, "INFO", True, "DEBUG, INFO, WARNING, ERROR",
            option="--log-level"),
    Setting("simulated_devices", int, 1, True, "simulated AKD1000s when no board is found; "
            "0 turns them off", at_least=0, option="--simulated"),
    Setting("device_urls", list, [], True, "open exactly these URLs instead of discovering "
            "(`--device URL`, repeatable)"),
    Setting("max_batch_frames", int, 64, True, "most frames merged into one forward",
            at_least=1),
    Setting("default_timeout_ms", int, 30_000, True, "deadline of a request that names none "
            "(at most max_timeout_ms)", at_least=1),
    Setting("shm_threshold", int, ipc.DEFAULT_SHM_THRESHOLD, True, "tensors (or answers) at "
            "least this big travel in a sealed memfd"),
    _limit("max_frame", ipc.DEFAULT_MAX_FRAME, "one frame; past it BAD_FRAME and the "
           "connection is closed (the stream cannot be resynchronised)"),
    _limit("max_tensor_bytes", 128 << 20, "one input tensor, inline or in a memfd (its size "
           "is checked before it is mapped); past it BAD_INPUT"),
    _limit("max_timeout_ms", 600_000, "the longest deadline a request may ask for; past it "
           "BAD_INPUT"),
    _limit("max_in_flight", 256, "unanswered inference requests of one client; past it "
           "TOO_MANY_REQUESTS"),
    _limit("max_queued_bytes", 512 << 20, "the inputs of one client's unanswered requests; "
           "past it TOO_MANY_REQUESTS"),
    _limit("max_write_buffer", 16 << 20, "unsent answers of one client; past it akidad stops "
           "reading that client until they drain"),
    _limit("max_read_buffer_total", 256 << 20, "partial frames of every client together; "
           "the connection that would pass it gets BAD_FRAME and is closed"),
    _limit("max_connections", 1000, "connections; new ones get QUOTA_EXCEEDED and are closed"),
    _limit("max_connections_per_uid", 64, "connections of one uid; the same"),
    _limit("max_sessions_per_client", 64, "sessions of one client; a load gets "
           "QUOTA_EXCEEDED, unload frees one"),
    _limit("max_state_keys_per_uid", 1024, "stored blobs of one uid; a put_state gets "
           "QUOTA_EXCEEDED, delete_state frees them"),
    _limit("max_state_bytes_per_uid", 1 << 30, "their bytes; the same"),
    Setting("device_timeout_scale", float, 1.0, False, "multiplies every device command "
            "timeout (identify, load, run)", above=0),
    Setting("drain_timeout_s", float, 20.0, True, "how long SIGTERM waits for work in flight "
            "before akidad exits anyway", above=0),
    Setting("discovery_interval_s", float, 2.0, True, "rescan period (devices that vanish "
            "or appear)", above=0),
    Setting("metrics_listen", str, "", False, "HOST:PORT serving Prometheus text at /metrics",
            option="--metrics", default_text="off"),
    Setting("listen", str, "", False, "also serve mutual-TLS clients on tcp://ADDR:PORT "
            "(docs/fleet.md)", option="--listen", default_text="off"),
    Setting("tls_cert", str, "", False, "TLS cert file for listen", option="--tls-cert"),
    Setting("tls_key", str, "", False, "TLS key file for listen", option="--tls-key"),
    Setting("tls_ca", str, "", False, "TLS ca file for listen (signs client certificates)",
            option="--tls-ca"),
    Setting("tls_crl", str, "", False, "TLS crl file for listen (optional)",
            option="--tls-crl"),
    Setting("tls_tenants", dict, {}, True, "client certificate common name -> the uid (>= 1) "
            "that tenant acts as"),
    Setting("tenant_dir", str, "", False, "also listen in each tenant folder of this "
            "directory (the Kubernetes device plugin's shares): its clients are the folder's "
            "tenant uid", option="--tenant-dir", default_text="off"),
)  # fmt: skip
BY_NAME = {s.name: s for s in SETTINGS}
RELOADABLE = tuple(s.name for s in SETTINGS if s.reloadable)
LIMITS = tuple(s.name for s in SETTINGS if s.limit)


def shown(value: Any) -> str:
    """A default as the docs show it: sizes in KiB/MiB/GiB, octal modes, lists as []."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value) if value not in ("", [], {}) else repr(value).replace("''", "off")
        return text.replace("'", "")
    if isinstance(value, int) and value >= 1 << 16:
        for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
            if value % (1 << shift) == 0:
                return f"{value >> shift} {unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table() -> str:
    """docs/daemon.md's settings table."""
    rows = ["| key | type | default | range | SIGHUP | meaning |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        default = s.default_text or shown(s.default)
        reload = "yes" if s.reloadable else "no"
        rows.append(f"| `{s.name}` | {s.type.__name__} | {default} | {s.range_text} | "
                    f"{reload} | {s.meaning} |")  # fmt: skip
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_table())
