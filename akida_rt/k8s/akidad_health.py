"""Board health as akidad sees it, for the device plugin in akidad mode: a board whose
requests time out or fail on the device turns Unhealthy, and Healthy once they stop.

akidad keeps each device "unhealthy" for a few seconds after a fault (daemon/devices.py
FAULT_HOLD_S) and "lost" ones out of its list; the plugin asks it every scan.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

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
