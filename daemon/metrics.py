"""Counters behind `akida stats`/`akida top` and the Prometheus endpoint: requests,
frames, fps over a sliding window, latency percentiles, energy per inference.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WINDOW_S = 5.0
LATENCY_SAMPLES = 4096


@dataclass
class Meter:
    """Throughput and latency of one device or one client."""

    requests: int = 0
    frames: int = 0
    errors: int = 0
    busy_s: float = 0.0
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _recent: deque[tuple[float, int]] = field(default_factory=deque)

    def record(self, frames: int, latency_s: float) -> None:
        now = time.monotonic()
        self.requests += 1
        self.frames += frames
        self._latencies.append(latency_s)
        self._recent.append((now, frames))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > WINDOW_S:
            self._recent.popleft()

    def fps(self) -> float:
        now = time.monotonic()
        self._trim(now)
        if not self._recent:
            return 0.0
        span = max(now - self._recent[0][0], 1.0)
        return sum(f for _, f in self._recent) / span

    def snapshot(self) -> dict[str, Any]:
        lat = np.asarray(self._latencies, dtype=np.float64) * 1e3
        pct = np.percentile(lat, [50, 90, 99]).tolist() if lat.size else [0.0, 0.0, 0.0]
        return {
            "requests": self.requests,
            "frames": self.frames,
            "errors": self.errors,
            "fps": round(self.fps(), 2),
            "latency_ms": {"p50": pct[0], "p90": pct[1], "p99": pct[2]},
            "busy_s": self.busy_s,
        }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def prometheus_text(stats: dict[str, Any]) -> str:
    """The stats snapshot in Prometheus text exposition format 0.0.4."""
    lines: list[str] = []

    def family(name: str, kind: str, help_: str, rows: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP akida_{name} {help_}")
        lines.append(f"# TYPE akida_{name} {kind}")
        for labels, value in rows:
            tag = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"akida_{name}{{{tag}}} {float(value)!r}")

    devs = stats.get("devices", [])
    clients = stats.get("clients", [])
    for who, items, key in (("device", devs, "id"), ("client", clients, "client_id")):
        rows = [({who: str(d[key])}, d["meter"]["frames"]) for d in items]
        family(f"{who}_frames_total", "counter", f"frames inferred per {who}", rows)
        rows = [({who: str(d[key])}, d["meter"]["requests"]) for d in items]
        family(f"{who}_requests_total", "counter", f"requests per {who}", rows)
        rows = [({who: str(d[key])}, d["meter"]["fps"]) for d in items]
        family(f"{who}_fps", "gauge", f"frames per second over {WINDOW_S:g} s", rows)
        rows = [
            ({who: str(d[key]), "quantile": q}, d["meter"]["latency_ms"][p] / 1e3)
            for d in items
            for q, p in (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))
        ]
        family(f"{who}_latency_seconds", "gauge", "request latency quantiles", rows)
    for key, help_ in (
        ("reloads", "sequence programs loaded onto the device"),
        ("bytes_programmed", "bytes of program written to the device"),
    ):
        rows = [({"device": d["id"]}, d.get("driver", {}).get(key, 0)) for d in devs]
        family(f"device_{key}_total", "counter", help_, rows)
    rows = [
        ({"device": d["id"]}, d["driver"]["energy_per_inference_mj"] / 1e3)
        for d in devs
        if d.get("driver", {}).get("energy_per_inference_mj") is not None
    ]
    family("device_energy_per_inference_joules", "gauge", "energy per inference", rows)
    rows = [({"device": d["id"]}, d["meter"].get("errors", 0)) for d in devs]
    family("device_errors_total", "counter", "requests that failed on the device", rows)
    rows = [({"device": d["id"]}, float(d.get("health") == "healthy")) for d in devs]
    family("device_healthy", "gauge", "1 unless the device is lost or recently faulted", rows)
    tenants = stats.get("tenants", [])
    for key, name, kind, help_ in (
        ("frames", "frames_total", "counter", "frames run for a tenant (a uid with clients)"),
        ("device_s", "device_seconds_total", "counter", "device time of a tenant's frames"),
        ("clients", "clients", "gauge", "connected clients of a tenant"),
    ):
        rows = [({"tenant": str(t["uid"])}, t[key]) for t in tenants]
        family(f"tenant_{name}", kind, help_, rows)
    family("sessions", "gauge", "open sessions", [({}, stats.get("sessions", 0))])
    return "\n".join(lines) + "\n"
