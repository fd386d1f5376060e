"""The program data of an AKD1000 program binary: the config-DMA tracks themselves, laid out
as the second size-prefixed flatbuffer of the binary, in the layout and build order of
akida's compiler, so a program rebuilt from its tracks is byte-identical.

Layout (read from programs akida 2.19.3 makes; the engine only follows track offsets):
root {passes: [Pass {records: [Record]}], learning: Learning, dummy: struct 2 x u32};
Record {tracks: [Track {words: [u32]}], fnp2: Fnp2 {np: NPIdent, words: [u32]}};
Learning {np: NPIdent, learning registers: Record, inference registers: Record, ram: Record,
weight words: u32 (the learning SRAM's words without the packet header)}.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import flatbuffers
import numpy as np

from akida_rt.akd1000.program_info import (
    Fnp2Track,
    LearningLayer,
    NpIdent,
    Pass,
    ProgramInfo,
    Record,
    Track,
)


@dataclass(frozen=True)
class RecordWords:
    """One record's tracks (whole config packets each) and its FNP2 weights, if any."""

    tracks: tuple[np.ndarray, ...]
    fnp2: np.ndarray | None = None
    fnp2_np: NpIdent | None = None


@dataclass(frozen=True)
class LearnWords:
    ident: NpIdent  # the learning NP
    learning_registers: np.ndarray
    inference_registers: np.ndarray
    ram: RecordWords
    weight_words: int  # the learning SRAM's words, packet header excluded


@dataclass(frozen=True)
class ProgramWords:
    """Everything the program data holds: the words of every track, by pass and record."""

    passes: tuple[tuple[RecordWords, ...], ...]
    learn: LearnWords | None = None


