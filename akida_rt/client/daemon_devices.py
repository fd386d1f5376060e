"""Devices served by akidad, as `akida_rt.devices()` lists them when a daemon answers.

`Model.map(device)` loads the model's program there (`Client.load`, one session per
mapped model) and its forward/predict/statistics go through that `RemoteModel`: the
client's one request path, nothing beside it.
"""

from __future__ import annotations

import os
from typing import Any

from akida_rt.client.client import Client, RemoteModel
from akida_rt.mapping.hardware import DeviceSpec, spec_by_name


class DaemonDevice:
    """One of akidad's devices. It satisfies `device_api.DaemonBacked` (what `Model.map`
    needs), not the in-process `Device`: registers, resets and runs stay in akidad."""

    kind = "akidad"
    lost = False

    def __init__(self, client: Client, info: dict[str, Any]) -> None:
        self.client, self._info = client, dict(info)
        self.id: str = info["id"]
        self.url: str = info.get("url", self.id)
        self.simulated: bool = bool(info.get("simulated"))
        self.spec: DeviceSpec = spec_by_name(info.get("name") or "AKD1000")

    @property
    def where(self) -> str:
        """The device and the daemon serving it, for statistics and logs."""
        return f"{self.id}{', simulated' if self.simulated else ''}, through akidad at {self.client.path}"

    def describe(self) -> dict[str, Any]:
        """The fields `akida devices --json` lists, as akidad reports them."""
        return dict(self._info)

    def attach(self, program: bytes, mode: str, hw_only: bool) -> RemoteModel:
        """Load `program` onto this device in akidad: a session for one mapped Model."""
        return self.client.load(program, device=self.id, map_mode=mode, hw_only=hw_only)

    def stats(self) -> dict[str, Any]:
        """akidad's counters of this device (`akida stats --json`'s device entry)."""
        devices = self.client.stats().get("devices", [])
        return dict(next((d for d in devices if d.get("id") == self.id), {}))

    def __repr__(self) -> str:
        return f"<DaemonDevice {self.where}>"


def daemon_devices(
    socket: str | os.PathLike[str] | None = None, retry_s: float = 10.0
) -> list[DaemonDevice]:
    """akidad's devices at `socket` (default: $AKIDA_SOCKET, the user's, the system's).
    Connecting does not wait; once connected, the client rides akidad restarts out for
    `retry_s` (its one retry policy).

    Raises:
        DaemonError: no akidad answers there.
    """
    client = Client(socket, name=f"akida_rt-{os.getpid()}", retry_s=0.0)
    client.retry_s = retry_s
    return [DaemonDevice(client, info) for info in client.devices()]
