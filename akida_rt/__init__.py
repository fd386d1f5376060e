"""akida_rt: runtime SDK for AKD1000-class neuromorphic accelerators.

Import cost is kept low (numpy and protobuf only); devices, the daemon client and the
toolchain are imported on first use.
"""

from __future__ import annotations

import logging
from typing import Any

from akida_rt.errors import (
    AkidaError,
    DeviceError,
    DeviceLost,
    DeviceNotFound,
    InputError,
    MappingError,
    ModelError,
    ProgramFormatError,
    TransportTimeout,
)
from akida_rt.format.layer_kinds import (
    Conv2D,
    FullyConnected,
    InputConv2D,
    InputData,
    SeparableConv2D,
)
from akida_rt.format.layer_params import LayerType, Padding, Pooling
from akida_rt.format.layers import Layer
from akida_rt.learning.edge import AkidaUnsupervised
from akida_rt.mapping.hardware import AKD1000, DeviceSpec, NpType, TwoNodesIP
from akida_rt.mapping.mapper import Backend, MapMode
from akida_rt.model.model import Model
from akida_rt.model.sequence import Sequence

__version__ = "0.1.0"


def devices(daemon: bool | None = None, socket: str | None = None) -> list[Any]:
    """The devices to map models onto: akidad's when one answers at `socket` (default:
    $AKIDA_SOCKET, the user's, the system's), else every device the driver discovers in
    this process (the simulated AKD1000 when no board is present), logged.

    Args:
        daemon: None: akidad if reachable, else in-process; True: akidad's only (raises
            DaemonError when none answers); False: in-process only.
    """
    if daemon is not False:
        from akida_rt.client.daemon_devices import daemon_devices
        from akida_rt.errors import DaemonError

        try:
            return list(daemon_devices(socket))
        except DaemonError as exc:
            if daemon:
                raise
            reason = str(exc).split(";")[0]
    from akida_rt.driver.discovery import devices as _devices

    found = _devices()
    if daemon is None:
        logging.getLogger(__name__).info(
            "%s; devices in this process: %s", reason, ", ".join(d.id for d in found)
        )
    return found


__all__ = [
    "AKD1000",
    "AkidaError",
    "AkidaUnsupervised",
    "Backend",
    "Conv2D",
    "DeviceError",
    "DeviceLost",
    "DeviceNotFound",
    "DeviceSpec",
    "FullyConnected",
    "InputConv2D",
    "InputData",
    "InputError",
    "Layer",
    "LayerType",
    "MapMode",
    "MappingError",
    "Model",
    "ModelError",
    "NpType",
    "Padding",
    "Pooling",
    "ProgramFormatError",
    "SeparableConv2D",
    "Sequence",
    "TransportTimeout",
    "TwoNodesIP",
    "__version__",
    "devices",
]
