"""Plain data of the device object: its timeouts, identity, counters and statistics, the
bus wrapper that retries timed-out transfers, and the input conversion to what the chip
takes (driver/device.py)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import numpy as np
from akida_rt.driver.bus import Bus

from akida_rt.errors import DeviceError, InputError, TransportTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every wait, in seconds (simulated devices compute on the host CPU)."""

    command_s: float = 5.0  # identify, stats, power
    reset_s: float = 5.0
    load_s: float = 10.0  # one config-DMA job
    load_per_mib_s: float = 5.0
    run_s: float = 10.0  # the longest wait between two outputs
    run_per_frame_s: float = 2.0

    def scaled(self, factor: float) -> Timeouts:
        """Every bound times `factor` (e.g. shorter in tests, longer on a slow host)."""
        return Timeouts(*(getattr(self, f.name) * factor for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class Identity:
    """Who the chip is: its hardware version, and the mesh its description names."""

    name: str
    version: str
    firmware: str
    serial: str
    nodes: int
    nps: int
    hrc: bool
    clock_hz: int
    mem_size: int
    np_input_bytes: int
    np_weight_bytes: int
    simulated: bool = False


@dataclass
class Counters:
    """Host-side counters of one device since it was opened."""

    loads: int = 0
    reloads_skipped: int = 0
    bytes_programmed: int = 0
    load_s: float = 0.0
    infer_s: float = 0.0
    frames: int = 0
    runs: int = 0
    synops: int = 0
    retries: int = 0
    resets: int = 0


@dataclass
class Soc:
    """System-on-chip settings (as in BrainChip's API: device.soc)."""

    power_measurement_enabled: bool = False


@dataclass
class DeviceStats:
    """Device counters plus the host counters. On a board, frames and clocks are the
    host's counts and the input DMA's clock counter, synops and energy are 0 (no real
    AKD1000 reports them); on the simulated chip they are its modelled figures."""

    frames: int
    inference_clk: int
    program_clk: int
    synops: int
    dma_bytes: int
    loads: int
    energy_mj: float
    clock_hz: int
    host: Counters = field(default_factory=Counters)
    resident: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetryingBus(Bus):
    """`bus` with each timed-out DDR transfer retried up to `retries` times (a transfer
    is idempotent: the same bytes at the same address); register accesses are not."""

    def __init__(self, bus: Bus, retries: int) -> None:
        self.inner, self.retries, self.retried = bus, retries, 0
        self.url = bus.url

    def _again(self, op: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return op()
            except TransportTimeout:
                if attempt == self.retries:
                    raise
                self.retried += 1
                log.warning("%s: transfer timed out; retrying (%d)", self.url, attempt + 1)
        raise AssertionError("unreachable")

    def read32(self, addr: int) -> int:
        return self.inner.read32(addr)

    def write32(self, addr: int, value: int) -> None:
        self.inner.write32(addr, value)

    def read(self, addr: int, n: int) -> bytes:
        return self._again(lambda: self.inner.read(addr, n))

    def write(self, addr: int, data: bytes) -> None:
        self._again(lambda: self.inner.write(addr, data))

    def close(self) -> None:
        self.inner.close()


def chip_inputs(batch: np.ndarray, where: str) -> np.ndarray:
    """`batch` as the chip takes it: uint8 (activations, images) or int8 values."""
    x = np.asarray(batch)
    if x.shape[0] == 0:
        raise DeviceError(f"{where}: empty batch")
    if x.dtype in (np.uint8, np.int8):
        return x
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 255:
        return x.astype(np.uint8)
    if lo >= -128 and hi <= 127:
        return x.astype(np.int8)
    raise InputError(f"{where}: inputs span {lo:g}..{hi:g}; an AKD1000 takes uint8 or int8 values")
