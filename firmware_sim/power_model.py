"""The power model of the simulated AKD1000 and its power sensor.

Board power = floor power + energy per SynOp + energy per DMA byte, spread over the
duration of each phase; between phases (link transfers, per-request and per-frame host
work) the board idles at its floor. A sensor samples it at a fixed period of the board's
host-visible time, so a run has average, min, max and std power, and energy per frame is
average power over fps (docs/clock-and-power-model.md).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from akida_rt.firmware_sim.clock_model import Phase

MIN_SAMPLES = 2  # fewer samples than this: the run was too short to measure


@dataclass(frozen=True)
class PowerModel:
    """Constants of the power model.

    Attributes:
        floor_mw: board floor power (idle, clocks running).
        pj_per_synop: dynamic energy of one synaptic operation.
        pj_per_dma_byte: energy of moving one byte between device memory and the mesh.
        sample_period_s: power sensor sampling period.
        noise_mw: standard deviation of the sensor's reading noise.
        seed: seeds the sensor noise (deterministic per chip).
    """

    floor_mw: float = 912.0
    pj_per_synop: float = 9.5
    pj_per_dma_byte: float = 150.0
    sample_period_s: float = 10e-3
    noise_mw: float = 1.5
    seed: int = 0

    @classmethod
    def for_serial(cls, serial: str) -> PowerModel:
        """A board's model: the floor varies between boards within 912-915 mW."""
        crc = zlib.crc32(serial.encode())
        return cls(floor_mw=912.0 + (crc % 300) / 100.0, seed=crc)

    def phase_mw(self, phase: Phase, clock_hz: float) -> float:
        """Average board power during `phase` with the NPs clocked at `clock_hz`."""
        if phase.clk <= 0:
            return self.floor_mw
        energy_pj = phase.synops * self.pj_per_synop + phase.dma_bytes * self.pj_per_dma_byte
        return self.floor_mw + energy_pj * 1e-9 / (phase.clk / clock_hz)  # pJ/s -> mW


@dataclass
class PowerReading:
    """What POWER_READ returns (mW; NaN when the window was too short to measure)."""

    floor_mw: float
    avg_mw: float
    min_mw: float
    max_mw: float
    std_mw: float
    samples: int
    frames: int
    energy_nj: int


class PowerSampler:
    """Integrates energy and samples power over the board's host-visible time.

    Args:
        model: the board's power constants.
        clock_hz: the clock the NPs run at, turning phase clocks into seconds.
    """

    def __init__(self, model: PowerModel, clock_hz: float) -> None:
        self.model = model
        self.clock_hz = clock_hz
        self.total_energy_nj = 0.0
        self._rng = np.random.default_rng(model.seed)
        self.restart()

    @property
    def floor_mw(self) -> float:
        return self.model.floor_mw

    def restart(self) -> None:
        """Start a new measurement window."""
        self._t = 0.0  # seconds since the window started
        self._next = self.model.sample_period_s  # time of the next sensor sample
        self._n = 0
        self._sum = self._sumsq = 0.0
        self._min, self._max = math.inf, -math.inf
        self._frames = 0
        self._energy_nj = 0.0

    def instant_mw(self) -> float:
        """The sensor reading now (the chip is idle between commands)."""
        return self.model.floor_mw + float(self._rng.normal(0.0, self.model.noise_mw))

    def idle(self, seconds: float) -> None:
        """The board waits `seconds` at its floor power (transfers, host work)."""
        if seconds <= 0:
            return
        energy_nj = self.model.floor_mw * seconds * 1e6  # mW*s = mJ
        self._energy_nj += energy_nj
        self.total_energy_nj += energy_nj
        end = self._t + seconds
        if self._next < end:
            period = self.model.sample_period_s
            count = math.ceil((end - self._next) / period)
            self._take(np.full(count, self.model.floor_mw))
            self._next += count * period
        self._t = end

    def record(self, phases: list[Phase], frames: int, gap_s: float = 0.0) -> None:
        """Account `frames` repetitions of the per-frame `phases`, each frame followed by
        `gap_s` seconds at floor power (the host's per-frame DMA handshake)."""
        if frames <= 0 or not phases:
            return
        dur = np.array([p.clk / self.clock_hz for p in phases] + [gap_s], dtype=np.float64)
        mw = np.array([self.model.phase_mw(p, self.clock_hz) for p in phases] + [self.floor_mw])
        frame_s = float(dur.sum())
        energy_nj = float((mw * dur).sum()) * 1e6 * frames  # mW*s = mJ
        self._energy_nj += energy_nj
        self.total_energy_nj += energy_nj
        self._frames += frames
        period = self.model.sample_period_s
        start, end = self._t, self._t + frame_s * frames
        if self._next < end and frame_s > 0:
            times = np.arange(self._next, end, period)
            offset = np.mod(times - start, frame_s)
            index = np.searchsorted(np.cumsum(dur), offset, side="right")
            self._take(mw[np.minimum(index, len(mw) - 1)])
            self._next = float(times[-1]) + period
        self._t = end

    def _take(self, true_mw: np.ndarray) -> None:
        samples = true_mw + self._rng.normal(0.0, self.model.noise_mw, true_mw.shape)
        self._n += samples.size
        self._sum += float(samples.sum())
        self._sumsq += float((samples**2).sum())
        self._min = min(self._min, float(samples.min()))
        self._max = max(self._max, float(samples.max()))

    def read(self) -> PowerReading:
        """Figures of the current window."""
        n = self._n
        if n < MIN_SAMPLES:
            nan = math.nan
            avg = mn = mx = sd = nan
        else:
            avg = self._sum / n
            sd = math.sqrt(max(0.0, self._sumsq / n - avg * avg))
            mn, mx = self._min, self._max
        return PowerReading(
            self.model.floor_mw, avg, mn, mx, sd, n, self._frames, round(self._energy_nj)
        )
