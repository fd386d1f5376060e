"""Prophesee RAW files: the `%` text header, and the chunked reader shared by EVT2/EVT3.

A RAW file is an ASCII header of lines starting with "% " (ended by "% end", or by the
first line that does not start with "%"), then little-endian EVT words. The header
names the format ("% evt 3.0", or "% format EVT3;height=720;width=1280") and usually
the geometry ("% geometry 1280x720"); "% t0 T" (faery's zero_t0) says the words' times
are relative to T microseconds, which the reader adds back. A file with no header at all
takes its format from the caller (the suffix: .evt2, .evt3).
EVT2's time is 34 bits (wrapping after about 4.8 hours): a time that drops by more than
half the range is a wrap, not corruption, and the reader carries the epoch on.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import DEFAULT_CHUNK, EVENT_DTYPE, OnError, SensorInfo, TimeGuard

log = logging.getLogger(__name__)
MAX_HEADER = 1 << 20  # a header this long is not a header
INT64_MIN = -(1 << 63)


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


def sensor_info(fields: dict[str, str], path: str, fmt: str = "") -> SensorInfo:
    """Format and geometry from a header (`fmt`: the format when the header names none);
    EventFileError when neither names an EVT format."""
    named = ""
    if "evt" in fields:
        named = {"2.0": "EVT2", "2.1": "EVT2.1", "3.0": "EVT3"}.get(
            fields["evt"], "EVT" + fields["evt"]
        )
    width = height = 0
    if "format" in fields:
        name, *opts = fields["format"].split(";")
        named = named or {"EVT21": "EVT2.1"}.get(name.strip().upper(), name.strip().upper())
        kv = dict(o.split("=", 1) for o in opts if "=" in o)
        width, height = _size(kv, "width", path), _size(kv, "height", path)
    if m := re.fullmatch(r"(\d+)x(\d+)", fields.get("geometry", "")):
        width, height = int(m[1]), int(m[2])
    width = width or _size(fields, "width", path)
    height = height or _size(fields, "height", path)
    fmt = named or fmt
    if fmt not in ("EVT2", "EVT2.1", "EVT3"):
        what = f"format {fmt}" if fmt else "no event format"
        raise EventFileError(path, 0, f"the RAW header names {what}; EVT2, EVT2.1 and EVT3 are "
                             "supported (a file without header: name it .evt2, .evt21 or .evt3)")  # fmt: skip
    return SensorInfo(width, height, fmt)


def _size(fields: dict[str, str], key: str, path: str) -> int:
    """A header's width or height (0 when absent); EventFileError when not a number."""
    value = fields.get(key, "").strip() or "0"
    if not value.isascii() or not value.isdigit():
        raise EventFileError(path, 0, f"the RAW header's {key} {value!r} is not a number")
    return int(value)


class Decoder:
    """One of akida_rt.native._kernels' EVT decoders and the state it carries from run to run
    (evt2.Evt2Decoder, evt3.Evt3Decoder; tests/native_reference.py keeps their numpy
    forms)."""

    kernel: Callable[..., tuple[np.ndarray, np.ndarray | None, int, int, bool]]
    state_size = 1
    name, type_shift = "", 0  # the format's name, the bit where a word's type starts

    def __init__(self, reader: RawReader) -> None:
        self.reader = reader
        self.state = np.zeros(self.state_size, np.int64)
        self.word_bytes = (self.type_shift + 4) // 8

    def __call__(self, w: np.ndarray, first_offset: int) -> tuple[np.ndarray, np.ndarray]:
        """The events of `w` and their words' byte offsets; each unknown word is reported
        to the reader."""
        ev, offsets, unknown, i, _ = self.kernel(
            w, self.state, EVENT_DTYPE, first_offset, 0, 0, INT64_MIN, True
        )
        if unknown:
            word = int(w[i])
            self.reader.bad(first_offset + self.word_bytes * i,
                            f"unknown {self.name} word 0x{word:0{2 * self.word_bytes}x} "
                            f"(type 0x{word >> self.type_shift:x})", unknown)  # fmt: skip
        assert offsets is not None
        return ev, offsets

    def clean(
        self, w: np.ndarray, first_offset: int, width: int, height: int, last: int
    ) -> np.ndarray | None:
        """The events of `w` when nothing in them needs the reader's attention (no unknown
        word, every event inside a width x height sensor, no time before `last` or going
        back); otherwise None, the state as it was."""
        saved = self.state.copy()
        ev, _, _, _, ok = self.kernel(
            w, self.state, EVENT_DTYPE, first_offset, width, height, last, False
        )
        if ok:
            return ev
        self.state[:] = saved
        return None


