"""The `ProgramInfo` table of an AKD1000 program binary as frozen dataclasses, read from
and written to flatbuffers with the `flatbuffers` runtime.

Field list, vtable slots and struct layouts from BrainChip's Akida Engine schema
(inc/engine/akida_program_info_generated.h); the build order reproduces akida's compiler
byte for byte. Tracks are (byte offset into the program data, word count) pairs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import flatbuffers
from flatbuffers.table import Table

ENGINE_VERSION = "2.19.3"  # the program version this runtime speaks (akida 2.19.3)


class IoType(IntEnum):
    """How a program's inputs or outputs travel: dense, or sparse events of an FNP, a CNP
    or the HRC."""

    DENSE = 0
    FNP_SPARSE = 1
    CNP_SPARSE = 2
    HRC_SPARSE = 3


@dataclass(frozen=True)
class DeviceVersion:
    vendor_id: int
    product_id: int
    major_rev: int
    minor_rev: int

    @property
    def name(self) -> str:
        """BrainChip's name for this hardware version (NSoC_v2 is the AKD1000)."""
        return DEVICE_NAMES.get(self, f"device {self.vendor_id:#x}.{self.product_id:#x}."
                                      f"{self.major_rev}.{self.minor_rev}")  # fmt: skip


NSOC_V2 = DeviceVersion(0xBC, 0, 0, 2)  # AKD1000
DEVICE_NAMES = {
    DeviceVersion(0xBC, 0, 0, 1): "NSoC_v1",
    NSOC_V2: "NSoC_v2",
    DeviceVersion(0xBC, 0xA1, 3, 6): "TwoNodesIP_v1",
    DeviceVersion(0xBC, 0xA1, 3, 9): "AKD1500_v1",
    DeviceVersion(0xBC, 0xA2, 1, 0): "FPGA_v2",
    DeviceVersion(0xBC, 0xB1, 1, 0): "Pico_FPGA",
}


@dataclass(frozen=True)
class Track:
    """`words` 32-bit words at byte `offset` of the program data (its size word included)."""

    offset: int
    words: int


@dataclass(frozen=True)
class NpIdent:
    col: int
    row: int
    id: int


@dataclass(frozen=True)
class Fnp2Track:
    """An FNP2's weights, kept in DDR (their address goes in FNP2_DDR_CONF<np.id>)."""

    track: Track
    np: NpIdent


@dataclass(frozen=True)
class SkipDmaTrack:
    col: int
    row: int
    id: int
    channel: int
    used_for_tnp_b: bool
    skip_length: int
    skip_connect_id: int
    ob_32b_size: int


@dataclass(frozen=True)
class Record:
    """The tracks of one layer (or one learning RAM) and its FNP2 weights, if any."""

    tracks: tuple[Track, ...] | None
    fnp2: Fnp2Track | None = None


@dataclass(frozen=True)
class Pass:
    records: tuple[Record, ...] | None
    skipdma_store: tuple[SkipDmaTrack, ...] | None = None
    skipdma_load: tuple[SkipDmaTrack, ...] | None = None


@dataclass(frozen=True)
class LearningLayer:
    """The learning FNP: its register track for learning and for inference (they differ
    in a few words), its weight RAM record, and the NP."""

    learning_registers: Track | None
    inference_registers: Track | None
    ram: Record | None
    np: NpIdent | None


@dataclass(frozen=True)
class ProgramInfo:
    """Every field of akida's ProgramInfo; None where the buffer leaves a field out."""

    version: str | None
    device_version: DeviceVersion | None
    input_dims: tuple[int, ...] | None
    output_dims: tuple[int, ...] | None
    input_type: IoType
    output_type: IoType
    output_bits: int
    activation: bool
    dense_window_w: int
    dense_window_h: int
    output_shift: tuple[int, ...] | None
    output_scales: tuple[float, ...] | None
    max_num_desc: int
    epg_writes: tuple[tuple[int, int], ...] | None  # (register offset in EPG block, value)
    passes: tuple[Pass, ...] | None
    learning_layer: LearningLayer | None
    dummy_header: Track | None
    input_bits: int
    input_sign: bool
    input_channels_first: bool
    input_scales: tuple[float, ...] | None
    input_zero_points: tuple[int, ...] | None
    anomaly_detection: bool = False

    def tracks(self) -> list[tuple[str, Track]]:
        """Every NP track with a label saying where it sits ('pass 0 record 2 track 0', ...)."""
        out: list[tuple[str, Track]] = []
        for p, ps in enumerate(self.passes or ()):
            for r, rec in enumerate(ps.records or ()):
                for t, tr in enumerate(rec.tracks or ()):
                    out.append((f"pass {p} record {r} track {t}", tr))
        ll = self.learning_layer
        if ll is not None:
            if ll.learning_registers is not None:
                out.append(("learning registers", ll.learning_registers))
            if ll.inference_registers is not None:
                out.append(("inference registers", ll.inference_registers))
            for t, tr in enumerate((ll.ram.tracks or ()) if ll.ram else ()):
                out.append((f"learning ram track {t}", tr))
        return out

    def fnp2_tracks(self) -> list[Fnp2Track]:
        recs = [r for p in self.passes or () for r in p.records or ()]
        if self.learning_layer is not None and self.learning_layer.ram is not None:
            recs.append(self.learning_layer.ram)
        return [r.fnp2 for r in recs if r.fnp2 is not None]


