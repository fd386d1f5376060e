"""What an AKD1000 NP's memories hold, as values: weights, thresholds, act_steps and FNP
neuron metadata read from the words (`decode_memories`).

Every value has a sram_layout.Layout (weight_maps.py for weights; thresholds and metadata
here); np_compile writes memories with the same layouts (scatter), so one map reads and
writes each value. Bits no layout names are carried raw per memory.
Memory keys: (packet type id, start) for NP memories, ("bank", SRAM_SELECT) for the HRC's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from akida_rt.akd1000 import np_registers as regs
from akida_rt.akd1000 import weight_maps
from akida_rt.akd1000.np_state import NpState
from akida_rt.akd1000.packets import PacketType
from akida_rt.akd1000.sram_layout import Code, Layout, covered, gather
from akida_rt.errors import ProgramFormatError

THRESHOLD_BITS = 20  # CNP and FNP thresholds: 20-bit two's complement
HRC_THRESHOLD_BITS = 24  # the HRC's: sign-extended to 24 bits (bits 23-20 measured)
HRC_SRAM_START = 40  # the HRC SRAM packets start at word 40 of each bank
HRC_BANKS = (1, 2, 4)
FNP_META = (  # FNP neuron metadata: (value, word of the neuron, lsb, bits, code)
    ("threshold", 0, 0, THRESHOLD_BITS, Code.TWOS),
    ("act_step16", 1, 0, 20, Code.UNSIGNED),
    ("class_plus1", 1, 20, 12, Code.UNSIGNED),
    ("num_weights", 2, 0, 32, Code.UNSIGNED),
    ("thswap", 3, 0, 16, Code.UNSIGNED),
    ("threshold_learning", 3, 16, 16, Code.UNSIGNED),
)

MemKey = tuple[object, int]
# a value's layout in one memory; `select` picks the entries of the value it holds
Part = tuple[str, Layout, np.ndarray | None]


@dataclass
class NpMemories:
    """An NP's memories as values.

    Attributes:
        kind: "conv", "separable", "fnp" or "hrc".
        input_shape: the layer's input (x, y, channels); the layouts depend on it.
        values: by name: weights (akida's (kx, ky, C, F) order; "weights_dw" and
            "weights_pw" for a separable NP), threshold, act_step16 (act_step x 16),
            and on an FNP the neuron metadata of FNP_META.
        raw: per memory, the words with every named bit cleared (the size is the
            memory's).
    """

    kind: str
    input_shape: tuple[int, int, int]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[MemKey, np.ndarray] = field(default_factory=dict)


def np_kind(s: NpState) -> str:
    """conv, separable, fnp or hrc, from the NP's registers."""
    if s.is_hrc:
        return "hrc"
    if regs.KIND.get(s.registers) != regs.CNP_KIND:
        return "fnp"
    return "separable" if regs.CNP["SEPARABLE"].get(s.registers) else "conv"


def _pairs(n: int, base: int = 0, bits: int = THRESHOLD_BITS) -> list[Part]:
    """threshold and act_step x 16 of `n` filters, 2 words each from bit `base`."""
    at = base + 64 * np.arange(n)
    return [
        ("threshold", Layout(at, Code.TWOS, bits, words=base // 32 + 2 * n), None),
        ("act_step16", Layout(at + 32, Code.UNSIGNED, 32, words=base // 32 + 2 * n), None),
    ]


def _cnp_parts(s: NpState, c: int, sizes: dict[MemKey, int]) -> dict[MemKey, list[Part]]:
    r = regs.read(regs.CNP, s.registers)
    k, n = r["KERNEL"], r["NP_FILTERS"]
    out: dict[MemKey, list[Part]] = {(PacketType.CNP_THRESHOLD, 0): _pairs(n)}
    if r["SEPARABLE"]:
        dw = weight_maps.depthwise(k, c, r["DW_WEIGHT_BITS"])
        out[(PacketType.CNP_FILTER, 0)] = [("weights_dw", dw, None)]
        # the pointwise weights: the filter-SRAM packet at a later start
        later = sorted(k for k in sizes if k[0] == PacketType.CNP_FILTER and k[1] > 0)
        if later:
            halves = max(sizes[later[0]] // (2 * c), 1)
            pw = weight_maps.pointwise(c, n, r["PW_WEIGHT_BITS"], halves)
            out[later[0]] = [("weights_pw", pw, None)]
        return out
    wb = 4 if r["CONV_WEIGHTS_4BIT"] else 1 if r["FILTERS_1BIT"] else 2
    layout = weight_maps.conv(k, c, n, wb, r["CHANNEL_BLOCKS"])
    out[(PacketType.CNP_FILTER, 0)] = [("weights", layout, None)]
    return out


def _fnp_parts(s: NpState, inputs: int) -> dict[MemKey, list[Part]]:
    r = regs.read(regs.FNP, s.registers)
    wb = 4 if r["WEIGHTS_4BIT"] else 2 if r["WEIGHTS_MULTIBIT"] else 1
    units = r["UNITS"]
    per = weight_maps.fnp_neuron_words(inputs, wb)
    parts: list[Part] = [("weights", weight_maps.fnp(inputs, units, wb), None)]
    for name, word, lsb, bits, code in FNP_META:
        at = 32 * (per * np.arange(units) + word) + lsb
        parts.append((name, Layout(at, code, bits, words=per * units), None))
    return {(PacketType.FNP_WEIGHTS, 0): parts}


def _hrc_parts(s: NpState, c: int) -> dict[MemKey, list[Part]]:
    r = regs.read(regs.HRC, s.registers)
    k, nf = r["KERNEL"], r["FILTERS"]
    bank, byte = weight_maps.hrc(k, c, nf)
    base = 32 * HRC_SRAM_START
    out: dict[MemKey, list[Part]] = {
        ("bank", regs.HRC_THRESHOLD_BANK): _pairs(nf, base, HRC_THRESHOLD_BITS),
    }
    for b in range(weight_maps.hrc_banks(k, c)):
        sel = bank == b
        at = base + 8 * byte[sel]
        words = HRC_SRAM_START + (int(byte[sel].max(initial=0)) // 4 + 1)
        out[("bank", 1 << b)] = [("weights", Layout(at, Code.TWOS, 8, words=words), sel)]
    return out


def _parts(
    s: NpState, kind: str, shape: tuple[int, int, int], sizes: dict[MemKey, int]
) -> dict[MemKey, list[Part]]:
    """The layouts of every value, by memory; `sizes` are the memories' words."""
    if kind == "hrc":
        return _hrc_parts(s, shape[2])
    if kind == "fnp":
        return _fnp_parts(s, int(np.prod(shape)))
    return _cnp_parts(s, shape[2], sizes)


def _sizes(s: NpState) -> dict[MemKey, int]:
    out: dict[MemKey, int] = {k: v.size for k, v in s.memories.items()}
    out.update({("bank", b): v.size for b, v in s.hrc_banks.items()})
    return out


def _memory(s: NpState, key: MemKey) -> np.ndarray:
    if key[0] == "bank":
        return s.hrc_banks.get(int(key[1]), np.zeros(0, np.uint32))
    return s.memory(int(key[0]), key[1])  # type: ignore[call-overload]


def decode_memories(s: NpState, input_shape: tuple[int, int, int]) -> NpMemories:
    """The values NP `s` holds; `input_shape` is its layer's input (x, y, C). A memory
    shorter than its layouts need is refused (ProgramFormatError naming the NP)."""
    kind = np_kind(s)
    out = NpMemories(kind, input_shape)
    for key, plist in _parts(s, kind, input_shape, _sizes(s)).items():
        mem = _memory(s, key)
        need = max(layout.words for _, layout, _ in plist)
        if mem.size < need:
            raise ProgramFormatError(
                f"NP {s.ident}: memory {_name(key)} holds {mem.size} words, its {kind} "
                f"layout needs {need}: the program is truncated or corrupted; re-map the model"
            )
        mask = np.zeros(mem.size, np.uint32)
        for name, layout, sel in plist:
            v = gather(mem, layout)
            mask |= covered(layout, mem.size)
            if sel is None:
                out.values[name] = v
            else:
                full = out.values.setdefault(name, np.zeros(sel.shape, v.dtype))
                full[sel] = v
        out.raw[key] = mem & ~mask
    return out


def _name(key: MemKey) -> str:
    if key[0] == "bank":
        return f"HRC bank {int(key[1]):#x}"  # type: ignore[call-overload]
    return f"type {key[0]} at {key[1]}"
