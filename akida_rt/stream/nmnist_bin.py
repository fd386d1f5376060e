"""The `.bin` files of N-MNIST and N-Caltech101 (Orchard et al., 2015): 5 bytes an event,
x (8 bits), y (8 bits), then polarity (1 bit) and the time in us (23 bits), big-endian.
An event with y == 240 is a time-overflow marker: 2^23 us more for the events after it.
"""

from __future__ import annotations

import os

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.array_reader import ArrayEventReader
from akida_rt.stream.events import OnError, SensorInfo, make_events

OVERFLOW_Y = 240


def decode_bin(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(events, byte offsets) of a .bin file's whole 5-byte records."""
    raw = np.frombuffer(data, np.uint8, len(data) // 5 * 5).reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = raw[:, 2] >> 7
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    over = y == OVERFLOW_Y
    t = t + (np.cumsum(over) << 23)
    keep = ~over
    return make_events(t[keep], x[keep], y[keep], p[keep]), 5 * np.flatnonzero(keep)


def open_bin(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = 1 << 16,
    on_error: OnError | str = OnError.RAISE,
    sensor: tuple[int, int] | None = None,
) -> ArrayEventReader:
    name = str(path)
    with open(name, "rb") as f:
        data = f.read()
    if len(data) % 5 and OnError(on_error) is OnError.RAISE:
        raise EventFileError(name, len(data) - len(data) % 5,
                             "the file ends inside a 5-byte event (truncated)")  # fmt: skip
    ev, offsets = decode_bin(data)
    if sensor:
        w, h = sensor
    else:  # N-MNIST's ATIS crop is 34x34; N-Caltech101's varies by sample
        w = max(34, int(ev["x"].max()) + 1) if len(ev) else 34
        h = max(34, int(ev["y"].max()) + 1) if len(ev) else 34
    return ArrayEventReader(name, ev, SensorInfo(w, h, "N-MNIST bin"), chunk_events=chunk_events,
                            on_error=on_error, offsets=offsets)  # fmt: skip