# --- reading ------------------------------------------------------------------------------
# vtable slots (byte offsets in the vtable) of ProgramInfo, in schema order
_SLOTS = {name: 4 + 2 * i for i, name in enumerate((
    "version", "device_version", "input_dims", "output_dims", "input_type", "output_type",
    "output_bits", "activation", "dense_window_w", "dense_window_h", "output_shift",
    "output_scales", "max_num_desc", "epg_tracks", "passes", "learning_layer", "dummy_header",
    "input_bits", "input_sign", "input_channels_first", "input_scales", "input_zero_points",
    "anomaly_detection",
))}  # fmt: skip


def _u32s(buf: bytes, pos: int, n: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{n}I", buf, pos)


def _track_at(buf: bytes, pos: int) -> Track:
    return Track(*_u32s(buf, pos, 2))


def _struct(t: Table, slot: int) -> int | None:
    o = t.Offset(slot)
    return t.Pos + o if o else None


def _table(t: Table, slot: int) -> Table | None:
    o = t.Offset(slot)
    return Table(t.Bytes, t.Indirect(t.Pos + o)) if o else None


def _vector(t: Table, slot: int) -> tuple[int, int] | None:
    """(position of the first element, length) of a vector field."""
    o = t.Offset(slot)
    return (t.Vector(o), t.VectorLen(o)) if o else None


def _scalars(t: Table, slot: int, fmt: str) -> tuple | None:
    v = _vector(t, slot)
    if v is None:
        return None
    pos, n = v
    return struct.unpack_from(f"<{n}{fmt}", t.Bytes, pos)


def _get(t: Table, slot: int, kind: type, default: int = 0) -> int:
    o = t.Offset(slot)
    return t.Get(kind, t.Pos + o) if o else default


def _read_record(t: Table) -> Record:
    v = _vector(t, 4)
    tracks = None if v is None else tuple(_track_at(t.Bytes, v[0] + 8 * i) for i in range(v[1]))
    pos = _struct(t, 6)
    fnp2 = None
    if pos is not None:
        col, row, npid = t.Bytes[pos + 8 : pos + 11]
        fnp2 = Fnp2Track(_track_at(t.Bytes, pos), NpIdent(col, row, npid))
    return Record(tracks, fnp2)


def _read_skipdma(t: Table, slot: int) -> tuple[SkipDmaTrack, ...] | None:
    v = _vector(t, slot)
    if v is None:
        return None
    out = []
    for i in range(v[1]):
        p = v[0] + 12 * i
        col, row, npid, ch, tnp_b, length, cid, _pad, size = struct.unpack_from("<8BI", t.Bytes, p)
        out.append(SkipDmaTrack(col, row, npid, ch, bool(tnp_b), length, cid, size))
    return tuple(out)


def _tables(t: Table, slot: int) -> list[Table] | None:
    v = _vector(t, slot)
    if v is None:
        return None
    return [Table(t.Bytes, t.Indirect(v[0] + 4 * i)) for i in range(v[1])]


def read_program_info(buf: bytes) -> ProgramInfo:
    """The ProgramInfo of a flatbuffer `buf` (without its size prefix). May raise struct.error
    or IndexError on a corrupted buffer; program_binary turns those into one-line errors."""
    from flatbuffers import number_types as N

    root = Table(bytearray(buf), struct.unpack_from("<I", buf, 0)[0])
    s = _SLOTS
    dv_t = _table(root, s["device_version"])
    dv = None
    if dv_t is not None:
        dv = DeviceVersion(*(_get(dv_t, 4 + 2 * i, N.Uint8Flags) for i in range(4)))
    version_off = root.Offset(s["version"])
    version = root.String(root.Pos + version_off).decode() if version_off else None
    ev = _vector(root, s["epg_tracks"])
    epg = None if ev is None else struct.unpack_from(f"<{2 * ev[1]}I", buf, ev[0])
    passes = None
    pass_tables = _tables(root, s["passes"])
    if pass_tables is not None:
        passes = tuple(
            Pass(
                None if (rt := _tables(p, 4)) is None else tuple(_read_record(r) for r in rt),
                _read_skipdma(p, 6),
                _read_skipdma(p, 8),
            )
            for p in pass_tables
        )
    ll = None
    ll_t = _table(root, s["learning_layer"])
    if ll_t is not None:
        lr, ir, npos = _struct(ll_t, 4), _struct(ll_t, 6), _struct(ll_t, 10)
        ram_t = _table(ll_t, 8)
        ll = LearningLayer(
            None if lr is None else _track_at(ll_t.Bytes, lr),
            None if ir is None else _track_at(ll_t.Bytes, ir),
            None if ram_t is None else _read_record(ram_t),
            None if npos is None else NpIdent(*ll_t.Bytes[npos : npos + 3]),
        )
    dh = _struct(root, s["dummy_header"])
    return ProgramInfo(
        version=version,
        device_version=dv,
        input_dims=_scalars(root, s["input_dims"], "I"),
        output_dims=_scalars(root, s["output_dims"], "I"),
        input_type=IoType(_get(root, s["input_type"], N.Int8Flags)),
        output_type=IoType(_get(root, s["output_type"], N.Int8Flags)),
        output_bits=_get(root, s["output_bits"], N.Uint8Flags),
        activation=bool(_get(root, s["activation"], N.Uint8Flags)),
        dense_window_w=_get(root, s["dense_window_w"], N.Uint32Flags),
        dense_window_h=_get(root, s["dense_window_h"], N.Uint32Flags),
        output_shift=_scalars(root, s["output_shift"], "i"),
        output_scales=_scalars(root, s["output_scales"], "f"),
        max_num_desc=_get(root, s["max_num_desc"], N.Uint8Flags),
        epg_writes=None if epg is None else tuple(zip(epg[::2], epg[1::2], strict=True)),
        passes=passes,
        learning_layer=ll,
        dummy_header=None if dh is None else _track_at(root.Bytes, dh),
        input_bits=_get(root, s["input_bits"], N.Uint8Flags),
        input_sign=bool(_get(root, s["input_sign"], N.Uint8Flags)),
        input_channels_first=bool(_get(root, s["input_channels_first"], N.Uint8Flags)),
        input_scales=_scalars(root, s["input_scales"], "f"),
        input_zero_points=_scalars(root, s["input_zero_points"], "B"),
        anomaly_detection=bool(_get(root, s["anomaly_detection"], N.Uint8Flags)),
    )


# --- writing ------------------------------------------------------------------------------
def _struct_vector(b: flatbuffers.Builder, items: tuple, size: int, put) -> int:
    b.StartVector(size, len(items), 4)
    for item in reversed(items):
        put(b, item)
    return b.EndVector()


def _put_track(b: flatbuffers.Builder, t: Track) -> int:
    b.Prep(4, 8)
    b.PrependUint32(t.words)
    b.PrependUint32(t.offset)
    return b.Offset()


def _put_fnp2(b: flatbuffers.Builder, f: Fnp2Track) -> int:
    b.Prep(4, 12)
    b.Pad(1)
    b.PrependUint8(f.np.id)
    b.PrependUint8(f.np.row)
    b.PrependUint8(f.np.col)
    _put_track(b, f.track)
    return b.Offset()


def _put_np(b: flatbuffers.Builder, n: NpIdent) -> int:
    b.Prep(1, 3)
    b.PrependUint8(n.id)
    b.PrependUint8(n.row)
    b.PrependUint8(n.col)
    return b.Offset()


def _put_skipdma(b: flatbuffers.Builder, s: SkipDmaTrack) -> int:
    b.Prep(4, 12)
    b.PrependUint32(s.ob_32b_size)
    b.Pad(1)
    for v in (s.skip_connect_id, s.skip_length, int(s.used_for_tnp_b), s.channel, s.id, s.row,
              s.col):  # fmt: skip
        b.PrependUint8(v)
    return b.Offset()


def _build_record(b: flatbuffers.Builder, r: Record) -> int:
    tracks = None
    if r.tracks is not None:
        tracks = _struct_vector(b, r.tracks, 8, _put_track)
    b.StartObject(2)
    if r.fnp2 is not None:
        b.PrependStructSlot(1, _put_fnp2(b, r.fnp2), 0)
    if tracks is not None:
        b.PrependUOffsetTRelativeSlot(0, tracks, 0)
    return b.EndObject()


def _offsets_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _build_pass(b: flatbuffers.Builder, p: Pass) -> int:
    records = None
    if p.records is not None:
        records = _offsets_vector(b, [_build_record(b, r) for r in p.records])
    store = (
        None if p.skipdma_store is None else _struct_vector(b, p.skipdma_store, 12, _put_skipdma)
    )
    load = None if p.skipdma_load is None else _struct_vector(b, p.skipdma_load, 12, _put_skipdma)
    b.StartObject(3)
    if load is not None:
        b.PrependUOffsetTRelativeSlot(2, load, 0)
    if store is not None:
        b.PrependUOffsetTRelativeSlot(1, store, 0)
    if records is not None:
        b.PrependUOffsetTRelativeSlot(0, records, 0)
    return b.EndObject()


def _scalar_vector(b: flatbuffers.Builder, values: tuple, size: int, prepend) -> int:
    b.StartVector(size, len(values), size)
    for v in reversed(values):
        prepend(v)
    return b.EndVector()


def build_program_info(info: ProgramInfo) -> bytes:
    """The size-prefixed flatbuffer of `info`, built in the order akida's compiler builds
    it, so a program read and written back is byte-identical."""
    b = flatbuffers.Builder(1024)
    dv = None
    if info.device_version is not None:
        d = info.device_version
        b.StartObject(4)
        b.PrependUint8Slot(3, d.minor_rev, 0)
        b.PrependUint8Slot(2, d.major_rev, 0)
        b.PrependUint8Slot(1, d.product_id, 0)
        b.PrependUint8Slot(0, d.vendor_id, 0)
        dv = b.EndObject()
    passes = None if info.passes is None else [_build_pass(b, p) for p in info.passes]
    ll = None
    if info.learning_layer is not None:
        la = info.learning_layer
        ram = None if la.ram is None else _build_record(b, la.ram)
        b.StartObject(4)
        if la.np is not None:
            b.PrependStructSlot(3, _put_np(b, la.np), 0)
        if ram is not None:
            b.PrependUOffsetTRelativeSlot(2, ram, 0)
        if la.inference_registers is not None:
            b.PrependStructSlot(1, _put_track(b, la.inference_registers), 0)
        if la.learning_registers is not None:
            b.PrependStructSlot(0, _put_track(b, la.learning_registers), 0)
        ll = b.EndObject()
    version = None if info.version is None else b.CreateString(info.version)

    def vec(values, size, prepend):
        return None if values is None else _scalar_vector(b, tuple(values), size, prepend)

    in_dims = vec(info.input_dims, 4, b.PrependUint32)
    out_dims = vec(info.output_dims, 4, b.PrependUint32)
    shift = vec(info.output_shift, 4, b.PrependInt32)
    scales = vec(info.output_scales, 4, b.PrependFloat32)
    epg = None
    if info.epg_writes is not None:

        def put_epg(bb: flatbuffers.Builder, w: tuple[int, int]) -> None:
            bb.Prep(4, 8)
            bb.PrependUint32(w[1])
            bb.PrependUint32(w[0])

        epg = _struct_vector(b, info.epg_writes, 8, put_epg)
    passes_vec = None if passes is None else _offsets_vector(b, passes)
    in_scales = vec(info.input_scales, 4, b.PrependFloat32)
    in_zero = vec(info.input_zero_points, 1, b.PrependUint8)

    s = {k: (v - 4) // 2 for k, v in _SLOTS.items()}  # slot numbers
    b.StartObject(len(_SLOTS))
    for name, off in (("input_zero_points", in_zero), ("input_scales", in_scales)):
        if off is not None:
            b.PrependUOffsetTRelativeSlot(s[name], off, 0)
    if info.dummy_header is not None:
        b.PrependStructSlot(s["dummy_header"], _put_track(b, info.dummy_header), 0)
    for name, off in (("learning_layer", ll), ("passes", passes_vec), ("epg_tracks", epg),
                      ("output_scales", scales), ("output_shift", shift)):  # fmt: skip
        if off is not None:
            b.PrependUOffsetTRelativeSlot(s[name], off, 0)
    b.PrependUint32Slot(s["dense_window_h"], info.dense_window_h, 0)
    b.PrependUint32Slot(s["dense_window_w"], info.dense_window_w, 0)
    for name, off in (("output_dims", out_dims), ("input_dims", in_dims),
                      ("device_version", dv), ("version", version)):  # fmt: skip
        if off is not None:
            b.PrependUOffsetTRelativeSlot(s[name], off, 0)
    b.PrependBoolSlot(s["anomaly_detection"], info.anomaly_detection, False)
    b.PrependBoolSlot(s["input_channels_first"], info.input_channels_first, False)
    b.PrependBoolSlot(s["input_sign"], info.input_sign, False)
    b.PrependUint8Slot(s["input_bits"], info.input_bits, 0)
    b.PrependUint8Slot(s["max_num_desc"], info.max_num_desc, 0)
    b.PrependBoolSlot(s["activation"], info.activation, False)
    b.PrependUint8Slot(s["output_bits"], info.output_bits, 0)
    b.PrependInt8Slot(s["output_type"], int(info.output_type), 0)
    b.PrependInt8Slot(s["input_type"], int(info.input_type), 0)
    b.FinishSizePrefixed(b.EndObject())
    return bytes(b.Output())
