"""What a Device reports about itself: who the chip is, its counters since the last reset,
the modelled clocks, board time and power (from the simulated chip's simulator-only block)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from akida_rt.driver.akd1000_host import Akd1000Host
from akida_rt.driver.bus import Bus
from akida_rt.driver.device_types import Counters, DeviceStats, Identity, RetryingBus

from akida_rt.akd1000 import sim_block as sb
from akida_rt.akd1000.memory_map import DDR_SIZE, TOP_LEVEL_REG_BASE
from akida_rt.errors import DeviceError, DeviceLost
from akida_rt.mapping.hardware import DeviceSpec, spec_by_name

ENGINE_VERSION = "2.19.3"  # the program binaries' engine version this host drives


class DeviceReports:
    """The reporting side of driver.device.Device (a base class of it): identity, stats
    and power, read under the device's lock."""

    id: str
    url: str
    kind: str
    bus: Bus
    host: Akd1000Host
    counters: Counters
    _identity: Identity | None
    _resident: str | None
    _retrying: RetryingBus
    _infer_clk: int
    _program_clk: int
    _chip_base: tuple[int, int, int]
    _window_frames: int
    _window_energy_nj: int

    def _guard(self) -> AbstractContextManager[None]:
        """Hold the device lock (the Device's)."""
        raise NotImplementedError

    @property
    def identity(self) -> Identity:
        assert self._identity is not None
        return self._identity

    @property
    def simulated(self) -> bool:
        """True when the chip identifies itself as simulated (its simulator-only register
        block answers "SIMU"), whatever the transport."""
        return self.identity.simulated

    def _sim(self, offset: int) -> int:
        return self.bus.read32(TOP_LEVEL_REG_BASE + sb.SIM_BASE + offset)

    def _sim64(self, lo: int) -> int:
        low = self._sim(lo)
        return (self._sim(lo + 4) << 32) | low

    def now(self) -> float:
        """The clock calls are timed with (seconds): the host's monotonic clock on a board;
        on the simulated chip, its modelled board time (simulator-only register), so fps
        and latency are what the board would show, not how fast this host simulates."""
        if not self.simulated:
            return time.perf_counter()
        return self._sim64(sb.SIM_TIME_LO) / 1e9

    @property
    def spec(self) -> DeviceSpec:
        """The NP mesh, from the description the device names."""
        return spec_by_name(self.identity.name)

    @property
    def version(self) -> str:
        return self.identity.version

    @property
    def serial(self) -> str:
        return self.identity.serial

    def describe(self) -> dict[str, Any]:
        """The fields `akida devices --json` lists."""
        ident = self.identity
        return {
            "id": self.id,
            "url": self.url,
            "kind": self.kind,
            "simulated": self.simulated,
            "version": ident.version,
            "name": ident.name,
            "serial": ident.serial,
            "nodes": ident.nodes,
            "nps": ident.nps,
            "firmware": ident.firmware,
        }

    def identify(self) -> Identity:
        """Ask the chip who it is."""
        with self._guard():
            self._identity = self._identify()
            return self._identity

    def _identify(self) -> Identity:
        if self.bus.read32(TOP_LEVEL_REG_BASE) == 0xFFFFFFFF:  # IP_VERSION of no chip
            raise DeviceLost(f"{self.url}: the chip is gone (registers read all-ones: unplugged)")
        version = self.host.version
        if version is None or version.name != "NSoC_v2":
            raise DeviceError(
                f"{self.url}: not an AKD1000 (hardware version {version}); this driver runs "
                "AKD1000 (NSoC_v2) chips only"
            )
        simulated = self._sim(sb.SIM_MAGIC) == sb.SIM_MAGIC_VALUE
        spec = spec_by_name("AKD1000")
        clock = spec.clock_hz  # nominal; the simulated NPs' effective clock is a model detail
        serial = str(getattr(self.bus, "serial", "") or "")
        v = version
        hw = f"{v.vendor_id:02X}.{v.product_id:02X}.{v.major_rev:03d}.{v.minor_rev:03d}"
        return Identity(
            spec.name, hw, f"akida engine {ENGINE_VERSION} protocol", serial,
            len({(n.ident.col, n.ident.row) for n in spec.nps}) or 20, len(spec.nps), spec.hrc is not None,
            clock, DDR_SIZE, spec.input_sram_per_pair, spec.weight_sram_per_pair, simulated,
        )  # fmt: skip

    def _chip_counts(self) -> tuple[int, int, int]:
        """(frames, synops, loads) as the chip counts them (the host's on a board)."""
        if self.simulated:
            return self._sim(sb.SIM_FRAMES), self._sim(sb.SIM_SYNOPS), self.counters.loads
        return self.counters.frames, 0, self.counters.loads

    def _restart_chip_counts(self) -> None:
        """The device counters start again (at open and after a reset)."""
        self._infer_clk = self._program_clk = 0
        self._chip_base = self._chip_counts()

    def stats(self) -> DeviceStats:
        """Device counters since its last reset, with the host counters (since open). Synaptic
        operations, energy and modelled clocks exist only on the simulated chip."""
        with self._guard():
            traffic = sum(c.bytes_read + c.bytes_written for c in self.host.counts.values())
            sim = self.simulated
            frames, synops, loads = (
                (now - base) & 0xFFFFFFFF
                for now, base in zip(self._chip_counts(), self._chip_base, strict=True)
            )
            return DeviceStats(
                frames, self._infer_clk, self._program_clk, synops, traffic, loads,
                self._sim64(sb.SIM_ENERGY_LO) / 1e6 if sim else 0.0,
                self.identity.clock_hz,
                host=self._counters(), resident=self._resident,
            )  # fmt: skip

    def _counters(self) -> Counters:
        counters = Counters(**asdict(self.counters))
        counters.retries = self._retrying.retried
        return counters

    def power_start(self) -> None:
        """Start a new power window (simulated chip only: no AKD1000 reports power)."""
        with self._guard():
            if self.simulated:
                self.bus.write32(TOP_LEVEL_REG_BASE + sb.SIM_BASE + sb.SIM_WINDOW, 1)
                self._window_energy_nj = self._sim64(sb.SIM_ENERGY_LO)
            self._window_frames = 0

    def power(self) -> dict[str, Any]:
        """Power of the current window: floor, avg/min/max (None if too short or on a
        board, which has no power sensor on its host interface)."""
        with self._guard():
            if not self.simulated:
                return {"floor_mw": None, "power_mw": None, "samples": 0,
                        "frames": self._window_frames, "energy_mj": None}  # fmt: skip
            samples = self._sim(sb.SIM_WINDOW)
            mw = {k: self._sim(o) / 1000 for k, o in (
                ("avg", sb.SIM_WINDOW_AVG_UW), ("min", sb.SIM_WINDOW_MIN_UW),
                ("max", sb.SIM_WINDOW_MAX_UW), ("std", sb.SIM_WINDOW_STD_UW))}  # fmt: skip
            return {
                "floor_mw": self._sim(sb.SIM_FLOOR_UW) / 1000,
                "power_mw": mw if samples >= 2 else None,
                "samples": samples,
                "frames": self._window_frames,
                "energy_mj": (self._sim64(sb.SIM_ENERGY_LO) - self._window_energy_nj) / 1e6,
            }
