"""Event representations beyond clipped counts: signed ON-OFF frames, exponential decay,
time surfaces, voxel grids and stacked histograms, over time or event-count windows that
may overlap. docs/streaming.md defines each (formula, parameters, dtype, clipping).

`represent` gives a window's float32 (H, W, C) tensor; `WindowFramer` slides windows over
event chunks and quantizes each tensor to the model's uint8 input.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from akida_rt.errors import StreamError
from akida_rt.stream.events import as_events, empty
from akida_rt.stream.framing import Framing


class Kind(enum.Enum):
    COUNT = "count"  # events per pixel (polarities merged, or split OFF, ON)
    SIGNED = "signed"  # ON minus OFF events per pixel
    DECAY = "decay"  # sum of exp(-(t_end - t)/tau) over the window's events
    SURFACE = "surface"  # exp(-(t_end - t_last)/tau), t_last from the whole stream so far
    VOXEL = "voxel"  # signed events spread bilinearly over `bins` time bins (Zhu et al.)
    HISTOGRAM = "histogram"  # counts per time bin, bins (x 2 when split) channels


SIGNED_KINDS = (Kind.SIGNED, Kind.VOXEL)


@dataclass(frozen=True)
class Representation:
    """What a window of events becomes.

    Args:
        kind: see Kind.
        split: polarities in separate channels (OFF first) for count, decay, surface and
            histogram.
        bins: time bins (voxel grid, stacked histogram).
        tau_us: the decay's and the time surface's time constant.
        gain: the float value multiplied before rounding to uint8 (signed kinds add 128).
    """

    kind: Kind = Kind.COUNT
    split: bool = False
    bins: int = 1
    tau_us: float = 50_000.0
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.bins < 1 or self.tau_us <= 0:
            raise StreamError("bins must be at least 1 and tau_us positive")

    @property
    def channels(self) -> int:
        if self.kind in (Kind.SIGNED,):
            return 1
        if self.kind is Kind.VOXEL:
            return self.bins
        per = 2 if self.split else 1
        return per * (self.bins if self.kind is Kind.HISTOGRAM else 1)

    def to_uint8(self, v: np.ndarray) -> np.ndarray:
        """round(v * gain) (+ 128 for signed kinds), clipped to 0..255."""
        q = np.rint(v.astype(np.float64) * self.gain)
        if self.kind in SIGNED_KINDS:
            q += 128
        return np.clip(q, 0, 255).astype(np.uint8)


def represent(
    ev: np.ndarray,
    rep: Representation,
    pixel: np.ndarray,
    shape: tuple[int, int],
    t_start: int,
    t_end: int,
    last_t: np.ndarray | None = None,
) -> np.ndarray:
    """The float32 (H, W, C) tensor of one window's events `ev` (time-ordered, inside
    [t_start, t_end)); `pixel` is each event's frame pixel y*W + x (H*W: outside the
    frame); `last_t` (float64 (2, H*W), -inf where none) the time surface's memory of the
    events before the window, updated in place."""
    h, w = shape
    n_pix = h * w
    c = rep.channels
    keep = pixel < n_pix
    pix, t, p = pixel[keep].astype(np.int64), ev["t"][keep].astype(np.int64), ev["p"][keep] != 0
    out = np.zeros((n_pix + 1) * c, np.float64)
    kind = rep.kind
    if kind is Kind.SURFACE:
        memory = last_t if last_t is not None else np.full((2, n_pix), -np.inf)
        np.maximum.at(memory, (p.astype(np.int64), pix), t.astype(np.float64))
        surf = np.exp(-(t_end - memory) / rep.tau_us)  # (2, H*W): OFF, ON
        v = np.stack([surf[0], surf[1]], axis=1) if rep.split else surf.max(axis=0)[:, None]
        return v.astype(np.float32).reshape(h, w, c)
    if kind is Kind.VOXEL:
        span = max(int(t[-1] - t[0]), 1) if len(t) else 1
        ts = (rep.bins - 1) * (t - (t[0] if len(t) else 0)) / span
        lo = np.floor(ts).astype(np.int64)
        s = np.where(p, 1.0, -1.0)
        for b, wgt in ((lo, 1.0 - (ts - lo)), (lo + 1, ts - lo)):
            ok = (b < rep.bins) & (wgt > 0)
            np.add.at(out, pix[ok] * c + b[ok], s[ok] * wgt[ok])
        return out[: n_pix * c].astype(np.float32).reshape(h, w, c)
    if kind is Kind.SIGNED:
        np.add.at(out, pix, np.where(p, 1.0, -1.0))
    elif kind is Kind.DECAY:
        pol = p.astype(np.int64) if rep.split else np.zeros(len(p), np.int64)
        np.add.at(out, pix * c + pol, np.exp(-(t_end - t) / rep.tau_us))
    else:  # COUNT, HISTOGRAM
        per = 2 if rep.split else 1
        b = np.zeros(len(t), np.int64)
        if kind is Kind.HISTOGRAM:
            b = np.minimum((rep.bins * (t - t_start)) // max(t_end - t_start, 1), rep.bins - 1)
        ch = b * per + (p.astype(np.int64) if rep.split else 0)
        np.add.at(out, pix * c + ch, 1.0)
    return out[: n_pix * c].astype(np.float32).reshape(h, w, c)


@dataclass(frozen=True)
class Windows:
    """Windows of `window_us` microseconds starting every `stride_us` (overlapping when the
    stride is shorter), or of `events` events starting every `stride_events`."""

    window_us: int | None = None
    stride_us: int | None = None
    events: int | None = None
    stride_events: int | None = None

    def __post_init__(self) -> None:
        if (self.window_us is None) == (self.events is None):
            raise StreamError("give exactly one of a time window and an event count")
        for name in ("window_us", "stride_us", "events", "stride_events"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise StreamError(f"{name} must be at least 1")


class WindowFramer:
    """Event chunks to uint8 model inputs (H, W, C) of a Representation over Windows.

    `push(chunk)` yields (frame, window end us) for the windows the chunk completes;
    `flush()` those of a last partial time window."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        sensor: tuple[int, int],
        rep: Representation,
        windows: Windows,
        crop: tuple[int, int, int, int] | None = None,
    ) -> None:
        h, w, c = shape
        if c != rep.channels:
            raise StreamError(f"the model takes {c} channels; the {rep.kind.value} "
                              f"representation gives {rep.channels} (set --bins or the polarity split)")  # fmt: skip
        # the sensor-to-frame pixel map of count frames (crop, binning, centring)
        self.table = Framing((h, w, 1), sensor, window_us=1, crop=crop).pixel_table()
        self.sensor = sensor
        self.hw = (h, w)
        self.rep, self.win = rep, windows
        self.held = empty()
        self.memory = np.full((2, h * w), -np.inf)  # events before the held ones
        self.start: int | None = None  # the next window's start time (time windows)

    def _pixels(self, ev: np.ndarray) -> np.ndarray:
        sw, sh = self.sensor
        x = np.minimum(ev["x"].astype(np.int64), sw)
        y = np.minimum(ev["y"].astype(np.int64), sh)
        return self.table[y * (sw + 1) + x]

    def _emit(self, ev: np.ndarray, t0: int, t1: int) -> np.ndarray:
        mem = self.memory.copy()
        v = represent(ev, self.rep, self._pixels(ev), self.hw, t0, t1, mem)
        return self.rep.to_uint8(v)

    def _advance(self, gone: np.ndarray) -> None:
        """Events that no later window holds: into the time surface's memory."""
        if len(gone) and self.rep.kind is Kind.SURFACE:
            pix = self._pixels(gone)
            ok = pix < self.hw[0] * self.hw[1]
            np.maximum.at(self.memory, ((gone["p"][ok] != 0).astype(np.int64), pix[ok]),
                          gone["t"][ok].astype(np.float64))  # fmt: skip

    def push(self, chunk: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        chunk = as_events(chunk)
        ev = np.concatenate([self.held, chunk]) if len(self.held) else chunk
        win = self.win
        if win.events is not None:
            n, stride = win.events, win.stride_events or win.events
            at = 0
            while at + n <= len(ev):
                part = ev[at : at + n]
                yield (
                    self._emit(part, int(part["t"][0]), int(part["t"][-1]) + 1),
                    int(part["t"][-1]),
                )
                self._advance(ev[at : at + stride])
                at += stride
            self.held = ev[at:].copy()
            return
        assert win.window_us is not None
        if len(ev) == 0:
            return
        size, stride = win.window_us, win.stride_us or win.window_us
        if self.start is None:
            self.start = int(ev["t"][0])
        last = int(ev["t"][-1])
        while self.start + size <= last:
            t0, t1 = self.start, self.start + size
            a, b = np.searchsorted(ev["t"], [t0, t1])
            yield self._emit(ev[a:b], t0, t1), t1
            cut = int(np.searchsorted(ev["t"], t0 + stride))
            self._advance(ev[:cut])
            ev = ev[cut:]
            self.start += stride
        self.held = ev.copy()

    def flush(self) -> Iterator[tuple[np.ndarray, int]]:
        if self.win.window_us is None or self.start is None or len(self.held) == 0:
            return
        t0 = self.start
        yield self._emit(self.held, t0, t0 + self.win.window_us), t0 + self.win.window_us
        self.held = empty()


def window_count(duration_us: int, window_us: int, stride_us: int) -> int:
    """Complete windows in a span (for sizing)."""
    return max(0, math.floor((duration_us - window_us) / stride_us) + 1)
