"""Events in a plain `.npy` file: a structured array with t/x/y/p fields, memory-mapped
and read in chunks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import DEFAULT_CHUNK, OnError, SensorInfo, TimeGuard, as_events


class NpyEventReader:
    """A `.npy` of events (EVENT_DTYPE, or any array with t/x/y/p or timestamp/polarity)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
    ) -> None:
        self.path = str(path)
        self.chunk_events = max(1, chunk_events)
        try:
            self._arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise EventFileError(self.path, 0, f"not a readable .npy file: {exc}") from None
        if self._arr.ndim != 1 or self._arr.dtype.names is None:
            raise EventFileError(self.path, 0, f"expected a 1-D structured array of events, "
                                 f"got {self._arr.dtype} of shape {self._arr.shape}")  # fmt: skip
        as_events(self._arr[:0], self.path)  # the fields are there
        self.guard = TimeGuard(self.path, OnError(on_error))
        n = len(self._arr)
        width = int(self._arr["x"].max()) + 1 if n else 0
        height = int(self._arr["y"].max()) + 1 if n else 0
        self.sensor = SensorInfo(width, height, "npy")

    def chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self._arr), self.chunk_events):
            ev = as_events(np.asarray(self._arr[start : start + self.chunk_events]), self.path)
            ev = self.guard.check(ev, start)
            if len(ev):
                yield ev

    def close(self) -> None:
        self._arr = None  # type: ignore[assignment]

    def __enter__(self) -> NpyEventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
