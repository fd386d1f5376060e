"""The chunked reader of formats decoded whole into one event array (CSV, N-MNIST .bin,
Prophesee DAT): the EventReader protocol over an array, with the time-order check."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from akida_rt.stream.events import DEFAULT_CHUNK, OnError, SensorInfo, TimeGuard


class ArrayEventReader:
    """Chunks of `events` (EVENT_DTYPE) in time order; `offsets` maps event index to byte
    offset for error messages (None: the index itself)."""

    def __init__(
        self,
        path: str,
        events: np.ndarray,
        sensor: SensorInfo,
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
        offsets: np.ndarray | None = None,
    ) -> None:
        self.path, self.sensor = path, sensor
        self._ev, self._offsets = events, offsets
        self.chunk_events = max(1, chunk_events)
        self.guard = TimeGuard(path, OnError(on_error))

    def chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self._ev), self.chunk_events):
            part = self._ev[start : start + self.chunk_events]
            where = self._offsets[start : start + len(part)] if self._offsets is not None else start
            ev = self.guard.check(part, where)
            if len(ev):
                yield ev

    def close(self) -> None:
        self._ev = self._ev[:0]

    def __enter__(self) -> ArrayEventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
