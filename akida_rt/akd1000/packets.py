"""Config-DMA packets: how every NP, the HRC and their SRAMs are configured from DDR.

A packet is a 2-word header then data words. Word 1: column [31:24], row [23:16], NP mask
[11:8] (one bit per NP of the node), HRC enable [7:6] (0b10 = the HRC), type id [3:0].
Word 2: XL [31] (length counts 16-word units), length [29:16], start address [15:0].
A track of a program binary is a sequence of whole packets. (From BrainChip's Akida Engine,
dma_config_format.h and dma_config_ops.cpp.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from akida_rt.akd1000.registers import Field
from akida_rt.errors import ProgramFormatError

HEADER_WORDS = 2
XL_UNIT = 16  # words per length unit when XL is set

COL = Field("NP_COL", 24, 8)
ROW = Field("NP_ROW", 16, 8)
NP_MASK = Field("NP_DST", 8, 4)
HRC_EN = Field("HRC_EN", 6, 2)
TYPE_ID = Field("UID", 0, 4)
XL = Field("XL", 31)
LENGTH = Field("BLOCK_LEN", 16, 14)
START = Field("START_ADDR", 0, 16)

HRC_ENABLE = 0b10  # HRC_EN value of a packet for the HRC (its NP mask is then 0)


class PacketType(IntEnum):
    """Type ids of NP packets (the HRC's: 0 = its SRAM, 8 = its registers)."""

    CNP_FILTER = 0x0  # filter SRAM (also the HRC's SRAM)
    CNP_FILTER_COMPACT = 0x1
    CNP_LEARN_THRESHOLD = 0x2  # v1
    IB_PACKET = 0x3
    CNP_THRESHOLD = 0x4  # v1: threshold SRAM (threshold, act_step x 16)
    LUT = 0x5
    FNP_WEIGHTS = 0x6
    REGISTERS = 0x8  # the NP's (or HRC's) 32-bit configuration registers


@dataclass(frozen=True)
class ConfigPacket:
    """One config-DMA packet; `data` is empty for a read request (the header alone)."""

    col: int
    row: int
    np_mask: int
    hrc: bool
    type_id: int
    start: int
    data: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32), compare=False)
    xl: bool = False
    length: int = -1  # words the header announces; -1: len(data)

    @property
    def words(self) -> int:
        """Data words this packet's header announces."""
        return len(self.data) if self.length < 0 else self.length

    @property
    def nps(self) -> tuple[int, ...]:
        """Ids (0-3) of the NPs of node (col, row) this packet configures."""
        return tuple(i for i in range(4) if self.np_mask >> i & 1)

    def header(self) -> tuple[int, int]:
        n = self.words
        if self.xl:
            if n % XL_UNIT:
                raise ProgramFormatError(
                    f"an XL packet of {n} words: XL lengths are multiples of 16"
                )
            n //= XL_UNIT
        if n > LENGTH.max:
            raise ProgramFormatError(
                f"a packet of {self.words} words needs XL (at most {LENGTH.max})"
            )
        w1 = COL.set(0, self.col) | ROW.set(0, self.row) | NP_MASK.set(0, self.np_mask)
        w1 |= HRC_EN.set(0, HRC_ENABLE if self.hrc else 0) | TYPE_ID.set(0, self.type_id)
        w2 = XL.set(0, int(self.xl)) | LENGTH.set(0, n) | START.set(0, self.start)
        return w1, w2

    def encode(self) -> np.ndarray:
        return np.concatenate(
            [np.array(self.header(), np.uint32), np.asarray(self.data, np.uint32)]
        )

    def same(self, other: ConfigPacket) -> bool:
        """Equal headers and data."""
        return self.header() == other.header() and np.array_equal(self.data, other.data)


def packet_header(col: int, row: int, np_id: int | None, type_id: int, words: int, start: int = 0,
                  xl: bool | None = None) -> np.ndarray:  # fmt: skip
    """The 2-word header for NP `np_id` of node (col, row), or the HRC when `np_id` is None;
    XL is chosen as the engine does (when `words` does not fit 14 bits) unless given."""
    if xl is None:
        xl = words >= LENGTH.max
    mask = 0 if np_id is None else 1 << np_id
    p = ConfigPacket(col, row, mask, np_id is None, type_id, start, xl=xl, length=words)
    return np.array(p.header(), np.uint32)


def parse_header(w1: int, w2: int) -> ConfigPacket:
    """The packet a header announces (no data)."""
    xl = bool(XL.get(w2))
    n = LENGTH.get(w2) * (XL_UNIT if xl else 1)
    return ConfigPacket(COL.get(w1), ROW.get(w1), NP_MASK.get(w1), HRC_EN.get(w1) == HRC_ENABLE,
                        TYPE_ID.get(w1), START.get(w2), xl=xl, length=n)  # fmt: skip


def iter_packets(
    words: np.ndarray, where: str = "track", offset: int = 0
) -> Iterator[ConfigPacket]:
    """The whole packets of `words`; `offset` is the byte offset of words[0] in the program
    data, for error messages. A packet cut short, or words left that are no packet, are
    refused with a ProgramFormatError naming the byte offset."""
    w = np.asarray(words, np.uint32)
    i, n = 0, len(w)
    while i < n:
        at = offset + 4 * i
        if n - i < HEADER_WORDS:
            raise ProgramFormatError(
                f"{where}: {n - i} word(s) left at byte offset {at} are not a config packet "
                "(a header is 2 words): the track is overlong or corrupted; re-map the model"
            )
        head = parse_header(int(w[i]), int(w[i + 1]))
        end = i + HEADER_WORDS + head.words
        if end > n:
            raise ProgramFormatError(
                f"{where}: the packet at byte offset {at} announces {head.words} data words but "
                f"only {n - i - HEADER_WORDS} remain: the track is truncated; re-map the model"
            )
        yield ConfigPacket(head.col, head.row, head.np_mask, head.hrc, head.type_id, head.start,
                           w[i + HEADER_WORDS : end].copy(), xl=head.xl)  # fmt: skip
        i = end


def parse_track(words: np.ndarray, where: str = "track", offset: int = 0) -> list[ConfigPacket]:
    """Every packet of a track (see iter_packets)."""
    return list(iter_packets(words, where, offset))


def encode_track(packets: Iterable[ConfigPacket]) -> np.ndarray:
    """The words of a track made of `packets`, byte for byte as parsed."""
    parts = [p.encode() for p in packets]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint32)
