"""The numpy form of the AEDAT4 packet kernels (akida_rt/csrc/aedat4.c), kept as their
reference, and AEDAT4 packets and files built from events for the tests and the fuzzer.

`numpy_packet_events` is the packet decoder akida_rt.stream.aedat4_file had before the
kernels, unchanged but for its names (the lz4 library's frame decoder, a flatbuffer walk in
Python, numpy conversion). The builders lay packets out byte for byte as dv-processing's
writer does (tests/test_native_aedat4.py checks that against dv's own files).
"""

from __future__ import annotations

import struct

import lz4.frame
import numpy as np

from akida_rt.stream.aedat4_file import MAGIC, MAX_DECODED, _root

__all__ = ["MAGIC"]
from akida_rt.stream.events import EVENT_DTYPE, empty

DV_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("_", "V3")])


# ---------------------------------------------------------------- the reference decoder
def _bounded_lz4(data: bytes) -> bytes:
    """An LZ4 frame decompressed, refused past MAX_DECODED bytes."""
    out = lz4.frame.LZ4FrameDecompressor()
    buf = out.decompress(data, max_length=MAX_DECODED)
    if not out.eof:
        raise ValueError(f"it decompresses to more than {MAX_DECODED >> 20} MiB")
    return bytes(buf)


def numpy_packet_events(data: bytes, lz4: bool) -> np.ndarray:
    """The EVENT_DTYPE events of one packet; any exception: the packet does not decode."""
    buf = _bounded_lz4(data) if lz4 else bytes(data)
    field, ident = _root(buf, size_prefixed=True)
    if ident != b"EVTS":
        raise ValueError(f"identifier {ident!r}, not EVTS")
    elements = field(0)
    if elements is None:
        return empty()
    vec = elements + struct.unpack_from("<I", buf, elements)[0]
    (n,) = struct.unpack_from("<I", buf, vec)
    raw = np.frombuffer(buf, DV_EVENT, n, vec + 4)
    ev = empty(n)
    ev["t"], ev["x"], ev["y"], ev["p"] = raw["t"], raw["x"], raw["y"], raw["p"] != 0
    return ev


_SCRATCH = np.empty(MAX_DECODED, np.uint8)


def kernel_packet_events(data: bytes, lz4: bool) -> np.ndarray:
    """The same through the kernels, as the reader calls them (ValueError: does not decode)."""
    from akida_rt.native import _kernels

    scratch = _SCRATCH if lz4 else bytearray()
    offset, count = _kernels.aedat4_unpack(data, lz4, scratch)
    ev = np.empty(count, EVENT_DTYPE)
    _kernels.aedat4_events(scratch if lz4 else data, offset, count, ev, 0, -(1 << 63))
    return ev


# ---------------------------------------------------------------- packets and files
def dv_bytes(ev: np.ndarray) -> bytes:
    """Events as dv's 16-byte structs (padding zero)."""
    raw = np.zeros(len(ev), DV_EVENT)
    raw["t"], raw["x"], raw["y"], raw["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
    return raw.tobytes()


def event_packet(events: bytes) -> bytes:
    """A size-prefixed EventPacket flatbuffer of dv events (16 bytes each), laid out as
    dv-processing writes it: root table at 16, a 6-byte vtable at 10, the vector at 24."""
    n = len(events) // 16
    body = struct.pack("<I4sHHHHiII", 16, b"EVTS", 0, 6, 8, 4, 6, 4, n) + events
    return struct.pack("<I", len(body)) + body


def io_header(width: int, height: int, compression: int, data_table: int = -1) -> bytes:
    """An IOHeader flatbuffer (compression, data-table position, the XML of one event
    stream, id 0, of width x height)."""
    xml = (
        '<dv version="2.0"><node name="outInfo" path="/outInfo/"><node name="0" '
        'path="/outInfo/0/"><attr key="typeIdentifier" type="string">EVTS</attr>'
        '<node name="info" path="/outInfo/0/info/"><attr key="sizeX" type="int">'
        f'{width}</attr><attr key="sizeY" type="int">{height}</attr></node></node></node></dv>'
    ).encode()
    # root at 20; vtable at 8 (three fields: compression +4, data table +8, info +16)
    head = struct.pack("<I4sHHHHH", 20, b"IOHE", 10, 20, 4, 8, 16) + b"\0\0"
    table = struct.pack("<iiqI", 12, compression, data_table, 4)
    return head + table + struct.pack("<I", len(xml)) + xml + b"\0"


def aedat4_file(
    packets: list[bytes], width: int, height: int, compression: int, ids: list[int] | None = None
) -> bytes:
    """An AEDAT4 file of the given packets (already compressed as `compression` says), of
    stream 0 (the event stream) or the stream `ids` names, without a data table."""
    header = io_header(width, height, compression)
    out = [MAGIC, struct.pack("<i", len(header)), header]
    for i, p in enumerate(packets):
        out += [struct.pack("<ii", ids[i] if ids else 0, len(p)), p]
    return b"".join(out)


def lz4_packet(ev: np.ndarray, **options: object) -> bytes:
    """An LZ4 frame of the events' packet (lz4.frame.compress options)."""
    return lz4.frame.compress(event_packet(dv_bytes(ev)), **options)
