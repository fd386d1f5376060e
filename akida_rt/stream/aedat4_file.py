"""AEDAT4 recordings read packet by packet in this process (LZ4 or Zstd packets, numpy),
so a truncated or interrupted recording yields every complete packet before the cut.

Layout (iniVation's AEDAT 4.0): "#!AER-DAT4.0\\r\\n", an int32 header size and the IOHeader
flatbuffer ("IOHE": compression, data-table position, the XML info naming each stream's
type and size), then packets of (int32 stream id, int32 size, size bytes of a compressed,
size-prefixed flatbuffer); an event packet ("EVTS") holds 16-byte events (int64 t,
int16 x, int16 y, bool polarity, 3 bytes padding). The data table at the end is not needed.
"""

from __future__ import annotations

import logging
import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.events import (
    DEFAULT_CHUNK,
    EVENT_DTYPE,
    OnError,
    SensorInfo,
    TimeGuard,
    empty,
    rechunk,
)

log = logging.getLogger(__name__)
MAGIC = b"#!AER-DAT4.0\r\n"
DV_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("_", "V3")])
COMPRESSION = {0: "none", 1: "LZ4", 2: "LZ4", 3: "Zstd", 4: "Zstd"}
MAX_PACKET = 1 << 30


def _table(buf: bytes, pos: int) -> Callable[[int], int | None]:
    """A flatbuffer table at `pos`: field index -> the field's absolute position, or None."""
    vtable = pos - struct.unpack_from("<i", buf, pos)[0]
    vsize = struct.unpack_from("<H", buf, vtable)[0]

    def field(i: int) -> int | None:
        if 4 + 2 * i >= vsize:
            return None
        off = struct.unpack_from("<H", buf, vtable + 4 + 2 * i)[0]
        return pos + off if off else None

    return field


def _root(buf: bytes, size_prefixed: bool) -> tuple[Callable[[int], int | None], bytes]:
    base = 4 if size_prefixed else 0
    root = base + struct.unpack_from("<I", buf, base)[0]
    return _table(buf, root), buf[base + 4 : base + 8]


def _decompressor(kind: int, path: str) -> Callable[[bytes], bytes]:
    if kind == 0:
        return bytes
    if COMPRESSION.get(kind) == "LZ4":
        try:
            import lz4.frame
        except ImportError:
            raise EventFileError(
                path, 0, "LZ4 packets need lz4: pip install 'akida-rt[stream]'"
            ) from None
        return lz4.frame.decompress  # type: ignore[no-any-return]
    if COMPRESSION.get(kind) == "Zstd":
        try:
            import zstandard
        except ImportError:
            raise EventFileError(
                path, 0, "Zstd packets need zstandard: pip install zstandard"
            ) from None
        return lambda data: zstandard.ZstdDecompressor().decompress(
            data, max_output_size=MAX_PACKET
        )
    raise EventFileError(path, 0, f"unknown AEDAT4 compression {kind}")


