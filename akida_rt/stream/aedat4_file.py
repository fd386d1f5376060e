"""AEDAT4 recordings read packet by packet in this process (LZ4 or Zstd packets, C kernels),
so a truncated or interrupted recording yields every complete packet before the cut.

Layout (iniVation's AEDAT 4.0): "#!AER-DAT4.0\\r\\n", an int32 header size and the IOHeader
flatbuffer ("IOHE": compression, data-table position, the XML info naming each stream's
type and size), then packets of (int32 stream id, int32 size, size bytes of a compressed,
size-prefixed flatbuffer); an event packet ("EVTS") holds 16-byte events (int64 t,
int16 x, int16 y, bool polarity, 3 bytes padding). The data table at the end is not needed.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.native import _kernels
from akida_rt.stream.events import (
    DEFAULT_CHUNK,
    EVENT_DTYPE,
    OnError,
    SensorInfo,
    TimeGuard,
)

log = logging.getLogger(__name__)
MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSION = {0: "none", 1: "LZ4", 2: "LZ4", 3: "Zstd", 4: "Zstd"}
MAX_PACKET = 1 << 30
MAX_DECODED = 64 << 20  # one decompressed packet: 4 Mi events, far above what DV writes
BLOCK = 1 << 20  # the file is read this many bytes at a time


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


def _zstd(path: str) -> Callable[[memoryview], bytes]:
    try:
        import zstandard
    except ImportError:
        raise EventFileError(
            path, 0, "Zstd packets need zstandard: pip install zstandard"
        ) from None

    def unzstd(data: memoryview) -> bytes:
        # max_output_size binds only frames that do not state their size: a stated size is
        # allocated whole, so a packet of a few bytes could claim gigabytes.
        if zstandard.frame_content_size(data) > MAX_DECODED:
            raise EventFileError(path, 0, f"it decodes to more than {MAX_DECODED >> 20} MiB")
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_DECODED)

    return unzstd


def _fill(f: io.BufferedReader, view: memoryview, at: int) -> int:
    """view[at:] filled from `f` as far as the file goes; the end of what was filled."""
    while at < len(view) and (got := f.readinto(view[at:])):
        at += got
    return at


def _refill(f: io.BufferedReader, view: memoryview, lo: int, hi: int) -> int:
    """view[lo:hi] moved to the front, the rest filled from `f`; the end of what is held."""
    view[: hi - lo] = view[lo:hi]
    return _fill(f, view, hi - lo)


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
        self._lz4_scratch: np.ndarray | None = None
        # DV writes the data table when it closes a recording: without one inside the
        # file, the recording may have been interrupted
        if self.on_error is OnError.RAISE and not 0 < self.data_table <= self.file_size:
            self._check_complete()

    def _check_complete(self) -> None:
        """Walk the packet headers (an 8-byte pread each): a cut fails now, before any
        event is read, so no frame of a recording that will fail is ever sent."""
        pos, complete, fd = self.data_start, 0, self._f.fileno()
        end = self.data_table if 0 < self.data_table <= self.file_size else self.file_size
        while pos < end:
            head = os.pread(fd, 8, pos)
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
        if kind not in COMPRESSION:
            raise self._fail(start, f"unknown AEDAT4 compression {kind} (corrupt file?)")
        self.compression = COMPRESSION[kind]
        self._unzstd = _zstd(self.path) if self.compression == "Zstd" else None
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

    def chunks(self) -> Iterator[np.ndarray]:
        """Chunks of `chunk_events` events (the last shorter). The file is read BLOCK bytes
        at a time; aedat4_walk decodes the complete packets in the block straight into the
        chunk being filled, and stops at the chunk's end or at a packet it leaves to this
        loop: one the block holds only part of (read on; read whole when larger than a
        block), one that does not decode or whose time goes back (reported, and the
        TimeGuard's), a Zstd packet."""
        f, pos, complete, sid = self._f, self.data_start, 0, self.stream_id
        end = self.data_table if 0 < self.data_table <= self.file_size else self.file_size
        kind = {"none": 0, "LZ4": 1}.get(self.compression, 2)
        scratch = self._scratch() if kind == 1 else np.empty(0, np.uint8)
        view = np.empty(BLOCK, np.uint8).data  # not zeroed: filled as read
        lo = hi = 0  # view[lo:hi] holds the file from pos on
        self._chunk, self._held, self._read = np.empty(self.chunk_events, EVENT_DTYPE), 0, 0
        f.seek(pos)
        while pos < end:
            if hi - lo >= 8:
                start, guard = lo, self.guard
                lo, self._held, guard.last, packets, events, stop, p_at, p_n = (
                    _kernels.aedat4_walk(view, lo, min(hi, lo + end - pos), sid, kind, scratch,
                                         self._chunk, self._held, guard.last)
                )  # fmt: skip
                pos, complete, self._read = (
                    pos + lo - start,
                    complete + packets,
                    self._read + events,
                )
                if stop == 1:  # the chunk is full
                    yield self._chunk
                    self._chunk, self._held = np.empty(self.chunk_events, EVENT_DTYPE), 0
                    src = scratch if kind == 1 else view
                    yield from self._emit(src, p_at, p_n, self._read - p_n)
                    continue
                if pos >= end:
                    break
            # here: the packet at lo, done the slow way
            if hi - lo < 8:
                lo, hi = 0, _refill(f, view, lo, hi)
                if hi < 8:
                    self._cut(pos, complete)
                    break
                continue
            psid, size = struct.unpack_from("<ii", view, lo)
            if size < 0 or size > MAX_PACKET:
                self._bad(pos, f"packet size {size} is not plausible (corrupt file)")
                break
            if pos + 8 + size > self.file_size:
                self._cut(pos, complete)
                break
            data: memoryview | None = None
            if hi - lo >= 8 + size:
                data = view[lo + 8 : lo + 8 + size]
                lo += 8 + size
            elif psid != sid:  # not ours: skipped unread
                f.seek(pos + 8 + size)
                lo = hi = 0
            elif 8 + size <= len(view):
                lo, hi = 0, _refill(f, view, lo, hi)
                if hi < 8 + size:  # the file shrank under us
                    self._cut(pos, complete)
                    break
                continue  # the walk takes it
            else:
                data = memoryview(bytearray(size))
                data[: hi - lo - 8] = view[lo + 8 : hi]
                if _fill(f, data, hi - lo - 8) < size:
                    self._cut(pos, complete)
                    break
                lo = hi = 0
            if data is not None and psid == sid:
                unpacked = self._unpack(data, pos)
                if unpacked is not None:
                    yield from self._emit(*unpacked, self._read)
                    self._read += unpacked[2]
            complete += 1
            pos += 8 + size
        if self._held:
            yield self._chunk[: self._held]

    def _scratch(self) -> np.ndarray:
        """Where LZ4 packets are decoded (pages are touched only as packets need them)."""
        if self._lz4_scratch is None:
            self._lz4_scratch = np.empty(MAX_DECODED, np.uint8)
        return self._lz4_scratch

    def _emit(
        self, src: np.ndarray | memoryview, offset: int, count: int, first: int
    ) -> Iterator[np.ndarray]:
        """`count` dv events at src[offset:] converted into the chunks, each full chunk
        yielded; `first` is the index of the first in the stream (the TimeGuard's)."""
        size, guard, done = self.chunk_events, self.guard, 0
        while done < count:
            take = min(count - done, size - self._held)
            at = self._held
            last = _kernels.aedat4_events(
                src, offset + 16 * done, take, self._chunk, at, guard.last
            )
            if last is not None:
                guard.last, kept = last, take
            else:  # raises, or drops the events that go back
                ev = guard.check(self._chunk[at : at + take], first + done)
                kept = len(ev)
                self._chunk[at : at + kept] = ev
            self._held, done = at + kept, done + take
            if self._held == size:
                yield self._chunk
                self._chunk, self._held = np.empty(size, EVENT_DTYPE), 0

    def _cut(self, pos: int, complete: int) -> None:
        self._bad(pos, f"the file ends inside the packet at byte {pos} (interrupted "
                  f"recording); --skip-errors keeps the complete packets before it ({complete})")  # fmt: skip

    def _unpack(
        self, data: memoryview, pos: int
    ) -> tuple[np.ndarray | memoryview, int, int] | None:
        """(buffer, offset, count) of the packet's dv events, or None when it does not
        decode (skipped, or raised)."""
        try:
            if self.compression == "LZ4":
                return (self._scratch(), *_kernels.aedat4_unpack(data, True, self._scratch()))
            if self._unzstd is not None:
                data = memoryview(self._unzstd(data))
            return (data, *_kernels.aedat4_unpack(data, False, bytearray()))
        except Exception as exc:  # any decoder's error: a corrupt packet
            self._bad(pos, f"the packet at byte {pos} does not decode ({exc})")
            return None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Aedat4File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
