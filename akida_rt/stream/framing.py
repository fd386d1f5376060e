"""Events to uint8 input frames: by event count or by time window, polarity merged or
split into channels, the sensor cropped and binned onto the model's input, per-pixel
counts clipped to 255.

Reference 003 (Sorbaro et al.) frames MNIST-DVS by 3,000 events per frame.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from akida_rt.errors import StreamError
from akida_rt.native import _kernels
from akida_rt.stream.events import as_events, empty

MAX_EMPTY_RUN = 100_000  # windows one chunk may complete (a corrupt time jump otherwise)
# Sensor pixels a side (EVT2/EVT3 addresses have 11 bits): the pixel table has one int32
# per sensor pixel
MAX_SENSOR = 4096


class Polarity(enum.Enum):
    MERGE = "merge"  # one channel: every event counts
    SPLIT = "split"  # two channels: OFF (p=0) then ON (p=1)


@dataclass(frozen=True)
class Framing:
    """How events become frames (one of events_per_frame or window_us).

    Args:
        shape: the frame (H, W, C); C is 1 (polarity merged) or 2 (split).
        sensor: the sensor's (width, height).
        events_per_frame: N events per frame (the last partial frame is dropped).
        window_us: one frame per window of this many microseconds (empty ones too).
        crop: (x, y, width, height) of the sensor to keep; default the whole sensor.
        binning: sensor pixels per frame pixel along each axis; default the smallest
            that fits the crop into the frame. The binned crop is centred in the frame.
    """

    shape: tuple[int, int, int]
    sensor: tuple[int, int]
    events_per_frame: int | None = None
    window_us: int | None = None
    crop: tuple[int, int, int, int] | None = None
    binning: int | None = None

    def __post_init__(self) -> None:
        if (self.events_per_frame is None) == (self.window_us is None):
            raise StreamError("give exactly one of events_per_frame and window_us")
        if (self.events_per_frame or 1) < 1 or (self.window_us or 1) < 1:
            raise StreamError("events_per_frame and window_us must be at least 1")
        if self.shape[2] not in (1, 2):
            raise StreamError(f"event frames have 1 or 2 channels, the model takes {self.shape[2]}")
        if min(self.sensor) < 1:
            raise StreamError(f"the sensor size {self.sensor} is unknown; pass sensor=(W, H)")
        if max(self.sensor) > MAX_SENSOR:
            raise StreamError(
                f"the sensor size {self.sensor} is over {MAX_SENSOR} pixels a side; "
                "is the recording's header corrupt?"
            )

    @property
    def polarity(self) -> Polarity:
        return Polarity.MERGE if self.shape[2] == 1 else Polarity.SPLIT

    def pixel_table(self) -> np.ndarray:
        """Per sensor pixel (y, x), flattened, with one more column and row where larger
        coordinates are clipped to: its offset in a frame ((y*W + x)*C), or the frame size
        when the crop leaves it out, so its events land past the frame and are ignored."""
        h, w, c = self.shape
        sw, sh = self.sensor
        x0, y0, cw, ch = self.crop or (0, 0, sw, sh)
        b = self.binning or max(1, math.ceil(cw / w), math.ceil(ch / h))
        ox, oy = (w - math.ceil(cw / b)) // 2, (h - math.ceil(ch / b)) // 2
        outside = h * w * c

        def table(
            size: int, start: int, length: int, offset: int, out: int, unit: int
        ) -> np.ndarray:
            pos = np.arange(size + 1)
            cell = (pos - start) // b + offset
            ok = (pos >= start) & (pos < min(start + length, size)) & (cell >= 0) & (cell < out)
            return np.where(ok, cell * unit, outside)

        tx, ty = table(sw, x0, cw, ox, w, c), table(sh, y0, ch, oy, h, w * c)
        return np.minimum(ty[:, None] + tx[None, :], outside).astype(np.int32).ravel()


class EventFramer:
    """Turns successive event chunks into frames; holds the events of the frame in progress.

    `push(events)` returns (frames uint8 (n, H, W, C), end times (n,) in us) for the frames
    the chunk completes; `flush()` those of a last, partial time window. The held events
    and the new chunk are counted as one sequence without joining them
    (akida_rt.native._kernels.frame_counts; tests/native_reference.py keeps the numpy form).
    """

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.table = framing.pixel_table()
        self.pixels = math.prod(framing.shape)
        self._rest = empty()
        self._t0: int | None = None  # start of the time-window grid
        self.frames_out = 0

    def push(self, ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev = np.ascontiguousarray(as_events(ev))
        held = self._rest
        total = len(held) + len(ev)
        per_frame, window = self.framing.events_per_frame, self.framing.window_us
        if per_frame is not None:
            n = total // per_frame
            bounds = np.arange(n + 1, dtype=np.int64) * per_frame
            ends = _times(held, ev, bounds[1:] - 1)
            return self._frames(held, ev, bounds), ends
        assert window is not None
        if total == 0:
            return self._frames(held, ev, np.zeros(1, np.int64)), np.zeros(0, np.int64)
        if self._t0 is None:
            self._t0 = int(_times(held, ev, np.zeros(1, np.int64))[0])
        # windows before the last event's are complete
        last = int(_times(held, ev, np.full(1, total - 1, np.int64))[0])
        return self._windows(held, ev, (last - self._t0) // window, window)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Frames for the events still held (a last partial time window; a partial
        event-count frame is dropped)."""
        ev, none = self._rest, empty()
        window = self.framing.window_us
        if window is None or len(ev) == 0 or self._t0 is None:
            self._rest = none
            return self._frames(none, none, np.zeros(1, np.int64)), np.zeros(0, np.int64)
        return self._windows(ev, none, (int(ev["t"][-1]) - self._t0) // window + 1, window)

    def _windows(
        self, held: np.ndarray, ev: np.ndarray, n: int, window: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The frames of windows frames_out..n-1 (counted from the grid start), whose
        events begin held + ev; the rest is held for later."""
        assert self._t0 is not None
        first = self.frames_out
        if n - first > MAX_EMPTY_RUN:
            raise StreamError(
                f"events jump {(n - first) * window} us ahead: {n - first} windows in one step "
                f"(over {MAX_EMPTY_RUN}); is the recording's time corrupt?"
            )
        ends = self._t0 + window * np.arange(first + 1, n + 1, dtype=np.int64)
        edges = np.concatenate([[self._t0 + window * first], ends])
        # the two parts are in time order one after the other: an edge's position in
        # their sequence is its position in each, added
        bounds = np.searchsorted(held["t"], edges) + np.searchsorted(ev["t"], edges)
        bounds[0] = 0
        return self._frames(held, ev, bounds.astype(np.int64)), ends

    def _frames(self, held: np.ndarray, ev: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Frame k counts events bounds[k]:bounds[k+1] of held + ev per pixel, clipped to
        255; the events from bounds[-1] on are held for the next push."""
        shape = self.framing.shape
        sw, sh = self.framing.sensor
        n = len(bounds) - 1
        self.frames_out += n
        out = _kernels.frame_counts(
            held, ev, bounds, self.table, sw, sh, shape[2] == 2, self.pixels
        )
        used = int(bounds[-1])
        if used >= len(held):
            self._rest = ev[used - len(held) :].copy()
        else:
            self._rest = np.concatenate([held[used:], ev])
        return out.reshape(n, *shape)


def _times(held: np.ndarray, ev: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The times (int64) of positions `at` of held + ev."""
    t = np.empty(len(at), np.int64)
    inside = at < len(held)
    t[inside] = held["t"][at[inside]]
    t[~inside] = ev["t"][at[~inside] - len(held)]
    return t


def frames_from_events(
    chunks: Iterable[np.ndarray], framing: Framing
) -> Iterator[tuple[np.ndarray, int]]:
    """Each frame (H, W, C) uint8 and its end time (us), from event chunks."""
    framer = EventFramer(framing)
    for chunk in chunks:
        frames, ends = framer.push(chunk)
        yield from zip(frames, ends.tolist(), strict=True)
    frames, ends = framer.flush()
    yield from zip(frames, ends.tolist(), strict=True)
