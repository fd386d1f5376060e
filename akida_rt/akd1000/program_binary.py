"""AKD1000 program binaries (`model.sequences[i].program` of akida on `akida.AKD1000()`):
read, validate and write them; reach each track's words and config-DMA packets.

Layout: a size-prefixed ProgramInfo flatbuffer, then the size-prefixed program data; a
track is a byte offset into the program data (counting its 4-byte size word) and a count of
32-bit words. The program data is kept verbatim, so writing a program read back gives
akida's bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from akida_rt.akd1000.packets import ConfigPacket, parse_track
from akida_rt.akd1000.program_data import ProgramWords, extract, layout
from akida_rt.akd1000.program_info import (
    ENGINE_VERSION,
    NSOC_V2,
    ProgramInfo,
    Track,
    read_program_info,
)
from akida_rt.akd1000.program_info_build import build
from akida_rt.errors import ProgramFormatError

SIZE_WORD = 4


def _size_prefixed(buf: bytes, at: int, what: str, where: str) -> int:
    if len(buf) < at + SIZE_WORD:
        raise ProgramFormatError(
            f"{where}: {len(buf)} bytes end before the size word of the {what} at byte {at}: "
            "the file is truncated or is not an AKD1000 program binary"
        )
    n = struct.unpack_from("<I", buf, at)[0]
    if at + SIZE_WORD + n > len(buf):
        raise ProgramFormatError(
            f"{where}: the {what} at byte {at} says {n} bytes but only "
            f"{len(buf) - at - SIZE_WORD} follow: the program is truncated"
        )
    return n


@dataclass(frozen=True)
class ProgramBinary:
    """A program binary: its ProgramInfo and its program data (size word included)."""

    info: ProgramInfo
    data: bytes

    @classmethod
    def from_bytes(cls, buf: bytes, where: str = "program") -> ProgramBinary:
        """Read and validate `buf`; `where` names it in errors (a file name, 'sequence 1')."""
        buf = bytes(buf)
        n_info = _size_prefixed(buf, 0, "program info", where)
        at = SIZE_WORD + n_info
        n_data = _size_prefixed(buf, at, "program data", where)
        if at + SIZE_WORD + n_data != len(buf):
            raise ProgramFormatError(
                f"{where}: {len(buf) - at - SIZE_WORD - n_data} bytes follow the program data: "
                "the program is overlong or two files were joined"
            )
        try:
            info = read_program_info(buf[SIZE_WORD:at])
        except (struct.error, IndexError, ValueError, UnicodeDecodeError) as e:
            raise ProgramFormatError(
                f"{where}: the program info is corrupted ({e}): not an AKD1000 program binary"
            ) from None
        program = cls(info, buf[at:])
        program.validate(where)
        return program

    @classmethod
    def build(cls, info: ProgramInfo, words: ProgramWords) -> ProgramBinary:
        """A program holding `words`, with `info`'s fields and its track offsets, FNP2
        tracks, learning tracks and dummy header laid out as akida's compiler lays them
        (a program's own `words()` give back its bytes exactly)."""
        data, placed = layout(words, info)
        program = cls(placed, data)
        program.validate()
        return program

    def words(self) -> ProgramWords:
        """The words of every track, by pass and record (what `build` takes)."""
        return extract(self.info, self.data)

    @classmethod
    def read(cls, path: str | Path) -> ProgramBinary:
        p = Path(path)
        return cls.from_bytes(p.read_bytes(), p.name)

    def to_bytes(self) -> bytes:
        """The program binary: byte-identical to akida's for a program read unchanged."""
        return build(self.info) + self.data

    def info_bytes(self) -> bytes:
        """The size-prefixed ProgramInfo flatbuffer alone."""
        return build(self.info)

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    # -- checks --------------------------------------------------------------------------
    def validate(self, where: str = "program") -> None:
        """Refuse a program for another engine or device, or with fields out of range."""
        check_versions(self.info, where)
        info = self.info
        for name, dims in (("input", info.input_dims), ("output", info.output_dims)):
            if dims is None or len(dims) != 3:
                raise ProgramFormatError(
                    f"{where}: {name} dims {dims} are not 3 values: re-map the model"
                )
        if not info.passes:
            raise ProgramFormatError(f"{where}: the program has no pass: re-map the model")
        spans = [(label, t) for label, t in info.tracks()]
        spans += [("FNP2 weights", f.track) for f in info.fnp2_tracks()]
        if info.dummy_header is not None:
            spans.append(("dummy header", info.dummy_header))
        for label, t in spans:
            if t.offset % 4 or t.offset < SIZE_WORD or t.offset + 4 * t.words > len(self.data):
                raise ProgramFormatError(
                    f"{where}: {label} spans bytes {t.offset}-{t.offset + 4 * t.words} outside "
                    f"the {len(self.data)}-byte program data (or unaligned): re-map the model"
                )
        for label, t in info.tracks():
            self.packets(t, f"{where}: {label}")

    # -- tracks ----------------------------------------------------------------------------
    def track_words(self, track: Track) -> np.ndarray:
        """The 32-bit words of `track` (a read-only view of the program data)."""
        return np.frombuffer(self.data, "<u4", count=track.words, offset=track.offset)

    def packets(self, track: Track, where: str = "track") -> list[ConfigPacket]:
        """The config-DMA packets of `track` (refused if it is not whole packets)."""
        return parse_track(self.track_words(track), where, track.offset)

    def all_packets(self) -> dict[str, list[ConfigPacket]]:
        """Every NP track's packets, by label."""
        return {label: self.packets(t, label) for label, t in self.info.tracks()}

    def configured_nps(self) -> set[tuple[int, int, int]]:
        """(col, row, id) of every NP (not the HRC) the program's tracks write to."""
        return {
            (p.col, p.row, i)
            for packets in self.all_packets().values()
            for p in packets
            if not p.hrc
            for i in range(4)
            if p.np_mask >> i & 1
        }

    @property
    def data_words(self) -> int:
        return (len(self.data) - SIZE_WORD) // 4


def check_versions(info: ProgramInfo, where: str = "program") -> None:
    """One line naming both sides when `info` was made for another engine or device."""
    dv = info.device_version
    if info.version != ENGINE_VERSION or dv != NSOC_V2:
        made = f"engine {info.version}, device {dv.name if dv else 'none'}"
        raise ProgramFormatError(
            f"{where}: made for {made}; this runtime speaks {ENGINE_VERSION} on AKD1000 "
            f"({NSOC_V2.name}): re-map the model with akida {ENGINE_VERSION}"
        )
