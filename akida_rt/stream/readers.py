"""Open any supported event file by its content (the suffix only where the content cannot
tell): AEDAT4, AEDAT 2.0/3.1, Prophesee RAW (EVT2/EVT2.1/EVT3, with or without header)
and DAT, HDF5, .npy, CSV, the N-MNIST/N-Caltech101 .bin."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import DEFAULT_CHUNK, EventReader, OnError, empty
from akida_rt.stream.prophesee import read_header

EVENT_SUFFIXES = (".aedat4", ".aedat", ".raw", ".evt2", ".evt21", ".evt3", ".dat", ".npy", ".csv",
                  ".bin", ".h5", ".hdf5", ".es")  # fmt: skip
HEADERLESS = {".evt2": "EVT2", ".evt21": "EVT2.1", ".evt3": "EVT3"}


def is_event_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in EVENT_SUFFIXES


def sniff(path: str) -> str:
    """The event format of a file: AEDAT4, RAW, DAT, NPY, CSV or BIN ("" when unknown)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head.startswith(b"%"):
                f.seek(0)
                fields, _ = read_header(f, path)
                dat = "version" in fields and not ({"evt", "format"} & fields.keys())
                return "DAT" if dat else "RAW"
    except OSError as exc:
        raise EventFileError(path, 0, exc.strerror or str(exc)) from None
    suffix = Path(path).suffix.lower()
    if head.startswith(b"#!AER-DAT4") or (suffix == ".aedat4" and not head):
        return "AEDAT4"
    if head.startswith((b"#!AER-DAT2", b"#!AER-DAT3")):
        return "AEDAT"
    if head.startswith(b"\x89HDF\r\n"):
        return "HDF5"
    if head.startswith(b"Event Stream"):
        return "ES"
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    if suffix in HEADERLESS or suffix == ".raw":
        return "RAW"
    return {".csv": "CSV", ".txt": "CSV", ".bin": "BIN", ".dat": "DAT", ".npy": "NPY"}.get(
        suffix, ""
    )


def open_events(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = DEFAULT_CHUNK,
    on_error: OnError | str = OnError.RAISE,
    sensor: tuple[int, int] | None = None,
) -> EventReader:
    """An event file opened for chunked reading; the format follows from the content,
    then from the suffix. `sensor` (width, height) overrides or supplies the geometry.

    Raises:
        EventFileError: a missing or unreadable file, or an unsupported format.
    """
    name = str(path)
    if not os.path.exists(name):
        raise EventFileError(name, 0, "no such file")
    kind = sniff(name)
    opts = {"chunk_events": chunk_events, "on_error": on_error, "sensor": sensor}
    if kind == "AEDAT4":
        from akida_rt.stream.aedat4_file import Aedat4File

        reader: EventReader = Aedat4File(name, chunk_events=chunk_events, on_error=on_error)
    elif kind == "NPY":
        from akida_rt.stream.npy_events import NpyEventReader

        reader = NpyEventReader(name, chunk_events=chunk_events, on_error=on_error)
    elif kind == "RAW":
        return _open_raw(name, **opts)  # type: ignore[arg-type]
    elif kind == "DAT":
        from akida_rt.stream.dat import open_dat

        return open_dat(name, **opts)  # type: ignore[arg-type]
    elif kind == "CSV":
        from akida_rt.stream.text_events import open_text_events

        return open_text_events(name, **opts)  # type: ignore[arg-type]
    elif kind == "AEDAT":
        from akida_rt.stream.aedat_legacy import open_aedat_legacy

        return open_aedat_legacy(name, **opts)  # type: ignore[arg-type]
    elif kind == "HDF5":
        from akida_rt.stream.hdf5_events import Hdf5EventReader

        return Hdf5EventReader(name, **opts)  # type: ignore[arg-type]
    elif kind == "ES":
        from akida_rt.stream.event_stream import open_es

        return open_es(name, **opts)  # type: ignore[arg-type]
    elif kind == "BIN":
        from akida_rt.stream.nmnist_bin import open_bin

        return open_bin(name, **opts)  # type: ignore[arg-type]
    else:
        raise EventFileError(name, 0, "not an event file this reader knows (AEDAT4, Prophesee "
                             f"RAW/DAT, .npy, CSV, N-MNIST .bin); use one of {', '.join(EVENT_SUFFIXES)}")  # fmt: skip
    if sensor:
        from akida_rt.stream.events import SensorInfo

        reader.sensor = SensorInfo(sensor[0], sensor[1], reader.sensor.format)
    return reader


def _open_raw(
    name: str, *, chunk_events: int, on_error: OnError | str, sensor: tuple[int, int] | None
) -> EventReader:
    from akida_rt.stream.prophesee import RawReader, sensor_info

    with open(name, "rb") as f:
        fields, _ = read_header(f, name)
    hint = HEADERLESS.get(Path(name).suffix.lower(), "")
    fmt = sensor_info(fields, name, hint).format if (fields or hint) else ""
    if fmt == "" and not fields:
        raise EventFileError(name, 0, "the file has no RAW header, so no event format; "
                             "name it .evt2, .evt21 or .evt3")  # fmt: skip
    opts = {"chunk_events": chunk_events, "on_error": on_error, "fmt": hint, "sensor": sensor}
    if fmt == "EVT2":
        from akida_rt.stream.evt2 import WORD, Evt2Decoder

        return RawReader(name, Evt2Decoder, WORD, wrap_bits=34, **opts)  # type: ignore[arg-type]
    if fmt == "EVT2.1":
        from akida_rt.stream.evt21 import open_evt21

        return open_evt21(name, **opts)  # type: ignore[arg-type]
    from akida_rt.stream.evt3 import WORD as WORD3
    from akida_rt.stream.evt3 import Evt3Decoder

    return RawReader(name, Evt3Decoder, WORD3, **opts)  # type: ignore[arg-type]


def read_events(path: str | os.PathLike[str], **options: object) -> np.ndarray:
    """A whole event file as one EVENT_DTYPE array (for files that fit in memory)."""
    reader = open_events(path, **options)  # type: ignore[arg-type]
    try:
        parts = list(reader.chunks())
    finally:
        reader.close()
    return np.concatenate(parts) if parts else empty()
