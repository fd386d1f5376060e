"""Open any supported event file by its name: AEDAT4, Prophesee RAW (EVT2/EVT3), .npy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import DEFAULT_CHUNK, EventReader, OnError, empty
from akida_rt.stream.prophesee import read_header, sensor_info

EVENT_SUFFIXES = (".aedat4", ".raw", ".npy")


def is_event_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in EVENT_SUFFIXES


def open_events(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = DEFAULT_CHUNK,
    on_error: OnError | str = OnError.RAISE,
) -> EventReader:
    """An event file opened for chunked reading; the format follows from the suffix
    (`.aedat4`, `.npy`) or, for `.raw`, from the header (EVT2 or EVT3).

    Raises:
        EventFileError: a missing or unreadable file, or an unsupported format.
    """
    name = str(path)
    suffix = Path(name).suffix.lower()
    options = {"chunk_events": chunk_events, "on_error": on_error}
    if suffix == ".aedat4":
        from akida_rt.stream.aedat4 import Aedat4Reader

        return Aedat4Reader(name, **options)  # type: ignore[arg-type]
    if suffix == ".npy":
        from akida_rt.stream.npy_events import NpyEventReader

        return NpyEventReader(name, **options)  # type: ignore[arg-type]
    if suffix == ".raw":
        try:
            with open(name, "rb") as f:
                fmt = sensor_info(read_header(f, name)[0], name).format
        except OSError as exc:
            raise EventFileError(name, 0, exc.strerror or str(exc)) from None
        if fmt == "EVT2":
            from akida_rt.stream.evt2 import open_evt2

            return open_evt2(name, **options)  # type: ignore[arg-type]
        from akida_rt.stream.evt3 import open_evt3

        return open_evt3(name, **options)  # type: ignore[arg-type]
    raise EventFileError(
        name, 0, f"unknown event file type {suffix!r}; use {', '.join(EVENT_SUFFIXES)}"
    )


def read_events(path: str | os.PathLike[str], **options: object) -> np.ndarray:
    """A whole event file as one EVENT_DTYPE array (for files that fit in memory)."""
    reader = open_events(path, **options)  # type: ignore[arg-type]
    try:
        parts = list(reader.chunks())
    finally:
        reader.close()
    return np.concatenate(parts) if parts else empty()
