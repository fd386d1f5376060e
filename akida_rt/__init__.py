"""akida_rt: runtime SDK for AKD1000-class neuromorphic accelerators.

Import cost is kept low (numpy and protobuf only); devices, the daemon client and the
toolchain are imported on first use.
"""

from __future__ import annotations

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
from akida_rt.hardware import AKD1000, DeviceSpec, NpType, TwoNodesIP
from akida_rt.layers import (
    Conv2D,
    FullyConnected,
    InputConv2D,
    InputData,
    Layer,
    LayerType,
    Padding,
    Pooling,
    SeparableConv2D,
)
from akida_rt.learning import AkidaUnsupervised
from akida_rt.mapping import Backend, MapMode
from akida_rt.model import Model
from akida_rt.sequence import Sequence

__version__ = "0.1.0"


def devices() -> list[Any]:
    """Every device the driver discovers; the simulated AKD1000 when no board is present."""
    from akida_rt.driver.discovery import devices as _devices

    return _devices()


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
