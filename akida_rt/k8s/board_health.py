"""Board health beyond presence, for the device plugin: as akidad sees it (akidad mode),
or as the driver inside the containers reports it (plugin mode). Either way a board whose
requests time out or fail on the device turns Unhealthy, and Healthy once they stop.

akidad keeps each device "unhealthy" for a few seconds after a fault (daemon/devices.py
FAULT_HOLD_S) and "lost" ones out of its list; the plugin asks it every scan. In plugin
mode the driver writes notes into a folder per board that Allocate mounts
(driver/health.py), and the plugin reads them every scan.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from akida_rt.driver.health import read_state
from akida_rt.errors import AkidaError

log = logging.getLogger(__name__)


class AkidadHealth:
    """Callable: board URL -> problem ("" when healthy), from akidad's device list.

    Raises AkidaError when akidad does not answer. One connection is kept and made again
    after a failure.
    """

    def __init__(self, socket: str, timeout_s: float = 2.0) -> None:
        self.socket = socket
        self.timeout_s = timeout_s
        self._client: Any = None

    def __call__(self) -> dict[str, str]:
        from akida_rt.client import Client

        try:
            if self._client is None:
                self._client = Client(self.socket, timeout=self.timeout_s, retry_s=0)
            devices = self._client.devices()
        except (AkidaError, OSError) as exc:
            self.close()
            raise AkidaError(f"akidad at {self.socket}: {exc}") from exc
        report = {}
        for d in devices:
            well = d.get("health", "healthy") == "healthy"
            problem = "" if well else f"akidad: {d.get('problem') or 'unhealthy'}"
            for key in {d.get("device", {}).get("url"), d.get("id")} - {None}:
                report[key] = problem
        return report

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(AkidaError, OSError):
                self._client.close()
            self._client = None


class DriverNotes:
    """Callable: board id -> problem, from the health notes the driver writes inside the
    containers (driver/health.py) into `root/<board id>/`, which Allocate mounts.

    A fault counts for `hold_s` after the driver last wrote it: a board still failing is
    written again every second, so it stays Unhealthy; a container that stopped using a
    board, or whose driver saw it answer again, lets it turn Healthy.
    """

    def __init__(self, root: str, hold_s: float = 10.0) -> None:
        self.root = Path(root)
        self.hold_s = hold_s

    def folder(self, board_id: str) -> Path:
        """The host folder of a board's notes (created)."""
        folder = self.root / board_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def __call__(self) -> dict[str, str]:
        report = {}
        try:
            folders = [p for p in self.root.iterdir() if p.is_dir()]
        except OSError:
            return {}
        now = time.time()
        for folder in folders:
            note = read_state(folder)
            if note is None or note.get("healthy", True):
                continue
            at = note.get("at", 0.0)
            if isinstance(at, int | float) and now - at < self.hold_s:
                report[folder.name] = f"driver in the container: {note.get('problem', '')}"
        return report
