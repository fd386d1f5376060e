"""Event filters applied to chunks in stream order, state carried across chunks:
refractory period, background-activity denoise and hot pixels (docs/streaming.md).

Each is vectorized: an event's "previous event at pixel q" is found by sorting the chunk's
events by (pixel, index) and a search, falling back on the last time per pixel of earlier
chunks."""

from __future__ import annotations

import numpy as np

from akida_rt.errors import StreamError
from akida_rt.stream.events import empty

NEVER = np.iinfo(np.int64).min // 2


class _PixelMemory:
    """Per sensor pixel, the time of its last event in earlier chunks (NEVER if none)."""

    def __init__(self, sensor: tuple[int, int]) -> None:
        if min(sensor) < 1:
            raise StreamError(f"filters need the sensor size, got {sensor}; pass --sensor W,H")
        self.w, self.h = sensor
        self.last = np.full(self.w * self.h, NEVER, np.int64)

    def previous(self, ev: np.ndarray, dx: int, dy: int) -> np.ndarray:
        """For each event, the time of the last event before it (in stream order) at the
        pixel (x + dx, y + dy); NEVER when none or outside the sensor."""
        x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
        pix = np.minimum(y, self.h - 1) * self.w + np.minimum(x, self.w - 1)
        n = len(ev)
        keys = pix * n + np.arange(n)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        qx, qy = x + dx, y + dy
        inside = (qx >= 0) & (qx < self.w) & (qy >= 0) & (qy < self.h)
        q = np.where(inside, qy * self.w + qx, 0)
        at = np.searchsorted(sorted_keys, q * n + np.arange(n)) - 1  # last key < (q, i)
        hit = (at >= 0) & (sorted_keys[np.maximum(at, 0)] // n == q)
        prev = np.where(hit, ev["t"][order[np.maximum(at, 0)]], self.last[q])
        return np.where(inside, prev, NEVER)

    def remember(self, ev: np.ndarray) -> None:
        if len(ev):
            x = np.minimum(ev["x"].astype(np.int64), self.w - 1)
            y = np.minimum(ev["y"].astype(np.int64), self.h - 1)
            self.last[y * self.w + x] = ev["t"]  # later events overwrite earlier ones


class RefractoryFilter:
    """Drops an event when the previous event at its pixel (kept or not) is at most
    `period_us` earlier (tonic's RefractoryPeriod)."""

    def __init__(self, sensor: tuple[int, int], period_us: int) -> None:
        self.mem, self.period = _PixelMemory(sensor), period_us

    def __call__(self, ev: np.ndarray) -> np.ndarray:
        prev = self.mem.previous(ev, 0, 0)
        keep = ev["t"] - prev > self.period
        self.mem.remember(ev)
        return ev[keep]


class DenoiseFilter:
    """Background-activity filter: keeps an event when one of its 4 neighbours (left,
    right, up, down) had an event less than `window_us` earlier (tonic's Denoise)."""

    def __init__(self, sensor: tuple[int, int], window_us: int) -> None:
        self.mem, self.window = _PixelMemory(sensor), window_us

    def __call__(self, ev: np.ndarray) -> np.ndarray:
        keep = np.zeros(len(ev), bool)
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            keep |= ev["t"] - self.mem.previous(ev, dx, dy) < self.window
        self.mem.remember(ev)
        return ev[keep]


class HotPixelFilter:
    """Drops every event of a hot pixel: one with more than `max_rate_hz` x the calibration
    time events during the stream's first `calibration_us` (its events are held until the
    calibration ends, then passed on without the hot pixels'), or one listed in `pixels`."""

    def __init__(
        self,
        sensor: tuple[int, int],
        max_rate_hz: float = 1000.0,
        calibration_us: int = 100_000,
        pixels: list[tuple[int, int]] | None = None,
    ) -> None:
        self.w, self.h = sensor
        self.limit = max_rate_hz * calibration_us / 1e6
        self.calibration = calibration_us
        self.hot = np.zeros(self.w * self.h + 1, bool)
        for x, y in pixels or []:
            self.hot[y * self.w + x] = True
        self.counts = np.zeros(self.w * self.h + 1, np.int64)
        self.held: list[np.ndarray] = []
        self.t_first: int | None = None
        self.calibrated = calibration_us <= 0

    def _pix(self, ev: np.ndarray) -> np.ndarray:
        x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
        inside = (x < self.w) & (y < self.h)
        return np.where(inside, y * self.w + x, self.w * self.h)

    def __call__(self, ev: np.ndarray) -> np.ndarray:
        if not self.calibrated and len(ev):
            if self.t_first is None:
                self.t_first = int(ev["t"][0])
            end = int(np.searchsorted(ev["t"], self.t_first + self.calibration))
            np.add.at(self.counts, self._pix(ev[:end]), 1)
            self.held.append(ev[:end])
            if end == len(ev):
                return ev[:0]
            self.calibrated = True
            self.hot |= self.counts > self.limit
            self.hot[-1] = False
            ev = np.concatenate([*self.held, ev[end:]])
            self.held = []
        return ev[~self.hot[self._pix(ev)]]

    def flush(self) -> np.ndarray:
        """The held events of a stream shorter than the calibration."""
        if self.calibrated or not self.held:
            return np.concatenate(self.held) if self.held else empty()
        self.calibrated = True
        self.hot |= self.counts > self.limit
        self.hot[-1] = False
        ev = np.concatenate(self.held)
        self.held = []
        return ev[~self.hot[self._pix(ev)]]
