"""The Event Stream format (`.es`, version 2, as sepia, loris and faery write it), DVS
events only: "Event Stream", version bytes (2, x, y), the event type (1 DVS), width and
height (u16 LE), then per event one byte (time delta in bits 7..1, polarity bit 0), x and
y (u16 LE, y counted from the bottom row); a 0xFF byte adds 127 us, 0xFE is a reset.
Times are as stored (the writer's first event at 0). A byte loop (runs of 0xFF skipped
at once): the slowest reader here, for datasets' small files.
"""

from __future__ import annotations

import os
import re

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.array_reader import ArrayEventReader
from akida_rt.stream.events import OnError, SensorInfo, make_events

MAGIC = b"Event Stream"
OVERFLOWS = re.compile(rb"\xff+")


def decode_es_dvs(data: bytes, start: int, height: int, path: str, on_error: OnError) -> np.ndarray:
    t, x, y, p = [], [], [], []
    now, i, n = 0, start, len(data)
    while i < n:
        b = data[i]
        if b == 0xFF:
            run = OVERFLOWS.match(data, i)
            assert run is not None
            now += 127 * (run.end() - i)
            i = run.end()
            continue
        if b == 0xFE:
            i += 1
            continue
        if i + 5 > n:
            if on_error is OnError.RAISE:
                raise EventFileError(path, i, "the file ends inside an event (truncated)")
            break
        now += b >> 1
        t.append(now)
        p.append(b & 1)
        x.append(data[i + 1] | data[i + 2] << 8)
        y.append(height - 1 - (data[i + 3] | data[i + 4] << 8))
        i += 5
    return make_events(np.asarray(t, np.int64), x, y, p)


def open_es(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = 1 << 16,
    on_error: OnError | str = OnError.RAISE,
    sensor: tuple[int, int] | None = None,
) -> ArrayEventReader:
    name = str(path)
    with open(name, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise EventFileError(name, 0, "not an Event Stream file (no 'Event Stream' header)")
    version, kind = data[len(MAGIC)], data[len(MAGIC) + 3]
    if version != 2 or kind != 1:
        raise EventFileError(name, len(MAGIC), f"Event Stream version {version} type {kind}: only "
                             "version 2 DVS events (type 1) are read")  # fmt: skip
    w, h = np.frombuffer(data, "<u2", 2, len(MAGIC) + 4).tolist()
    ev = decode_es_dvs(data, len(MAGIC) + 8, h, name, OnError(on_error))
    size = sensor or (w, h)
    return ArrayEventReader(name, ev, SensorInfo(size[0], size[1], "ES"), chunk_events=chunk_events,
                            on_error=on_error)  # fmt: skip
