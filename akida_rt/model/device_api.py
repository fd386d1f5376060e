"""What the runtime uses from a device, as a typing.Protocol the driver's Device satisfies.

The core cannot import akida_rt.driver, so `Model.map` and the daemon's device manager
type their devices with `Device` below; mypy checks that akida_rt.driver.device.Device
provides every member (a module-level assignment in that module).
"""

from __future__ import annotations

from collections import abc
from typing import Any, Protocol, runtime_checkable

import numpy as np

from akida_rt.engine.learning_rule import LearnedWeights
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.model.sequence import Sequence


class StatsReport(Protocol):
    """Device counters as a device reports them (akida_rt.driver.device.DeviceStats)."""

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain data: device fields plus `host` and `resident`."""
        ...


class Device(Protocol):
    """An Akida device (board or simulator) as the runtime sees it.

    Whether it is simulated is what the device says about itself (its identity), never
    what the URL scheme suggests.
    """

    @property
    def id(self) -> str:
        """Stable identifier (by default the URL)."""
        ...

    @property
    def url(self) -> str:
        """The URL the device was opened with (`pcie://...`, `usb://...`, `sim://...`)."""
        ...

    @property
    def kind(self) -> str:
        """The transport: "pcie", "usb" or "sim"."""
        ...

    @property
    def simulated(self) -> bool:
        """True when the chip identified itself as the firmware simulator."""
        ...

    @property
    def lost(self) -> bool:
        """True once the device vanished or was closed."""
        ...

    @property
    def spec(self) -> DeviceSpec:
        """The NP mesh the device describes (what the mapper maps onto)."""
        ...

    def describe(self) -> dict[str, Any]:
        """The fields `akida devices --json` lists."""
        ...

    def stats(self) -> StatsReport:
        """Device counters since its last reset, with the host's."""
        ...

    def reset(self) -> None:
        """Hard reset; the device is usable afterwards (resident sequences are dropped)."""
        ...

    def run_sequences(
        self, sequences: abc.Sequence[Sequence], x: np.ndarray
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Run a mapped model's sequences over batch `x`: (final outputs, metrics)."""
        ...

    def release(self, model: object) -> None:
        """A model mapped onto the device was unmapped."""
        ...

    def learn(
        self,
        sequences: abc.Sequence[Sequence],
        x: np.ndarray,
        labels: np.ndarray,
        config: pb.LearningConfig,
    ) -> tuple[np.ndarray, LearnedWeights]:
        """Learn batch `x` on the chip: (potentials before learning, the state read back)."""
        ...

    def adopt_learned(self, before: str, after: str) -> bool:
        """The resident sequence `before` learned and now equals the program `after`."""
        ...

    def learned_program(self) -> bytes | None:
        """The resident program binary with the weights learned on the chip, if any."""
        ...


class RemoteRun(Protocol):
    """A program loaded in akidad for one mapped Model (akida_rt.client.client.RemoteModel)."""

    last_device: str

    def forward(self, x: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """forward()'s integer outputs of batch `x`, computed in akidad."""
        ...

    def unload(self) -> None:
        """Close the session."""
        ...


@runtime_checkable
class DaemonBacked(Protocol):
    """A device akidad serves (akida_rt.client.daemon_devices.DaemonDevice): `Model.map` plans
    on its spec and loads the program there; forward/predict then go through akidad."""

    @property
    def id(self) -> str: ...

    @property
    def simulated(self) -> bool: ...

    @property
    def spec(self) -> DeviceSpec: ...

    @property
    def where(self) -> str:
        """The device and the daemon serving it."""
        ...

    def attach(self, program: bytes, mode: str, hw_only: bool) -> RemoteRun:
        """Load `program` (file bytes) onto the device; the session for one mapped Model."""
        ...

    def stats(self) -> Any:
        """akidad's counters of the device."""
        ...
