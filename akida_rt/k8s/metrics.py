"""The device plugin's own Prometheus metrics (devices and their health, health changes,
allocations, registrations) and the small HTTP server that serves them at /metrics.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)
PREFIX = "akida_device_plugin_"


class Counter:
    """A monotonically increasing count, optionally split by one label."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self._values: Tally[str] = Tally()
        self._lock = threading.Lock()

    def inc(self, value: str = "", by: int = 1) -> None:
        with self._lock:
            self._values[value] += by

    def get(self, value: str = "") -> int:
        with self._lock:
            return self._values[value]

    def rows(self) -> list[tuple[str, int]]:
        with self._lock:
            return sorted(self._values.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class PluginMetrics:
    """What the plugin counts. `devices` is read at scrape time: (id, health) pairs."""

    def __init__(self) -> None:
        self.registrations = Counter()
        self.allocations = Counter("device")
        self.health_changes = Counter("device")
        self.devices: Callable[[], list[tuple[str, str]]] = list

    def text(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        out: list[str] = []

        def family(name: str, kind: str, help_: str, rows: list[tuple[str, str, float]]) -> None:
            out.append(f"# HELP {PREFIX}{name} {help_}")
            out.append(f"# TYPE {PREFIX}{name} {kind}")
            for label, value, number in rows:
                tag = f'{{{label}="{_escape(value)}"}}' if label else ""
                out.append(f"{PREFIX}{name}{tag} {number:g}")

        listed = self.devices()
        family("devices", "gauge", "devices listed to kubelet, by health",
               [("health", h, sum(1 for _, x in listed if x == h))
                for h in ("Healthy", "Unhealthy")])  # fmt: skip
        family("device_healthy", "gauge", "1 when the device is Healthy",
               [("device", d, float(h == "Healthy")) for d, h in sorted(listed)])  # fmt: skip
        family("health_changes_total", "counter", "health changes seen, per device",
               [("device", d, n) for d, n in self.health_changes.rows()])  # fmt: skip
        family("allocations_total", "counter", "devices handed to containers by Allocate",
               [("device", d, n) for d, n in self.allocations.rows()])  # fmt: skip
        family("registrations_total", "counter", "successful registrations with kubelet",
               [("", "", self.registrations.get())])  # fmt: skip
        return "\n".join(out) + "\n"


def parse_listen(text: str) -> tuple[str, int]:
    """ "HOST:PORT" or ":PORT" as (host, port); ValueError naming the fix otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT or :PORT, got {text!r}")
    return host or "0.0.0.0", int(port)


def serve(metrics: PluginMetrics, listen: str) -> ThreadingHTTPServer:
    """Serve `metrics` at http://listen/metrics from a daemon thread; returns the server
    (its `server_address` holds the port bound, for ":0")."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "not found; try /metrics")
                return
            body = metrics.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics: " + format, *args)

    server = ThreadingHTTPServer(parse_listen(listen), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    host, port = server.server_address[:2]
    log.info("Prometheus metrics at http://%s:%d/metrics", host, port)
    return server
