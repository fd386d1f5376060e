"""DVS events as numpy structured arrays, and the checks every event reader applies.

An event is (t, x, y, p): t in microseconds (int64), pixel x and y, polarity p (1 ON,
0 OFF). Readers yield chunks of `EVENT_DTYPE` with non-decreasing t.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from akida_rt.errors import EventFileError

log = logging.getLogger(__name__)

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")], align=True)
# events per chunk a reader yields (1 MiB): larger chunks were mapped and unmapped again on
# every chunk (page faults: EVT2 read at 69 M ev/s in 256 Ki-event chunks, 87 in 64 Ki)
DEFAULT_CHUNK = 1 << 16

# Field names other writers use for the same data (dv-processing, tonic, Prophesee).
_ALIASES = {"t": ("t", "timestamp", "ts"), "x": ("x",), "y": ("y",), "p": ("p", "polarity", "pol")}


class OnError(enum.Enum):
    """What a reader does with a bad word, a truncated tail or a timestamp that goes back."""

    RAISE = "raise"  # stop with EventFileError naming the file and offset
    SKIP = "skip"  # drop what is bad (logged once per kind), keep reading


@dataclass(frozen=True)
class SensorInfo:
    """What a recording says about its sensor (0 when it does not say)."""

    width: int = 0
    height: int = 0
    format: str = ""


class EventReader(Protocol):
    """An event file opened for chunked reading."""

    path: str
    sensor: SensorInfo

    def chunks(self) -> Iterator[np.ndarray]:
        """Successive EVENT_DTYPE arrays, in time order, never the whole file at once."""
        ...

    def close(self) -> None: ...


def empty(n: int = 0) -> np.ndarray:
    return np.zeros(n, EVENT_DTYPE)


def make_events(t: Any, x: Any, y: Any, p: Any) -> np.ndarray:
    """An EVENT_DTYPE array from four equally long columns; a polarity above 0 is ON (1),
    any other (0, -1, False) OFF (0)."""
    t = np.asarray(t)
    out = empty(len(t))
    out["t"], out["x"], out["y"], out["p"] = t, x, y, np.asarray(p) > 0
    return out


def as_events(arr: np.ndarray, source: str = "array") -> np.ndarray:
    """`arr` as EVENT_DTYPE: a structured array with t/x/y/p fields (or the dv-processing
    names timestamp/polarity); polarities become 0/1.

    Raises:
        EventFileError: the array has no such fields.
    """
    if arr.dtype == EVENT_DTYPE:
        return arr
    names = arr.dtype.names or ()
    cols = {}
    for field, aliases in _ALIASES.items():
        found = next((a for a in aliases if a in names), None)
        if found is None:
            raise EventFileError(
                source, 0, f"an event array needs fields t, x, y, p; got {list(names) or arr.dtype}"
            )
        cols[field] = arr[found]
    return make_events(cols["t"], cols["x"], cols["y"], cols["p"])


class TimeGuard:
    """Checks that timestamps never decrease, across chunks; in SKIP mode drops the events
    that go back in time (and says so once)."""

    def __init__(self, path: str, on_error: OnError) -> None:
        self.path, self.on_error = path, on_error
        self.last = np.iinfo(np.int64).min
        self.dropped = 0

    def check(self, ev: np.ndarray, offsets: np.ndarray | int) -> np.ndarray:
        """`ev` if in order; `offsets` are the events' byte offsets in the file (an int: the
        index of the first event), used to name where time went back."""
        if len(ev) == 0:
            return ev
        t = ev["t"]
        prev = np.empty_like(t)
        prev[0], prev[1:] = self.last, t[:-1]
        back = t < prev
        if back.any():
            if self.on_error is OnError.RAISE:
                i = int(np.argmax(back))
                where = int(offsets[i]) if isinstance(offsets, np.ndarray) else offsets + i
                raise EventFileError(
                    self.path, where,
                    f"timestamp {int(t[i])} us goes back from {int(prev[i])} us "
                    "(timestamps must not decrease)",
                )  # fmt: skip
            keep = t >= np.maximum.accumulate(np.maximum(t, self.last))
            if self.dropped == 0:
                log.warning("%s: dropping events whose timestamp goes back", self.path)
            self.dropped += int((~keep).sum())
            ev = ev[keep]
            if len(ev) == 0:
                return ev
        self.last = int(ev["t"][-1])
        return ev


def rechunk(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Chunks of exactly `size` events (the last may be shorter) from chunks of any size."""
    parts: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        parts.append(chunk)
        held += len(chunk)
        while held >= size:
            joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
            yield joined[:size]
            parts, held = [joined[size:]], held - size
    if held:
        yield np.concatenate(parts) if len(parts) > 1 else parts[0]
