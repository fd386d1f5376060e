"""Prophesee DAT files (CD events): a `%` header (Version, Width, Height, T0), two bytes
(event type, event size 8), then 64-bit little-endian words.

A word: [31:0] the time in us (relative to the header's T0, wrapping at 2^32), then for
version 2 [45:32] x, [59:46] y, [63:60] polarity; for version 1 [40:32] x, [48:41] y,
[52:49] polarity. External-trigger files (type 0x0E) carry the trigger's id and value in
the same places.
"""

from __future__ import annotations

import os

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.array_reader import ArrayEventReader
from akida_rt.stream.events import OnError, SensorInfo, empty
from akida_rt.stream.prophesee import _size, read_header

CD_TYPES = {0x00: "2D", 0x0C: "CD", 0x0E: "trigger"}


def decode_dat(words: np.ndarray, version: int, t0: int) -> np.ndarray:
    """EVENT_DTYPE events of DAT words (the 32-bit time unwrapped, t0 added)."""
    w = words.astype(np.uint64)
    t = (w & 0xFFFFFFFF).astype(np.int64)
    wraps = np.cumsum(np.diff(t, prepend=t[:1]) < -(1 << 31))
    ev = empty(len(w))
    ev["t"] = t + (wraps.astype(np.int64) << 32) + t0
    if version >= 2:
        ev["x"], ev["y"], ev["p"] = (w >> 32) & 0x3FFF, (w >> 46) & 0x3FFF, (w >> 60) != 0
    else:
        ev["x"], ev["y"], ev["p"] = (w >> 32) & 0x1FF, (w >> 41) & 0xFF, ((w >> 49) & 0xF) != 0
    return ev


def open_dat(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = 1 << 16,
    on_error: OnError | str = OnError.RAISE,
    sensor: tuple[int, int] | None = None,
) -> ArrayEventReader:
    """A DAT file (memory-mapped, decoded whole)."""
    name = str(path)
    with open(name, "rb") as f:
        fields, start = read_header(f, name)
        f.seek(start)
        kind = f.read(2)
    if len(kind) < 2:
        raise EventFileError(name, start, "the DAT file ends inside its header (truncated)")
    if kind[0] not in CD_TYPES or kind[1] != 8:
        raise EventFileError(name, start, f"DAT event type 0x{kind[0]:02x} of size {kind[1]} "
                             "is not a CD or trigger event of 8 bytes")  # fmt: skip
    size = os.path.getsize(name) - start - 2
    if size % 8 and OnError(on_error) is OnError.RAISE:
        raise EventFileError(name, start + 2 + size - size % 8,
                             "the file ends inside an 8-byte event (truncated)")  # fmt: skip
    words = (
        np.memmap(name, "<u8", "r", start + 2, (size // 8,)) if size >= 8 else np.zeros(0, "<u8")
    )
    version = _size(fields, "version", name) or 2
    ev = decode_dat(np.asarray(words), version, _size(fields, "t0", name))
    w, h = sensor or (_size(fields, "width", name), _size(fields, "height", name))
    offsets = start + 2 + 8 * np.arange(len(ev), dtype=np.int64)
    return ArrayEventReader(name, ev, SensorInfo(w, h, f"DAT{version}"), chunk_events=chunk_events,
                            on_error=on_error, offsets=offsets)  # fmt: skip
