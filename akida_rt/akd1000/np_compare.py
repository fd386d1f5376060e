"""Word-for-word comparison of two AKD1000 NP states (ours against BrainChip's), by
register word and memory, as used to measure np_compile against BrainChip's compiler.

`differences(ours, theirs)` names each register word or memory that differs on some NP.
"""

from __future__ import annotations

import numpy as np

from akida_rt.akd1000 import np_registers as regs
from akida_rt.akd1000.np_state import MeshState, NpState
from akida_rt.akd1000.packets import PacketType

MEMORY_NAMES: dict[int, str] = {
    PacketType.CNP_FILTER: "filter SRAM",
    PacketType.CNP_THRESHOLD: "threshold SRAM",
    PacketType.FNP_WEIGHTS: "weights",
}


def np_kind(s: NpState) -> str:
    """HRC, CNP or FNP (register word 1)."""
    if s.is_hrc:
        return "HRC"
    return "FNP" if regs.KIND.get(s.registers) == regs.FNP_KIND else "CNP"


def items(s: NpState) -> dict[str, np.ndarray]:
    """Every register word and memory of `s`, by name: "CNP word 3", "CNP filter SRAM@8",
    "HRC bank 0x1"."""
    kind = np_kind(s)
    out = {f"{kind} word {w}": s.registers[w : w + 1] for w in range(s.registers.size)}
    for (type_id, start), words in s.memories.items():
        name = MEMORY_NAMES.get(type_id, f"memory {type_id}")
        out[f"{kind} {name}{'@' + str(start) if start else ''}"] = words
    for select, words in s.hrc_banks.items():
        out[f"HRC bank {select:#x}"] = words
    return out


def differences(ours: MeshState, theirs: MeshState) -> dict[str, list[tuple[int, int, int]]]:
    """Item name -> idents of the NPs where `ours` and `theirs` differ (an NP only one of
    them programs differs in every item it has)."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for ident in sorted(set(ours.nps) | set(theirs.nps)):
        a, b = ours.nps.get(ident), theirs.nps.get(ident)
        ia = items(a) if a is not None else {}
        ib = items(b) if b is not None else {}
        for name in set(ia) | set(ib):
            x, y = ia.get(name), ib.get(name)
            if x is None or y is None or not np.array_equal(x, y):
                out.setdefault(name, []).append(ident)
    return out


def present(state: MeshState) -> set[str]:
    """The item names `state` has."""
    return {name for s in state.nps.values() for name in items(s)}
