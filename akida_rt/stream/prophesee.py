"""Prophesee RAW files: the `%` text header, and the chunked reader shared by EVT2/EVT3.

A RAW file is an ASCII header of lines starting with "% " (ended by "% end", or by the
first line that does not start with "%"), then little-endian EVT words. The header
names the format ("% evt 3.0", or "% format EVT3;height=720;width=1280") and usually
the geometry ("% geometry 1280x720").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import DEFAULT_CHUNK, OnError, ScanProgress, SensorInfo, TimeGuard

log = logging.getLogger(__name__)
MAX_HEADER = 1 << 20  # a header this long is not a header


def read_header(f: BinaryIO, path: str) -> tuple[dict[str, str], int]:
    """The header's `key value` pairs and the byte offset where the data starts."""
    fields: dict[str, str] = {}
    pos = 0
    while True:
        line = f.readline(4096)
        if not line.startswith(b"%"):
            break
        pos += len(line)
        if pos > MAX_HEADER:
            raise EventFileError(path, pos, "the RAW header does not end within 1 MiB")
        text = line[1:].decode("ascii", errors="replace").strip()
        if text == "end":
            return fields, pos
        key, _, value = text.partition(" ")
        fields[key.lower()] = value.strip()
    return fields, pos


def sensor_info(fields: dict[str, str], path: str) -> SensorInfo:
    """Format and geometry from a header; EventFileError when it names no EVT format."""
    fmt = ""
    if "evt" in fields:
        fmt = {"2.0": "EVT2", "3.0": "EVT3"}.get(fields["evt"], "EVT" + fields["evt"])
    width = height = 0
    if "format" in fields:
        name, *opts = fields["format"].split(";")
        fmt = fmt or name.strip().upper()
        kv = dict(o.split("=", 1) for o in opts if "=" in o)
        width, height = int(kv.get("width", 0) or 0), int(kv.get("height", 0) or 0)
    if m := re.fullmatch(r"(\d+)x(\d+)", fields.get("geometry", "")):
        width, height = int(m[1]), int(m[2])
    width = width or int(fields.get("width", "0") or 0)
    height = height or int(fields.get("height", "0") or 0)
    if fmt not in ("EVT2", "EVT3"):
        what = f"format {fmt}" if fmt else "no event format"
        raise EventFileError(path, 0, f"the RAW header names {what}; EVT2 and EVT3 are supported")
    return SensorInfo(width, height, fmt)


Decoder = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class RawReader:
    """Reads a RAW file in chunks of whole words through a stateful `decode(words,
    first_offset) -> (events, byte offsets)` (evt2.Evt2Decoder, evt3.Evt3Decoder)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        make_decoder: Callable[[RawReader], Decoder],
        word: np.dtype,
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
    ) -> None:
        self.path = str(path)
        self.on_error = OnError(on_error)
        self.word = np.dtype(word)
        self.chunk_bytes = max(1, chunk_events) * self.word.itemsize
        self._f = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        try:
            fields, self.data_start = read_header(self._f, self.path)
            self.sensor = sensor_info(fields, self.path)
        except BaseException:
            self._f.close()
            raise
        self.guard = TimeGuard(self.path, self.on_error)
        self.decode = make_decoder(self)
        self.skipped: dict[str, int] = {}

    def bad(self, offset: int, what: str, count: int = 1) -> None:
        """A bad word or tail at byte `offset`: raise, or count it and go on."""
        if self.on_error is OnError.RAISE:
            raise EventFileError(self.path, offset, what)
        if what not in self.skipped:
            log.warning("%s: at %d: %s (skipping such words)", self.path, offset, what)
        self.skipped[what] = self.skipped.get(what, 0) + count

    def chunks(self) -> Iterator[np.ndarray]:
        f, size = self._f, self.word.itemsize
        f.seek(self.data_start)
        offset = self.data_start
        progress = ScanProgress(self.path, os.fstat(f.fileno()).st_size)
        # chunk_bytes is a multiple of the word size, so only the last read can end
        # inside a word.
        while block := f.read(self.chunk_bytes):
            whole = len(block) - len(block) % size
            if whole < len(block):
                self.bad(offset + whole, f"the file ends inside a {size}-byte word (truncated)")
            ev, offsets = self.decode(np.frombuffer(block, self.word, whole // size), offset)
            ev, offsets = self._in_sensor(ev, offsets)
            ev = self.guard.check(ev, offsets)
            offset += len(block)
            progress.read(offset, len(ev))
            if len(ev):
                yield ev

    def _in_sensor(self, ev: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Events inside the sensor the header declares (the others are corrupt)."""
        w, h = self.sensor.width, self.sensor.height
        if not (w and h) or len(ev) == 0:
            return ev, offsets
        out = (ev["x"] >= w) | (ev["y"] >= h)
        if not out.any():
            return ev, offsets
        i = int(np.argmax(out))
        self.bad(int(offsets[i]), f"event at ({ev['x'][i]}, {ev['y'][i]}) is outside the {w}x{h} sensor",
                 int(out.sum()))  # fmt: skip
        return ev[~out], offsets[~out]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RawReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_header(width: int, height: int, fmt: str) -> bytes:
    """The header our writers put in front of the words."""
    version = {"EVT2": "2.0", "EVT3": "3.0"}[fmt]
    lines = [f"% evt {version}", f"% format {fmt};height={height};width={width}",
             f"% geometry {width}x{height}", "% generator akida_rt", "% end"]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()
