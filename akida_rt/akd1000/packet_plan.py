"""The packets BrainChip's compiler sends to deliver NP state, in its order: the packet
plan (np_state.ProgramPlan) a compiler builds so that ProgramState.to_program encodes.

Measured on every program of the conformance suite and the zoo: one record per layer
with one track; in the track each NP's packets are contiguous (the NP order is the
compiler's); the HRC's setup and its layer are two records of fixed shape.
"""

from __future__ import annotations

import numpy as np

from akida_rt.akd1000.np_placement import Placement
from akida_rt.akd1000.np_registers import HRC, HRC_THRESHOLD_BANK
from akida_rt.akd1000.np_state import (
    HRC_ID,
    LearnPlan,
    MeshState,
    NpState,
    PacketSlot,
    ProgramPlan,
    RecordPlan,
    TrackPlan,
    encode_track,
)
from akida_rt.akd1000.packets import PacketType
from akida_rt.akd1000.program_info import NpIdent

NP_REGISTER_WORDS = 50  # a CNP's or FNP's register packet
HRC_SRAM_START = 40
HRC_LAYER_WORDS = (8, 8)  # start and count of the HRC register packet sent first
LOAD_FLAG = 1  # HRC register 8 bit 0: set while the HRC SRAM is written
HRC_IDENT = (0, 0, HRC_ID)
MAX_TRACK_WORDS = 0xFFFF  # a config descriptor's 16-bit length: a track's words at most
MEMORY_ORDER = (PacketType.CNP_FILTER, PacketType.CNP_THRESHOLD, PacketType.FNP_WEIGHTS)


def np_slots(s: NpState, ddr_weights: bool = False) -> TrackPlan:
    """The packets of one CNP or FNP: its register words, then each memory (filter SRAM
    by start, threshold SRAM, FNP weights); an FNP2's weights (`ddr_weights`) stay in DDR."""
    col, row, npid = s.ident
    mask = 1 << npid
    slots = [PacketSlot(col, row, mask, False, PacketType.REGISTERS, 0, NP_REGISTER_WORDS)]
    for type_id in MEMORY_ORDER:
        if ddr_weights and type_id == PacketType.FNP_WEIGHTS:
            continue
        for start in s.starts(type_id):
            n = s.memory(type_id, start).size
            slots.append(PacketSlot(col, row, mask, False, type_id, start, n))
    return tuple(slots)


def layer_slots(nps: list[NpState], ddr_weights: bool = False) -> TrackPlan:
    """The track of a layer held by `nps`, in the order given."""
    return tuple(slot for s in nps for slot in np_slots(s, ddr_weights))


def layer_tracks(
    mesh: MeshState, nps: list[NpState], ddr_weights: bool = False
) -> tuple[TrackPlan, ...]:
    """The tracks of a layer held by `nps`, in the order given: its packets filled into
    tracks of at most MAX_TRACK_WORDS words (one track unless the layer is large; an NP's
    packets may straddle two)."""
    tracks: list[list[PacketSlot]] = [[]]
    words = 0
    for slot in layer_slots(nps, ddr_weights):
        n = encode_track(mesh, (slot,)).size
        if tracks[-1] and words + n > MAX_TRACK_WORDS:
            tracks.append([])
            words = 0
        tracks[-1].append(slot)
        words += n
    return tuple(tuple(t) for t in tracks)


def hrc_setup_slots(hrc: NpState) -> TrackPlan:
    """The HRC's first record: register 4, and register 64 (input channels) when the
    HRC computes the first layer (its SRAM holds weights)."""
    col, row, _ = hrc.ident
    slots = [PacketSlot(col, row, 0, True, PacketType.REGISTERS, 4, 1)]
    if hrc.hrc_banks:
        word = HRC["INPUT_CHANNELS"].word
        slots.append(PacketSlot(col, row, 0, True, PacketType.REGISTERS, word, 1))
    return tuple(slots)


def hrc_layer_slots(s: NpState) -> TrackPlan:
    """The HRC layer's record: registers 8-15 with the load flag, each weight bank then
    the thresholds (SRAM_SELECT, then the bank's words from word 40), register 8 without
    the flag, and the start pulse (register 0: 1, then 0)."""
    col, row, npid = s.ident
    if npid != HRC_ID:
        raise ValueError(f"NP {s.ident} is not the HRC")

    def reg(start: int, n: int, diff: int | None = None, bank: int | None = None) -> PacketSlot:
        d = None if diff is None else np.array([diff] + [0] * (n - 1), np.uint32)
        return PacketSlot(col, row, 0, True, PacketType.REGISTERS, start, n, bank=bank, diff=d)

    select = HRC["SRAM_SELECT"].word
    slots = [reg(*HRC_LAYER_WORDS, diff=LOAD_FLAG)]
    banks = sorted(b for b in s.hrc_banks if b != HRC_THRESHOLD_BANK)
    for bank in [*banks, HRC_THRESHOLD_BANK]:
        words = s.hrc_banks.get(bank, np.zeros(HRC_SRAM_START, np.uint32)).size
        slots.append(reg(select, 2, bank=bank))
        slots.append(PacketSlot(col, row, 0, True, PacketType.CNP_FILTER, HRC_SRAM_START,
                                words - HRC_SRAM_START, bank=bank))  # fmt: skip
    slots += [reg(HRC_LAYER_WORDS[0], 1), reg(0, 1, diff=1), reg(0, 1)]
    return tuple(slots)


def program_plan(
    mesh: MeshState, placement: Placement, learn: LearnPlan | None = None
) -> ProgramPlan:
    """BrainChip's plan for one program: the HRC's setup record, then a record per placed
    layer in order (the HRC layer's, or its NPs' packets in placement order; a layer on
    an FNP2 names it for its DDR weights). `learn` is a learning layer's plan."""
    hrc = mesh.nps.get(HRC_IDENT) or NpState(HRC_IDENT)
    records = [RecordPlan((hrc_setup_slots(hrc),))]
    for index in sorted(placement):
        slots = placement[index]
        if slots[0].ident[2] == HRC_ID:
            records.append(RecordPlan((hrc_layer_slots(hrc),)))
            continue
        fnp2 = [s.ident for s in slots if s.fnp2]
        if len(fnp2) > 1:
            raise ValueError(f"layer {index} on {len(fnp2)} FNP2s: a record holds one")
        nps = [mesh.nps[s.ident] for s in slots]
        tracks = layer_tracks(mesh, nps, ddr_weights=bool(fnp2))
        records.append(RecordPlan(tracks, NpIdent(*fnp2[0]) if fnp2 else None))
    return ProgramPlan((tuple(records),), learn)
