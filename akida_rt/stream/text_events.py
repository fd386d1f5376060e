"""Events in a CSV or text file: one event a line, columns t, x, y, p (a header line
naming them in any order, with faery's "x@W"/"y@H" giving the sensor, or no header and
that order); separators comma, space or tab. Polarities: any value above 0 is ON."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.array_reader import ArrayEventReader
from akida_rt.stream.events import OnError, SensorInfo, make_events

NAMES = {"t": ("t", "timestamp", "ts", "time"), "x": ("x",), "y": ("y",),
         "p": ("p", "polarity", "pol", "on")}  # fmt: skip


def open_text_events(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = 1 << 16,
    on_error: OnError | str = OnError.RAISE,
    sensor: tuple[int, int] | None = None,
) -> ArrayEventReader:
    name = str(path)
    with open(name, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    sep = "," if "," in first else None
    cells = [c.strip().lower() for c in (first.split(sep) if sep else first.split())]
    header = bool(cells) and not re.fullmatch(r"[-+\d.e]+", cells[0])
    order, width, height = [0, 1, 2, 3], 0, 0
    if header:
        bare = [c.split("@")[0] for c in cells]
        try:
            order = [next(i for i, c in enumerate(bare) if c in NAMES[k]) for k in "txyp"]
        except StopIteration:
            raise EventFileError(name, 0, f"the CSV header {first.strip()!r} does not name "
                                 "columns t, x, y and p") from None  # fmt: skip
        dims = dict(c.split("@", 1) for c in cells if "@" in c)
        width, height = int(dims.get("x", "0") or 0), int(dims.get("y", "0") or 0)
    with open(name, encoding="utf-8", errors="replace") as f:
        if header:
            f.readline()
        text = f.read()
    try:
        body = text.replace(",", " ") if sep else text
        with warnings.catch_warnings():  # numpy warns when a cell is not a number
            warnings.simplefilter("error", DeprecationWarning)
            flat: np.ndarray
            try:  # integers parse 13x faster than floats (measured); floats when needed
                flat = np.fromstring(body, dtype=np.int64, sep=" ")
            except (ValueError, DeprecationWarning):
                flat = np.fromstring(body, dtype=np.float64, sep=" ")
        if len(flat) % len(cells):
            raise ValueError(f"{len(flat)} numbers are not rows of {len(cells)} columns")
        data = flat.reshape(-1, len(cells))[:, order]
    except (ValueError, DeprecationWarning) as exc:
        raise EventFileError(
            name, 0, f"not a table of t, x, y, p numbers: {str(exc)[:80]}"
        ) from None
    if data.size == 0:
        data = np.zeros((0, 4), np.int64)
    t, x, y, p = data.T
    ev = make_events(np.rint(t).astype(np.int64), x, y, p > 0)
    if sensor:
        width, height = sensor
    elif not width and len(ev):
        width, height = int(x.max()) + 1, int(y.max()) + 1
    return ArrayEventReader(name, ev, SensorInfo(width, height, "CSV"),
                            chunk_events=chunk_events, on_error=on_error)  # fmt: skip
