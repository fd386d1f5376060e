"""The lowest seam: a bus that reads and writes registers and device memory.

Transports implement Bus, one per file, and register a URL scheme here
(`sim://akd1000/0`, `pcie:///dev/akida0`, `usb://1e7c:bca1?serial=...`). A Bus is small
and stateless: locking, retries and timeouts live in the device object above it. Each
transport translates its own OS/library errors into akida_rt.errors in one place.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from urllib.parse import urlsplit

from akida_rt.errors import DeviceNotFound


class Bus(abc.ABC):
    """Register and memory access to one device."""

    url: str = ""

    @abc.abstractmethod
    def read32(self, addr: int) -> int:
        """Read the 32-bit register at byte address `addr`."""

    @abc.abstractmethod
    def write32(self, addr: int, value: int) -> None:
        """Write a 32-bit register."""

    @abc.abstractmethod
    def read(self, addr: int, n: int) -> bytes:
        """Read `n` bytes of device memory at physical address `addr` (DMA / bulk)."""

    @abc.abstractmethod
    def write(self, addr: int, data: bytes) -> None:
        """Write device memory at physical address `addr`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the bus; further calls raise DeviceLost."""


# scheme -> "module:function" that opens a Bus from a URL. Transports are imported lazily.
_SCHEMES: dict[str, str] = {
    "sim": "akida_rt.driver.sim_transport:open_bus",
    "pcie": "akida_rt.driver.pcie:open_bus",
    "usb": "akida_rt.driver.usb:open_bus",
}


def check_url(url: str) -> None:
    """Raise DeviceNotFound, naming the known schemes, when no transport serves `url`."""
    if urlsplit(url).scheme not in _SCHEMES:
        raise DeviceNotFound(f"no transport for '{url}'; known schemes: {sorted(_SCHEMES)}")


def open_bus(url: str) -> Bus:
    """Open the bus named by `url`, choosing the transport by its scheme."""
    check_url(url)
    module, func = _SCHEMES[urlsplit(url).scheme].split(":")
    opener: Callable[[str], Bus] = getattr(importlib.import_module(module), func)
    return opener(url)
