"""Events in HDF5 files (h5py): datasets t, x, y, p (or timestamp/ts, polarity) side by
side in a group (`/events`, as DSEC and evlib write them, or the root), or one compound
dataset with those fields; DSEC's `t_offset` is added. Read in chunks, never whole.
Prophesee's HDF5 (ECF-compressed) needs their codec plugin and is not read here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import (
    DEFAULT_CHUNK,
    OnError,
    SensorInfo,
    TimeGuard,
    as_events,
    make_events,
)

NAMES = {"t": ("t", "ts", "timestamp", "timestamps"), "x": ("x",), "y": ("y",),
         "p": ("p", "polarity", "pol")}  # fmt: skip


class Hdf5EventReader:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
        sensor: tuple[int, int] | None = None,
    ) -> None:
        try:
            import h5py
        except ImportError:
            raise EventFileError(
                str(path), 0, "HDF5 event files need h5py: pip install h5py"
            ) from None
        self.path, self.chunk_events = str(path), max(1, chunk_events)
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise EventFileError(self.path, 0, f"not a readable HDF5 file: {exc}") from None
        self.guard = TimeGuard(self.path, OnError(on_error))
        self._cols: dict[str, Any] | None = None
        self._compound: Any = None
        for group in (self._f.get("events"), self._f, self._f.get("CD/events")):
            if group is None:
                continue
            if hasattr(group, "dtype") and group.dtype.names:
                self._compound = group
                break
            if hasattr(group, "keys"):
                found = {
                    k: next((a for a in names if a in group), None) for k, names in NAMES.items()
                }
                if all(found.values()):
                    self._cols = {k: group[v] for k, v in found.items()}
                    break
                if "events" in group and getattr(group["events"], "dtype", None) is not None \
                        and group["events"].dtype.names:  # fmt: skip
                    self._compound = group["events"]
                    break
        if self._cols is None and self._compound is None:
            self._f.close()
            raise EventFileError(
                self.path, 0, "no event datasets (t, x, y, p) in /events or the root"
            )
        self.t_offset = int(np.asarray(self._f["t_offset"])) if "t_offset" in self._f else 0
        n = len(self._compound) if self._compound is not None else len(self._cols["t"])  # type: ignore[index]
        self.n = n
        attrs = dict(self._f.attrs)
        w, h = sensor or (int(attrs.get("width", 0)), int(attrs.get("height", 0)))
        if not (w and h) and n:
            x = self._compound["x"] if self._compound is not None else self._cols["x"]  # type: ignore[index]
            y = self._compound["y"] if self._compound is not None else self._cols["y"]  # type: ignore[index]
            w, h = int(np.max(x)) + 1, int(np.max(y)) + 1
        self.sensor = SensorInfo(w, h, "HDF5")

    def chunks(self) -> Iterator[np.ndarray]:
        for a in range(0, self.n, self.chunk_events):
            b = min(self.n, a + self.chunk_events)
            if self._compound is not None:
                ev = as_events(np.asarray(self._compound[a:b]), self.path)
            else:
                c = self._cols
                assert c is not None
                ev = make_events(
                    np.asarray(c["t"][a:b]).astype(np.int64), c["x"][a:b], c["y"][a:b], c["p"][a:b]
                )
            if self.t_offset:
                ev["t"] += self.t_offset
            ev = self.guard.check(ev, a)
            if len(ev):
                yield ev

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Hdf5EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
