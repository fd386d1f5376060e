"""What each AKD1000 NP and the HRC hold once config-DMA packets reach them.

`MeshState.write` takes packets in the order the config DMA plays them (the order
matters: the HRC's SRAM packets fill the bank its SRAM_SELECT register names, and a
separable CNP's filter-SRAM packet at start 1 holds the pointwise weights, at start 0 the
depthwise ones). `from_programs` plays every track of program binaries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from akida_rt.akd1000.np_registers import HRC, HRC_THRESHOLD_BANK
from akida_rt.akd1000.packets import HRC_ENABLE, ConfigPacket, PacketType, parse_track
from akida_rt.akd1000.packets import encode_track as packets_encode
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.akd1000.program_data import LearnWords, ProgramWords, RecordWords
from akida_rt.akd1000.program_info import NpIdent, ProgramInfo
from akida_rt.errors import ProgramFormatError

HRC_ID = -1  # the HRC's NP id in an ident (col, row, id)
REGISTER_WORDS = 128
SELECT = HRC["SRAM_SELECT"].word


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
            select = int(self.registers[SELECT])
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


# --- encoding: NP state back to packets, tracks and a program ------------------------------
@dataclass(frozen=True)
class PacketSlot:
    """Where one config-DMA packet of a program goes and which state words it carries.

    The data is not kept: it is read from the NP state when the program is encoded (the
    NP's registers or memory from `start`, an HRC SRAM packet from bank `bank`; an HRC
    SRAM_SELECT write sends `bank`), XORed with `diff` when the packet sent other words
    than the NP holds at the end (protocol writes: the HRC's load flag and start pulse)."""

    col: int
    row: int
    np_mask: int
    hrc: bool
    type_id: int
    start: int
    words: int
    xl: bool = False
    bank: int | None = None  # HRC: the SRAM_SELECT an SRAM packet fills or a write sets
    diff: np.ndarray | None = field(default=None, compare=False)

    @property
    def idents(self) -> list[tuple[int, int, int]]:
        if self.hrc:
            return [(self.col, self.row, HRC_ID)]
        return [(self.col, self.row, i) for i in range(4) if self.np_mask >> i & 1]


TrackPlan = tuple[PacketSlot, ...]


@dataclass(frozen=True)
class RecordPlan:
    tracks: tuple[TrackPlan, ...]
    fnp2: NpIdent | None = None  # the FNP2 whose weight memory is this record's DDR track


@dataclass(frozen=True)
class LearnPlan:
    ident: NpIdent
    learning_registers: TrackPlan
    inference_registers: TrackPlan
    ram: RecordPlan
    weight_words: int


@dataclass(frozen=True)
class ProgramPlan:
    """The packets of a program by pass, record and track (the shape of ProgramWords)."""

    passes: tuple[tuple[RecordPlan, ...], ...]
    learn: LearnPlan | None = None

    def slots(self) -> list[tuple[TrackPlan, bool]]:
        """Every track's slots, with whether it is the learning-registers track."""
        out = [(t, False) for p in self.passes for r in p for t in r.tracks]
        if self.learn is not None:
            out.append((self.learn.learning_registers, True))
            out += [(self.learn.inference_registers, False)]
            out += [(t, False) for t in self.learn.ram.tracks]
        return out


def _ident(n: NpIdent) -> tuple[int, int, int]:
    return (n.col, n.row, n.id)


def _source(state: MeshState, slot: PacketSlot, ident: tuple[int, int, int]) -> np.ndarray:
    """The words the NP state holds where `slot` writes."""
    s = state.nps.get(ident)
    if s is None:
        return np.zeros(slot.words, np.uint32)
    if slot.type_id == PacketType.REGISTERS:
        words = s.registers[slot.start : slot.start + slot.words]
        if slot.bank is not None:  # an HRC SRAM_SELECT write: the bank it selects
            words = words.copy()
            words[0] = slot.bank
        return words
    if slot.hrc:
        bank = s.hrc_banks.get(slot.bank if slot.bank is not None else 0, np.zeros(0, np.uint32))
        out = np.zeros(slot.words, np.uint32)
        part = bank[slot.start : slot.start + slot.words]
        out[: part.size] = part
        return out
    mem = s.memory(slot.type_id, slot.start)
    if mem.size != slot.words:
        raise ProgramFormatError(
            f"NP {ident}: memory {slot.type_id} at {slot.start} holds {mem.size} words, the "
            f"program's packet {slot.words}: set the packet plan's length or the memory's"
        )
    return mem


def _packet_data(state: MeshState, slot: PacketSlot) -> list[tuple[int, np.ndarray]]:
    """(NP mask, data) of the packets `slot` becomes: one, or one per NP when the NPs of
    its mask no longer hold the same words."""
    per = [(ident, _source(state, slot, ident)) for ident in slot.idents]
    diff = slot.diff
    if diff is not None:
        per = [(ident, d ^ diff) for ident, d in per]
    if all(np.array_equal(d, per[0][1]) for _, d in per[1:]):
        return [(slot.np_mask, per[0][1])]
    return [(0 if slot.hrc else 1 << ident[2], d) for ident, d in per]


def encode_track(state: MeshState, plan: TrackPlan) -> np.ndarray:
    """The words of a track: every slot's packet with its data from `state`."""
    packets = [
        ConfigPacket(
            s.col, s.row, mask, s.hrc, s.type_id, s.start, np.asarray(data, np.uint32), xl=s.xl
        )
        for s in plan
        for mask, data in _packet_data(state, s)
    ]
    return packets_encode(packets)


def _plan_track(packets: list[ConfigPacket], state: MeshState) -> TrackPlan:
    """The slots of a track whose packets were played into `state` (bank set as played)."""
    slots = []
    for p in packets:
        bank = None
        if p.hrc and p.type_id != PacketType.REGISTERS:
            hrc = state.nps.get((p.col, p.row, HRC_ID))
            bank = int(hrc.registers[SELECT]) if hrc is not None else 0
        elif p.hrc and p.start == SELECT and len(p.data):
            bank = int(p.data[0])  # selects the bank of the SRAM packets that follow
        slots.append(PacketSlot(p.col, p.row, p.np_mask, p.hrc, p.type_id, p.start,
                                len(p.data), p.xl, bank, p.data))  # fmt: skip
        state.apply(p)
    return tuple(slots)


def _with_diffs(plan: TrackPlan, state: MeshState) -> TrackPlan:
    """Slots whose `diff` (the words played, for now) becomes the XOR with the state's
    final words, or None where the packet sent what the NP holds at the end."""
    out = []
    for s in plan:
        sent = np.asarray(s.diff, np.uint32)
        d = sent ^ _source(state, dataclasses.replace(s, diff=None), s.idents[0])
        out.append(dataclasses.replace(s, diff=d if d.any() else None))
    return tuple(out)


@dataclass
class ProgramState:
    """A program as NP state: what every NP holds (`mesh`; `learning` holds the learning
    NP's registers in learning mode), the packet plan that delivers it, and the host-side
    ProgramInfo. `to_program` encodes it; a state read with `from_program` and left
    unchanged encodes to the exact bytes it was read from."""

    info: ProgramInfo
    mesh: MeshState
    plan: ProgramPlan
    learning: MeshState = field(default_factory=MeshState)

    @classmethod
    def from_program(cls, program: ProgramBinary) -> ProgramState:
        words = program.words()
        mesh, learning = MeshState(), MeshState()

        def track(w: np.ndarray, into: MeshState, label: str) -> TrackPlan:
            return _plan_track(parse_track(w, label), into)

        def record(r: RecordWords, label: str) -> RecordPlan:
            tracks = tuple(track(t, mesh, f"{label} track {i}") for i, t in enumerate(r.tracks))
            if r.fnp2 is not None and r.fnp2_np is not None:
                mesh.set_fnp2_weights(_ident(r.fnp2_np), r.fnp2)
            return RecordPlan(tracks, r.fnp2_np if r.fnp2 is not None else None)

        passes = tuple(
            tuple(record(r, f"pass {p} record {i}") for i, r in enumerate(recs))
            for p, recs in enumerate(words.passes)
        )
        learn = None
        if words.learn is not None:
            lw = words.learn
            lr = track(lw.learning_registers, learning, "learning registers")
            ir = track(lw.inference_registers, mesh, "inference registers")
            learn = LearnPlan(lw.ident, lr, ir, record(lw.ram, "learning ram"), lw.weight_words)
        plan = ProgramPlan(
            tuple(tuple(_finish(r, mesh) for r in recs) for recs in passes),
            None if learn is None else LearnPlan(
                learn.ident, _with_diffs(learn.learning_registers, learning),
                _with_diffs(learn.inference_registers, mesh), _finish(learn.ram, mesh),
                learn.weight_words),
        )  # fmt: skip
        return cls(program.info, mesh, plan, learning)

    @classmethod
    def from_bytes(cls, buf: bytes, where: str = "program") -> ProgramState:
        return cls.from_program(ProgramBinary.from_bytes(buf, where))

    def words(self) -> ProgramWords:
        """The words of every track, encoded from the NP state (what ProgramBinary.build
        takes)."""

        def record(r: RecordPlan) -> RecordWords:
            tracks = tuple(encode_track(self.mesh, t) for t in r.tracks)
            if r.fnp2 is None:
                return RecordWords(tracks)
            weights = self.mesh.nps[_ident(r.fnp2)].memory(PacketType.FNP_WEIGHTS)
            return RecordWords(tracks, weights.copy(), r.fnp2)

        passes = tuple(tuple(record(r) for r in recs) for recs in self.plan.passes)
        learn = None
        lp = self.plan.learn
        if lp is not None:
            learn = LearnWords(lp.ident, encode_track(self.learning, lp.learning_registers),
                               encode_track(self.mesh, lp.inference_registers), record(lp.ram),
                               lp.weight_words)  # fmt: skip
        return ProgramWords(passes, learn)

    def to_program(self) -> ProgramBinary:
        """The program binary delivering this state (track offsets laid out anew)."""
        return ProgramBinary.build(self.info, self.words())

    def to_bytes(self) -> bytes:
        return self.to_program().to_bytes()


def _finish(r: RecordPlan, mesh: MeshState) -> RecordPlan:
    return RecordPlan(tuple(_with_diffs(t, mesh) for t in r.tracks), r.fnp2)
