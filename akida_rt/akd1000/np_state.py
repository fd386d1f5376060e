"""What each AKD1000 NP and the HRC hold once config-DMA packets reach them.

`MeshState.write` takes packets in the order the config DMA plays them (the order
matters: the HRC's SRAM packets fill the bank its SRAM_SELECT register names, and a
separable CNP's filter-SRAM packet at start 1 holds the pointwise weights, at start 0 the
depthwise ones). `from_programs` plays every track of program binaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from akida_rt.akd1000.np_registers import HRC, HRC_THRESHOLD_BANK
from akida_rt.akd1000.packets import HRC_ENABLE, ConfigPacket, PacketType
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.errors import ProgramFormatError

HRC_ID = -1  # the HRC's NP id in an ident (col, row, id)
REGISTER_WORDS = 128


@dataclass
class NpState:
    """One NP's (or the HRC's) registers and memories.

    Attributes:
        ident: (col, row, id), id HRC_ID for the HRC.
        registers: 128 register words (CNP/FNP: 50 used; HRC: by word address).
        memories: (packet type id, start) -> words, for NP SRAMs.
        hrc_banks: HRC SRAM contents by SRAM_SELECT value.
    """

    ident: tuple[int, int, int]
    registers: np.ndarray = field(default_factory=lambda: np.zeros(REGISTER_WORDS, np.uint32))
    memories: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    hrc_banks: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def is_hrc(self) -> bool:
        return self.ident[2] == HRC_ID

    def memory(self, type_id: int, start: int = 0) -> np.ndarray:
        """Words of memory `type_id` written at `start` (empty when never written)."""
        return self.memories.get((type_id, start), np.zeros(0, np.uint32))

    def starts(self, type_id: int) -> list[int]:
        """Start addresses of the packets that filled memory `type_id`, in order."""
        return sorted(start for t, start in self.memories if t == type_id)

    def apply(self, type_id: int, start: int, data: np.ndarray) -> None:
        data = np.asarray(data, np.uint32)
        if type_id == PacketType.REGISTERS:
            if start + data.size > REGISTER_WORDS:
                raise ProgramFormatError(
                    f"NP {self.ident}: {data.size} register words at {start} pass word "
                    f"{REGISTER_WORDS}"
                )
            self.registers[start : start + data.size] = data
        elif self.is_hrc:
            select = int(self.registers[HRC["SRAM_SELECT"].word])
            self.hrc_banks[select] = _placed(self.hrc_banks.get(select), start, data)
        else:
            self.memories[(type_id, start)] = data.copy()


def _placed(old: np.ndarray | None, start: int, data: np.ndarray) -> np.ndarray:
    """An HRC bank with `data` written from word `start` (the HRC SRAM starts at 40)."""
    n = start + data.size
    out = np.zeros(max(n, 0 if old is None else old.size), np.uint32)
    if old is not None:
        out[: old.size] = old
    out[start:n] = data
    return out


@dataclass
class MeshState:
    """Every NP the config DMA reached, by ident."""

    nps: dict[tuple[int, int, int], NpState] = field(default_factory=dict)

    def write(self, col: int, row: int, mask: int, hrc: int | bool, type_id: int, start: int,
              data: np.ndarray) -> list[tuple[int, int, int]]:  # fmt: skip
        """Apply one config write packet; returns the idents it reached."""
        if hrc in (True, HRC_ENABLE):
            targets = [(col, row, HRC_ID)]
        else:
            targets = [(col, row, i) for i in range(4) if mask >> i & 1]
        for ident in targets:
            self.nps.setdefault(ident, NpState(ident)).apply(type_id, start, data)
        return targets

    def apply(self, packet: ConfigPacket) -> list[tuple[int, int, int]]:
        return self.write(packet.col, packet.row, packet.np_mask, packet.hrc, packet.type_id,
                          packet.start, packet.data)  # fmt: skip

    def play(self, packets: Iterable[ConfigPacket]) -> None:
        for p in packets:
            self.apply(p)

    def set_fnp2_weights(self, ident: tuple[int, int, int], words: np.ndarray) -> None:
        """An FNP2's weights: they stay in DDR (the program's FNP2 track) and are read by
        the NP from there, in the FNP weight layout."""
        state = self.nps.setdefault(ident, NpState(ident))
        state.memories[(PacketType.FNP_WEIGHTS, 0)] = np.asarray(words, np.uint32).copy()

    @property
    def hrc(self) -> NpState | None:
        return next((s for s in self.nps.values() if s.is_hrc), None)


def hrc_bank(state: NpState, select: int, start: int = 40) -> np.ndarray:
    """The words of HRC SRAM bank `select` from word `start`."""
    bank = state.hrc_banks.get(select)
    return np.zeros(0, np.uint32) if bank is None else bank[start:]


def hrc_threshold_bank(state: NpState, start: int = 40) -> np.ndarray:
    return hrc_bank(state, HRC_THRESHOLD_BANK, start)


def from_program(program: ProgramBinary, include_learning: bool = True) -> MeshState:
    """The NP state after every track of `program` (learning inference registers and
    learning SRAM too, when it has a learning layer) is played."""
    state = MeshState()
    for label, track in program.info.tracks():
        if label == "learning registers" or (label.startswith("learning") and not include_learning):
            continue
        state.play(program.packets(track, label))
    for fnp2 in program.info.fnp2_tracks():
        n = fnp2.np
        state.set_fnp2_weights((n.col, n.row, n.id), program.track_words(fnp2.track))
    return state
