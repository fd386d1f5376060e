"""Writing the `ProgramInfo` table of an AKD1000 program binary with the `flatbuffers`
runtime, in the order akida's compiler builds it, so a program read and written back is
byte-identical (schema: inc/engine/akida_program_info_generated.h of BrainChip's engine).
"""

from __future__ import annotations

import flatbuffers

from akida_rt.akd1000.program_info import (
    SLOTS,
    Fnp2Track,
    NpIdent,
    Pass,
    ProgramInfo,
    Record,
    SkipDmaTrack,
    Track,
)


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


def build(info: ProgramInfo) -> bytes:
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

    s = {k: (v - 4) // 2 for k, v in SLOTS.items()}  # slot numbers
    b.StartObject(len(SLOTS))
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
