"""AEDAT 2.0 and 3.1 recordings (jAER, cAER), DVS polarity events only.

AEDAT 2.0: `#` header lines ("#!AER-DAT2.0"), then big-endian 8-byte events (u32
address, u32 time in us). The address layout follows the camera the header names:
DVS128 x = bits 7..1 (mirrored: 127 - x), y = bits 14..8 (mirrored), polarity bit 0
(1 OFF); DAVIS (the default) y = bits 30..22, x = bits 21..12, polarity bit 11 (1 ON),
bit 31 set for APS/IMU samples (skipped).
AEDAT 3.1: `#` header lines ending "#!END-HEADER", then packets: a 28-byte little-endian
header (i16 type, i16 source, i32 event size, i32 ts offset, i32 ts overflow, i32
capacity, i32 number, i32 valid) and the events; polarity events (type 1, 8 bytes): u32
data (bit 0 valid, bit 1 polarity, y = bits 16..2, x = bits 31..17), i32 time; the time is
overflow << 31 | time.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from akida_rt.errors import EventFileError
from akida_rt.stream.array_reader import ArrayEventReader
from akida_rt.stream.events import OnError, SensorInfo, empty, make_events


def _header(data: bytes) -> tuple[list[str], int]:
    lines, pos = [], 0
    while data.startswith(b"#", pos):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        lines.append(data[pos:end].decode("ascii", "replace").strip())
        pos = end
        if lines[-1].startswith("#!END-HEADER"):
            break
    return lines, pos


def decode_aedat2(data: bytes, start: int, header: list[str]) -> tuple[np.ndarray, tuple[int, int]]:
    raw = np.frombuffer(data, ">u4", (len(data) - start) // 8 * 2, start).reshape(-1, 2)
    addr, t = raw[:, 0], raw[:, 1].astype(np.int64)
    if any("DVS128" in line for line in header):
        x, y = 127 - ((addr >> 1) & 0x7F), 127 - ((addr >> 8) & 0x7F)
        return make_events(t, x, y, (addr & 1) == 0), (128, 128)
    dvs = (addr >> 31) == 0
    a = addr[dvs]
    return make_events(t[dvs], (a >> 12) & 0x3FF, (a >> 22) & 0x1FF, (a >> 11) & 1), (0, 0)


def decode_aedat31(data: bytes, start: int, path: str, on_error: OnError) -> np.ndarray:
    parts, pos = [], start
    while pos + 28 <= len(data):
        kind, _src, size, _off, overflow, _cap, number, _valid = struct.unpack_from(
            "<hhiiiiii", data, pos
        )
        body = pos + 28
        if size <= 0 or number < 0 or body + size * number > len(data):
            if on_error is OnError.RAISE:
                raise EventFileError(path, pos, "the file ends inside this packet (truncated); "
                                     "--skip-errors keeps the packets before it")  # fmt: skip
            break
        if kind == 1 and size == 8:
            raw = np.frombuffer(data, "<u4", 2 * number, body).reshape(-1, 2)
            d = raw[:, 0]
            ok = (d & 1) == 1
            t = (np.int64(overflow) << 31) | raw[:, 1].astype(np.int64)
            parts.append(
                make_events(t[ok], (d[ok] >> 17) & 0x7FFF, (d[ok] >> 2) & 0x7FFF, (d[ok] >> 1) & 1)
            )
        pos = body + size * number
    if pos < len(data) and on_error is OnError.RAISE:
        raise EventFileError(path, pos, "the file ends inside a packet header (truncated)")
    ev = np.concatenate(parts) if parts else empty()
    return ev[np.argsort(ev["t"], kind="stable")]  # packets of several sources interleave


def open_aedat_legacy(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = 1 << 16,
    on_error: OnError | str = OnError.RAISE,
    sensor: tuple[int, int] | None = None,
) -> ArrayEventReader:
    name = str(path)
    with open(name, "rb") as f:
        data = f.read()
    header, start = _header(data)
    version = header[0][len("#!AER-DAT") :] if header else ""
    if version.startswith("2"):
        ev, size = decode_aedat2(data, start, header)
    elif version.startswith("3"):
        ev, size = decode_aedat31(data, start, name, OnError(on_error)), (0, 0)
    else:
        raise EventFileError(name, 0, f"AEDAT version {version or '?'} is not 2.0 or 3.1")
    w, h = sensor or size
    if not (w and h) and len(ev):
        w, h = int(ev["x"].max()) + 1, int(ev["y"].max()) + 1
    return ArrayEventReader(name, ev, SensorInfo(w, h, f"AEDAT{version[:3]}"),
                            chunk_events=chunk_events, on_error=on_error)  # fmt: skip
