"""The NP mesh of the simulated AKD1000 as the config DMA fills it: per-NP memories.

Each NP (and the HRC) holds its registers and SRAMs as word arrays indexed by the config
packets' type id (8 registers, 0 filter SRAM, 2 learning thresholds, 4 threshold SRAM,
6 FNP weights). Packets are written and read here; what the words mean is the decoder's
business (akida_rt.akd1000). The mesh layout is the real AKD1000's, as akida.AKD1000()
describes it: nodes at (col, row), NP 0 an FNP3 (FNP2 on node (4, 1)), the DMAs on node
(3, 1) NPs 0 and 1, and the HRC at (0, 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

# Config packet type ids (word 1 bits 3:0) on AKD1000 (v1 IP).
UID_FILTER = 0x0
UID_LEARN_THRESHOLD = 0x2
UID_THRESHOLD = 0x4
UID_FNP_WEIGHTS = 0x6
UID_REGISTERS = 0x8
UID_HRC_SRAM = 0x0
UID_HRC_REGISTERS = 0x8

# Words each memory holds, per NP. Registers: 50 words are defined, the block decodes 64.
# SRAM depths from the AKD1000's per-NP figures (44,800 weight bytes; FNP weights up to
# 256 KiB), rounded up to what the 16-bit start address reaches.
NP_MEMORY_WORDS = {
    UID_REGISTERS: 64,
    UID_FILTER: 0x10000,
    UID_LEARN_THRESHOLD: 0x4000,
    UID_THRESHOLD: 0x4000,
    UID_FNP_WEIGHTS: 0x40000,
}
HRC_MEMORY_WORDS = {UID_HRC_REGISTERS: 128, UID_HRC_SRAM: 0x4000}
MEMORY_NAMES = {
    UID_REGISTERS: "registers",
    UID_FILTER: "filter SRAM",
    UID_LEARN_THRESHOLD: "learning threshold SRAM",
    UID_THRESHOLD: "threshold SRAM",
    UID_FNP_WEIGHTS: "FNP weights",
}

HRC_IDENT = (0, 0, 0)
DMA_NODE = (3, 1)  # NPs 0 and 1 of this node are the event and config DMAs
FNP2_NODE = (4, 1)
NODES = (
    [(1, r) for r in (3, 4, 5)]
    + [(2, r) for r in (3, 4, 5)]
    + [(3, r) for r in (1, 2, 3, 4, 5)]
    + [(4, r) for r in (1, 2, 3, 4, 5)]
    + [(5, r) for r in (2, 3, 4, 5)]
)


def np_types(col: int, row: int, ident: int) -> tuple[str, ...]:
    """The capabilities of NP (col, row, ident) on AKD1000 (empty: no such NP)."""
    if (col, row) not in NODES or not 0 <= ident < 4:
        return ()
    if (col, row) == DMA_NODE:
        return ("CNP1",) if ident >= 2 else ()
    if (col, row) == FNP2_NODE:
        return ("CNP1", "FNP2")
    return ("CNP1", "FNP3") if ident == 0 else ("CNP1", "CNP2")


@dataclass
class NpState:
    """The memories of one NP (or the HRC), grown as packets reach them."""

    ident: tuple[int, int, int]
    is_hrc: bool = False
    memories: dict[int, np.ndarray] = field(default_factory=dict)

    def limit(self, uid: int) -> int:
        table = HRC_MEMORY_WORDS if self.is_hrc else NP_MEMORY_WORDS
        return table.get(uid, 0)

    def memory(self, uid: int, words: int) -> np.ndarray:
        """Memory `uid`, at least `words` long (zero-filled growth)."""
        mem = self.memories.get(uid)
        if mem is None or mem.size < words:
            grown = np.zeros(max(words, 64), np.uint32)
            if mem is not None:
                grown[: mem.size] = mem
            self.memories[uid] = mem = grown
        return mem

    def words(self, uid: int, start: int = 0, count: int | None = None) -> np.ndarray:
        """A copy of `count` words of memory `uid` from `start` (zeros where unwritten)."""
        mem = self.memories.get(uid, np.zeros(0, np.uint32))
        end = mem.size if count is None else start + count
        out = np.zeros(max(end - start, 0), np.uint32)
        have = mem[start:end]
        out[: have.size] = have
        return out


class MeshError(Exception):
    """A config packet the mesh refuses (the config DMA logs it and drops the packet)."""


class NpMesh:
    """Every NP's memories, and a generation count that changes with any write."""

    def __init__(self) -> None:
        self.nps: dict[tuple[int, int, int], NpState] = {}
        self.generation = 0
        self.words_written = 0

    def reset(self) -> None:
        """Mesh reset: every NP's registers and SRAMs cleared."""
        self.nps.clear()
        self.generation += 1

    def _targets(self, col: int, row: int, mask: int, hrc: int) -> list[NpState]:
        if hrc == 0b10:
            if (col, row) != HRC_IDENT[:2]:
                raise MeshError(f"HRC packet to node ({col}, {row}); the HRC is at (0, 0)")
            state = self.nps.setdefault(HRC_IDENT, NpState(HRC_IDENT, is_hrc=True))
            return [state]
        if hrc:
            raise MeshError(f"HRC enable field {hrc:#b} is not a v1 value")
        if not mask:
            raise MeshError(f"packet to node ({col}, {row}) selects no NP")
        out = []
        for ident in range(4):
            if mask & (1 << ident):
                key = (col, row, ident)
                if not np_types(*key):
                    raise MeshError(
                        f"packet to NP {key}: AKD1000 has no such NP (a program for another "
                        "device?)"
                    )
                out.append(self.nps.setdefault(key, NpState(key)))
        return out

    def write(
        self, col: int, row: int, mask: int, hrc: int, uid: int, start: int, data: np.ndarray
    ) -> None:
        """Store one write packet's data; MeshError (nothing stored) when it does not fit."""
        targets = self._targets(col, row, mask, hrc)
        for state in targets:
            limit = state.limit(uid)
            if not limit:
                raise MeshError(
                    f"NP {state.ident}: packet type {uid} is no AKD1000 (v1) memory (a program "
                    "for another device?)"
                )
            if start + data.size > limit:
                raise MeshError(
                    f"NP {state.ident}: {data.size} words at {start} run past the end of its "
                    f"{MEMORY_NAMES.get(uid, f'memory {uid}')} ({limit} words)"
                )
        for state in targets:
            state.memory(uid, start + data.size)[start : start + data.size] = data
        self.generation += 1
        self.words_written += data.size * len(targets)

    def read(
        self, col: int, row: int, mask: int, hrc: int, uid: int, start: int, count: int
    ) -> np.ndarray:
        """`count` words of one NP's memory (the first NP the mask selects)."""
        targets = self._targets(col, row, mask, hrc)
        state = targets[0]
        limit = state.limit(uid)
        if not limit or start + count > limit:
            raise MeshError(
                f"NP {state.ident}: read of {count} words at {start} is past its memory"
            )
        return state.words(uid, start, count)
