"""The `ProgramInfo` table of an AKD1000 program binary as frozen dataclasses, read from
and written to flatbuffers with the `flatbuffers` runtime.

Field list, vtable slots and struct layouts from BrainChip's Akida Engine schema
(inc/engine/akida_program_info_generated.h); program_info_build.py writes them back.
Tracks are (byte offset into the program data, word count) pairs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

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
SLOTS = {name: 4 + 2 * i for i, name in enumerate((
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
    s = SLOTS
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