class Aedat4File:
    """An AEDAT4 recording's first event stream, in chunks of at most `chunk_events`.

    A cut inside a packet (an interrupted recording) or a packet that does not decode is an
    EventFileError naming its byte offset; with on_error=SKIP the complete packets before
    it are kept (a cut ends the stream, a bad packet is skipped)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_events: int = DEFAULT_CHUNK,
        on_error: OnError | str = OnError.RAISE,
    ) -> None:
        self.path = str(path)
        self.on_error = OnError(on_error)
        self.chunk_events = max(1, chunk_events)
        try:
            self._f = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise EventFileError(self.path, 0, exc.strerror or str(exc)) from None
        try:
            self._read_header()
        except BaseException:
            self._f.close()
            raise
        self.guard = TimeGuard(self.path, self.on_error)
        self.packets_skipped = 0
        if self.on_error is OnError.RAISE:
            self._check_complete()

    def _check_complete(self) -> None:
        """Walk the packet headers (a seek each): a cut fails now, before any event is
        read, so no frame of a recording that will fail is ever sent."""
        pos, complete = self.data_start, 0
        end = self.data_table if 0 < self.data_table <= self.file_size else self.file_size
        while pos < end:
            self._f.seek(pos)
            head = self._f.read(8)
            size = struct.unpack("<ii", head)[1] if len(head) == 8 else -1
            if size < 0 or pos + 8 + size > self.file_size:
                self._f.close()
                self._cut(pos, complete)
            pos, complete = pos + 8 + size, complete + 1

    def _fail(self, offset: int, what: str) -> EventFileError:
        return EventFileError(self.path, offset, what)

    def _read_header(self) -> None:
        size = os.fstat(self._f.fileno()).st_size
        head = self._f.read(len(MAGIC) + 4)
        if size == 0:
            raise self._fail(0, "the file is empty; an AEDAT4 recording starts with "
                             "'#!AER-DAT4.0' (was the recording ever written?)")  # fmt: skip
        if not head.startswith(MAGIC[: len(head)]) or len(head) < len(MAGIC):
            if len(head) < len(MAGIC) and head == MAGIC[: len(head)]:
                raise self._fail(len(head), f"the file ends after {size} bytes, inside the "
                                 "AEDAT4 header (truncated recording)")  # fmt: skip
            raise self._fail(0, "not an AEDAT4 recording (no '#!AER-DAT4.0' line); "
                             "check the file or its suffix")  # fmt: skip
        if len(head) < len(MAGIC) + 4:
            raise self._fail(len(head), f"the file ends after {size} bytes, inside the AEDAT4 "
                             "header (truncated recording)")  # fmt: skip
        (hsize,) = struct.unpack_from("<i", head, len(MAGIC))
        start = len(MAGIC) + 4
        if hsize <= 8 or hsize > MAX_PACKET:
            raise self._fail(
                len(MAGIC), f"AEDAT4 header size {hsize} is not plausible (corrupt file)"
            )
        if start + hsize > size:
            raise self._fail(size, f"the file ends after {size} bytes, inside the {hsize}-byte "
                             "AEDAT4 header at byte 18 (truncated recording; nothing to recover)")  # fmt: skip
        buf = self._f.read(hsize)
        try:
            field, ident = _root(buf, size_prefixed=False)
            if ident != b"IOHE":
                raise ValueError(f"identifier {ident!r}")
            comp = field(0)
            kind = struct.unpack_from("<i", buf, comp)[0] if comp is not None else 0
            info = field(2)
            xml = b""
            if info is not None:
                spos = info + struct.unpack_from("<I", buf, info)[0]
                (n,) = struct.unpack_from("<I", buf, spos)
                xml = buf[spos + 4 : spos + 4 + n]
            table = field(1)
            self.data_table = struct.unpack_from("<q", buf, table)[0] if table is not None else -1
            root = ET.fromstring(xml.decode("utf-8", "replace")) if xml else None
        except (struct.error, ValueError, ET.ParseError) as exc:
            raise self._fail(
                start, f"the AEDAT4 header does not decode ({exc}; corrupt file)"
            ) from None
        self.decompress = _decompressor(kind, self.path)
        self.data_start = start + hsize
        self.file_size = size
        self.event_streams: set[int] = set()
        width = height = 0
        for node in root.iter("node") if root is not None else ():
            attrs = {a.get("key"): (a.text or "") for a in node.findall("attr")}
            if attrs.get("typeIdentifier") == "EVTS" and node.get("name", "").isdigit():
                self.event_streams.add(int(node.get("name", "0")))
                for sub in node.iter("node"):
                    sa = {a.get("key"): (a.text or "") for a in sub.findall("attr")}
                    if sa.get("sizeX", "").isdigit():
                        width, height = width or int(sa["sizeX"]), height or int(sa.get("sizeY", 0))
        if not self.event_streams:
            raise self._fail(start, "the recording has no event stream (typeIdentifier EVTS)")
        self.stream_id = min(self.event_streams)
        self.sensor = SensorInfo(width, height, "AEDAT4")

    def _bad(self, offset: int, what: str) -> None:
        if self.on_error is OnError.RAISE:
            raise self._fail(offset, what)
        log.warning("%s: at %d: %s (skipped)", self.path, offset, what)
        self.packets_skipped += 1

    def _packets(self) -> Iterator[np.ndarray]:
        f, pos, read = self._f, self.data_start, 0
        end = self.data_table if 0 < self.data_table <= self.file_size else self.file_size
        f.seek(pos)
        complete = 0
        while pos < end:
            head = f.read(8)
            if len(head) < 8:
                self._cut(pos, complete)
                return
            sid, size = struct.unpack("<ii", head)
            if size < 0 or size > MAX_PACKET:
                self._bad(pos, f"packet size {size} is not plausible (corrupt file)")
                return
            data = f.read(size)
            if len(data) < size:
                self._cut(pos, complete)
                return
            if sid == self.stream_id:
                ev = self._decode(data, pos)
                if ev is not None:
                    yield self.guard.check(ev, read)
                    read += len(ev)
            complete += 1
            pos += 8 + size

    def _cut(self, pos: int, complete: int) -> None:
        self._bad(pos, f"the file ends inside the packet at byte {pos} (interrupted "
                  f"recording); --skip-errors keeps the complete packets before it ({complete})")  # fmt: skip

    def _decode(self, data: bytes, pos: int) -> np.ndarray | None:
        try:
            buf = self.decompress(data)
            field, ident = _root(buf, size_prefixed=True)
            if ident != b"EVTS":
                raise ValueError(f"identifier {ident!r}, not EVTS")
            elements = field(0)
            if elements is None:
                return empty()
            vec = elements + struct.unpack_from("<I", buf, elements)[0]
            (n,) = struct.unpack_from("<I", buf, vec)
            raw = np.frombuffer(buf, DV_EVENT, n, vec + 4)
        except Exception as exc:  # any decoder's error: a corrupt packet
            self._bad(pos, f"the packet at byte {pos} does not decode ({exc})")
            return None
        if raw.dtype.itemsize == EVENT_DTYPE.itemsize and int(raw["p"].max(initial=0)) <= 1 \
                and int(raw["x"].min(initial=0)) >= 0 and int(raw["y"].min(initial=0)) >= 0:  # fmt: skip
            # dv's event is EVENT_DTYPE's layout (t, x, y at the same offsets, a 0/1 bool)
            return np.frombuffer(buf, EVENT_DTYPE, n, vec + 4)  # read-only, rechunk copies
        ev = empty(n)
        ev["t"], ev["x"], ev["y"], ev["p"] = raw["t"], raw["x"], raw["y"], raw["p"] != 0
        return ev

    def chunks(self) -> Iterator[np.ndarray]:
        return rechunk((p for p in self._packets() if len(p)), self.chunk_events)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Aedat4File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