class _Builder:
    """Builds the program data and remembers where each track's words land."""

    def __init__(self) -> None:
        self.b = flatbuffers.Builder(1 << 16)

    def words(self, w: np.ndarray) -> int:
        return self.b.CreateNumpyVector(np.ascontiguousarray(w, dtype="<u4"))

    def track(self, w: np.ndarray) -> tuple[int, int]:
        vec = self.words(w)
        self.b.StartObject(1)
        self.b.PrependUOffsetTRelativeSlot(0, vec, 0)
        return self.b.EndObject(), vec

    def offsets(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for o in reversed(items):
            self.b.PrependUOffsetTRelative(o)
        return self.b.EndVector()

    def np_ident(self, n: NpIdent, slot: int) -> None:
        self.b.Prep(1, 3)
        self.b.PrependUint8(n.id)
        self.b.PrependUint8(n.row)
        self.b.PrependUint8(n.col)
        self.b.Slot(slot)

    def record(self, r: RecordWords) -> tuple[int, list[int], int | None]:
        tables, vecs = [], []
        for w in r.tracks:
            t, v = self.track(w)
            tables.append(t)
            vecs.append(v)
        fnp2 = fnp2_vec = None
        if r.fnp2 is not None:
            fnp2_vec = self.words(r.fnp2)
            self.b.StartObject(2)
            self.b.PrependUOffsetTRelativeSlot(1, fnp2_vec, 0)
            self.np_ident(r.fnp2_np or NpIdent(0, 0, 0), 0)
            fnp2 = self.b.EndObject()
        tracks = self.offsets(tables)
        self.b.StartObject(2)
        if fnp2 is not None:
            self.b.PrependUOffsetTRelativeSlot(1, fnp2, 0)
        self.b.PrependUOffsetTRelativeSlot(0, tracks, 0)
        return self.b.EndObject(), vecs, fnp2_vec


# Where a record's vectors landed: (builder offsets of its track word vectors, of its FNP2
# word vector or None). Builder offsets count from the buffer's end.
_Placed = tuple[list[int], int | None]


@dataclass
class _Placement:
    records: list[list[_Placed]] = dataclasses.field(default_factory=list)  # per pass
    learn: tuple[int, int, _Placed] | None = None  # learning regs, inference regs, ram
    dummy: int = 0


def build_program_data(words: ProgramWords) -> tuple[bytes, _Placement]:
    """The size-prefixed program data holding `words`, and where their vectors landed."""
    bb = _Builder()
    b = bb.b
    placed = _Placement()
    tables: list[list[int]] = []
    for p in words.passes:
        built = [bb.record(r) for r in p]
        tables.append([t for t, _, _ in built])
        placed.records.append([(vecs, fnp2) for _, vecs, fnp2 in built])
    learn = None
    if words.learn is not None:
        lw = words.learn
        lr, (lr_vec,), _ = bb.record(RecordWords((lw.learning_registers,)))
        ir, (ir_vec,), _ = bb.record(RecordWords((lw.inference_registers,)))
        ram, ram_vecs, ram_fnp2 = bb.record(lw.ram)
        b.StartObject(5)
        b.PrependUint32Slot(4, lw.weight_words, 0)
        b.PrependUOffsetTRelativeSlot(3, ram, 0)
        b.PrependUOffsetTRelativeSlot(2, ir, 0)
        b.PrependUOffsetTRelativeSlot(1, lr, 0)
        bb.np_ident(lw.ident, 0)
        learn = b.EndObject()
        placed.learn = (lr_vec, ir_vec, (ram_vecs, ram_fnp2))
    passes = []
    for recs in tables:
        vec = bb.offsets(recs)
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
        passes.append(b.EndObject())
    passes_vec = bb.offsets(passes)
    b.StartObject(3)
    b.Prep(4, 8)  # the dummy config header: two zero words
    b.PrependUint32(0)
    b.PrependUint32(0)
    placed.dummy = b.Offset()
    b.Slot(2)
    if learn is not None:
        b.PrependUOffsetTRelativeSlot(1, learn, 0)
    b.PrependUOffsetTRelativeSlot(0, passes_vec, 0)
    b.FinishSizePrefixed(b.EndObject())
    return bytes(b.Output()), placed


def layout(words: ProgramWords, info: ProgramInfo) -> tuple[bytes, ProgramInfo]:
    """Build the program data for `words` and return it with `info`'s track offsets (and
    FNP2 tracks, learning tracks, dummy header) pointing into it."""
    data, placed = build_program_data(words)
    n = len(data)

    def track(vec: int, w: np.ndarray) -> Track:
        return Track(n - vec + 4, len(w))  # the words follow the vector's length word

    def record(rw: RecordWords, where: _Placed, np_default: NpIdent) -> Record:
        vecs, fnp2 = where
        tracks = tuple(track(v, w) for v, w in zip(vecs, rw.tracks, strict=True))
        if rw.fnp2 is None or fnp2 is None:
            return Record(tracks)
        return Record(tracks, Fnp2Track(track(fnp2, rw.fnp2), rw.fnp2_np or np_default))

    old_passes = info.passes or ()
    passes = []
    for p, (recs, where) in enumerate(zip(words.passes, placed.records, strict=True)):
        old = old_passes[p] if p < len(old_passes) else Pass(None)
        new = tuple(record(r, w, NpIdent(0, 0, 0)) for r, w in zip(recs, where, strict=True))
        passes.append(dataclasses.replace(old, records=new))
    learn = info.learning_layer
    if words.learn is not None and placed.learn is not None:
        lw = words.learn
        lr_vec, ir_vec, ram_where = placed.learn
        learn = LearningLayer(track(lr_vec, lw.learning_registers),
                              track(ir_vec, lw.inference_registers),
                              record(lw.ram, ram_where, lw.ident), lw.ident)  # fmt: skip
    dummy = Track(n - placed.dummy, 2)
    return data, dataclasses.replace(info, passes=tuple(passes), learning_layer=learn,
                                     dummy_header=dummy)  # fmt: skip


def extract(info: ProgramInfo, data: bytes) -> ProgramWords:
    """The words of every track of a program (info + data)."""

    def words(t: Track) -> np.ndarray:
        return np.frombuffer(data, "<u4", count=t.words, offset=t.offset).copy()

    def record(r: Record) -> RecordWords:
        if r.fnp2 is None:
            return RecordWords(tuple(words(t) for t in r.tracks or ()))
        return RecordWords(tuple(words(t) for t in r.tracks or ()), words(r.fnp2.track),
                           r.fnp2.np)  # fmt: skip

    passes = tuple(tuple(record(r) for r in p.records or ()) for p in info.passes or ())
    learn = None
    ll = info.learning_layer
    if ll is not None and ll.learning_registers and ll.inference_registers and ll.ram and ll.np:
        ram = record(ll.ram)
        size = ll.ram.fnp2.track.words if ll.ram.fnp2 else sum(len(t) for t in ram.tracks)
        learn = LearnWords(ll.np, words(ll.learning_registers), words(ll.inference_registers),
                           ram, size - 2)  # fmt: skip
    return ProgramWords(passes, learn)