class RawReader:
    """Reads a RAW file in chunks of whole words through a stateful Decoder: each chunk's
    events in one kernel call when they are clean, else decoded again with each event's
    byte offset for the checks that name it (unknown words, sensor, time order)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        make_decoder: Callable[[RawReader], Decoder],
        word: np.dtype,
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
        fmt: str = "",
        sensor: tuple[int, int] | None = None,
        wrap_bits: int = 0,
    ) -> None:
        self.path = str(path)
        self.on_error = OnError(on_error)
        self.word = np.dtype(word)
        self.chunk_bytes = max(1, chunk_events) * self.word.itemsize
        self._f = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        try:
            fields, self.data_start = read_header(self._f, self.path)
            self.sensor = sensor_info(fields, self.path, fmt)
            self.t0 = _size(fields, "t0", self.path)
        except BaseException:
            self._f.close()
            raise
        if sensor:
            self.sensor = SensorInfo(sensor[0], sensor[1], self.sensor.format)
        self.wrap_bits = wrap_bits  # the time's width when it wraps (EVT2: 34), else 0
        self.epoch = 0  # wraps so far
        self._triggers: list[np.ndarray] = []
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
        # chunk_bytes is a multiple of the word size, so only the last read can end
        # inside a word.
        while block := f.read(self.chunk_bytes):
            whole = len(block) - len(block) % size
            if whole < len(block):
                self.bad(offset + whole, f"the file ends inside a {size}-byte word (truncated)")
            words = np.frombuffer(block, self.word, whole // size)
            self._keep_triggers(words)
            w, h = self.sensor.width, self.sensor.height
            shift = self.t0 + (self.epoch << self.wrap_bits if self.wrap_bits else 0)
            ev = self.decode.clean(words, offset, w, h, max(self.guard.last - shift, INT64_MIN))
            if ev is None:
                ev, offsets = self.decode(words, offset)
                self._unwrap(ev, shift)
                ev, offsets = self._in_sensor(ev, offsets)
                ev = self.guard.check(ev, offsets)
            elif len(ev):
                if shift:
                    ev["t"] += shift
                self.guard.last = int(ev["t"][-1])
            offset += len(block)
            if len(ev):
                yield ev

    def _keep_triggers(self, words: np.ndarray) -> None:
        """The EXT_TRIGGER events of `words`, from the decoder's state before them."""
        from akida_rt.stream import triggers

        fmt, state = self.sensor.format, getattr(self.decode, "state", None)
        if state is None:  # a decoder that keeps no state here (the tests' numpy forms)
            return
        if fmt == "EVT3":
            found = triggers.evt3_triggers(words, state)
        else:
            found = triggers.evt2_triggers(words, int(state[0]), fmt == "EVT2.1")
        if len(found):
            found["t"] += self.t0 + (self.epoch << self.wrap_bits if self.wrap_bits else 0)
            self._triggers.append(found)

    def triggers(self) -> np.ndarray:
        """The external triggers read so far (TRIGGER_DTYPE: t, id, value)."""
        from akida_rt.stream.triggers import TRIGGER_DTYPE

        return np.concatenate(self._triggers) if self._triggers else np.zeros(0, TRIGGER_DTYPE)

    def _unwrap(self, ev: np.ndarray, shift: int) -> None:
        """Add `shift` (t0 and the wraps so far) to the times of `ev`, and count a new wrap
        wherever the time drops by more than half of 2^wrap_bits."""
        if len(ev) and self.wrap_bits:
            t = ev["t"]
            prev = np.empty_like(t)
            prev[0] = self.guard.last - shift if self.guard.last > INT64_MIN else t[0]
            prev[1:] = t[:-1]
            wraps = np.cumsum(t < prev - (1 << (self.wrap_bits - 1)))
            if wraps[-1]:
                t += wraps << self.wrap_bits
                self.epoch += int(wraps[-1])
                log.info("%s: the %d-bit time wrapped", self.path, self.wrap_bits)
        if shift and len(ev):
            ev["t"] += shift

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
