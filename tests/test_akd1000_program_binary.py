"""AKD1000 program binaries read, validated and written back, on real programs from
BrainChip's compiler (akida 2.19.3 mapping onto `akida.AKD1000()`); skips without akida."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.akd1000.packets import PacketType, encode_track, parse_track  # noqa: E402
from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.akd1000.program_info import NSOC_V2, DeviceVersion, IoType  # noqa: E402
from akida_rt.errors import ProgramFormatError  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.akd1000_programs import cnp_model, learning_model, programs  # noqa: E402
from tests.metatf_models import from_zoo, random_model  # noqa: E402


@pytest.fixture(scope="module")
def real_programs() -> dict[str, bytes]:
    out = {}
    for seed in range(6):
        model, _ = random_model(seed)
        for i, p in enumerate(programs(model)):
            out[f"conformance {seed} seq {i}"] = p
    out["learning"] = programs(learning_model())[0]
    out["digits"] = programs(from_zoo(zoo.digits_cnn(seed=0)))[0]
    out["ds_cnn"] = programs(from_zoo(zoo.ds_cnn_kws(seed=0)))[0]
    out["akidanet_05"] = programs(from_zoo(zoo.akidanet(seed=0)))[0]
    return out


def test_programs_round_trip_byte_for_byte(real_programs) -> None:
    for name, buf in real_programs.items():
        p = ProgramBinary.from_bytes(buf, name)
        assert p.to_bytes() == buf, name
        assert p.info.version == akida.__version__
        assert p.info.device_version == NSOC_V2


def test_programs_rebuilt_from_their_tracks_are_akidas_bytes(real_programs) -> None:
    # program data laid out from the words of every track (FNP2 weights, learning layer)
    for name, buf in real_programs.items():
        p = ProgramBinary.from_bytes(buf, name)
        assert ProgramBinary.build(p.info, p.words()).to_bytes() == buf, name


def test_a_track_edited_and_rebuilt_is_what_akida_compiles() -> None:
    # Independent oracle: akida compiles the model with one threshold changed; we edit the
    # threshold word in the base program's track and rebuild: the same bytes.
    base = ProgramBinary.from_bytes(programs(cnp_model())[0])
    m = cnp_model()
    conv = m.get_layer("conv")
    th = conv.get_variable("threshold")
    old = int(th[5])
    th[5] = old + 7
    conv.set_variable("threshold", th)
    theirs = programs(m)[0]
    # the threshold SRAM packets, in track order, hold the filters in order: (threshold,
    # act_step x 16) for filter 0, 1, ... of the layer, NP after NP
    words = base.words()
    filters = []
    for record in words.passes[0]:
        for t, track in enumerate(record.tracks):
            packets = parse_track(track)
            filters += [(record, t, packets, pk, 2 * i)
                        for pk in packets if pk.type_id == PacketType.CNP_THRESHOLD
                        for i in range(len(pk.data) // 2)]  # fmt: skip
    record, t, packets, pk, at = filters[5]
    assert int(pk.data[at]) == old
    pk.data[at] = old + 7
    record.tracks[t][:] = encode_track(packets)
    assert ProgramBinary.build(base.info, words).to_bytes() == theirs


def test_every_track_is_whole_packets_and_reencodes(real_programs) -> None:
    for name, buf in real_programs.items():
        p = ProgramBinary.from_bytes(buf, name)
        for label, track in p.info.tracks():
            packets = p.packets(track, label)
            assert packets, (name, label)
            assert np.array_equal(encode_track(packets), p.track_words(track)), (name, label)


def test_fields_match_akida_model(real_programs) -> None:
    model, _ = random_model(0)
    model.map(akida.AKD1000())
    p = ProgramBinary.from_bytes(bytes(model.sequences[0].program))
    assert p.info.input_dims == tuple(model.input_shape)
    assert p.info.output_dims == tuple(model.output_shape)
    # seed 0 is an image model: dense 8-bit input through the HRC
    assert p.info.input_type is IoType.DENSE and p.info.input_bits == 8
    learn = ProgramBinary.from_bytes(real_programs["learning"]).info.learning_layer
    assert learn is not None and learn.learning_registers.words == learn.inference_registers.words


def _changed_words(a: ProgramBinary, b: ProgramBinary) -> list[tuple[int, int, int]]:
    """(type id, old word, new word) of every data word that differs between two programs
    of the same layout."""
    out = []
    for (label, ta), (_, tb) in zip(a.info.tracks(), b.info.tracks(), strict=True):
        for pa, pb in zip(a.packets(ta, label), b.packets(tb, label), strict=True):
            assert pa.header() == pb.header()
            for i in np.nonzero(pa.data != pb.data)[0]:
                out.append((pa.type_id, int(pa.data[i]), int(pb.data[i])))
    return out


def test_one_threshold_and_one_act_step_flip_their_words() -> None:
    # Independent check of the reference: a CNP's threshold SRAM (type 4) holds the
    # threshold in word 0 and act_step x 16 in word 1 of each filter.
    base = ProgramBinary.from_bytes(programs(cnp_model())[0])
    m = cnp_model()
    conv = m.get_layer("conv")
    th = conv.get_variable("threshold")
    old = int(th[5])
    th[5] = old + 7
    conv.set_variable("threshold", th)
    changed = ProgramBinary.from_bytes(programs(m)[0])
    assert changed.info == base.info
    assert _changed_words(base, changed) == [(PacketType.CNP_THRESHOLD, old, old + 7)]

    m = cnp_model()
    conv = m.get_layer("conv")
    step = conv.get_variable("act_step")
    old_step = float(step[3])
    step[3] = 2.5
    conv.set_variable("act_step", step)
    changed = ProgramBinary.from_bytes(programs(m)[0])
    assert _changed_words(base, changed) == [(PacketType.CNP_THRESHOLD, round(old_step * 16), 40)]


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_truncated_and_overlong_programs_are_refused(real_programs) -> None:
    buf = real_programs["conformance 0 seq 0"]
    for cut in (0, 3, 40, len(buf) // 2, len(buf) - 1):
        with pytest.raises(ProgramFormatError) as e:
            ProgramBinary.from_bytes(buf[:cut], "p.bin")
        assert _one_line(e).startswith("p.bin: ")
    with pytest.raises(ProgramFormatError) as e:
        ProgramBinary.from_bytes(buf + b"\0\0\0\0", "p.bin")
    assert "overlong" in _one_line(e)


def test_crafted_programs_are_refused(real_programs) -> None:
    buf = real_programs["conformance 0 seq 0"]
    p = ProgramBinary.from_bytes(buf)
    _, track = p.info.tracks()[0]
    # a packet header announcing more data than its track holds
    data = bytearray(p.data)
    w2 = struct.unpack_from("<I", data, track.offset + 4)[0]
    struct.pack_into("<I", data, track.offset + 4, w2 | (0x3FFF << 16))
    with pytest.raises(ProgramFormatError) as e:
        ProgramBinary.from_bytes(p.info_bytes() + bytes(data), "p.bin")
    assert f"byte offset {track.offset}" in _one_line(e) and "truncated" in str(e.value)
    # a track pointing past the program data
    bad = dataclasses.replace(p.info, dummy_header=type(track)(len(p.data), 4))
    with pytest.raises(ProgramFormatError) as e:
        ProgramBinary.from_bytes(ProgramBinary(bad, p.data).to_bytes(), "p.bin")
    assert "outside" in _one_line(e)
    # garbage where the flatbuffer should be
    junk = struct.pack("<I", 64) + bytes(range(64)) + struct.pack("<I", 4) + b"\0" * 4
    with pytest.raises(ProgramFormatError) as e:
        ProgramBinary.from_bytes(junk, "p.bin")
    _one_line(e)


def test_other_engine_or_device_refused_in_one_line(real_programs) -> None:
    buf = real_programs["conformance 1 seq 0"]
    old = buf.replace(b"2.19.3", b"2.18.0", 1)  # the version string, patched in place
    with pytest.raises(ProgramFormatError) as e:
        ProgramBinary.from_bytes(old, "program.bin")
    assert _one_line(e) == (
        "program.bin: made for engine 2.18.0, device NSoC_v2; this runtime speaks 2.19.3 on "
        "AKD1000 (NSoC_v2): re-map the model with akida 2.19.3"
    )
    p = ProgramBinary.from_bytes(buf)
    v1 = dataclasses.replace(p.info, device_version=DeviceVersion(0xBC, 0, 0, 1))
    with pytest.raises(ProgramFormatError) as e:
        ProgramBinary.from_bytes(ProgramBinary(v1, p.data).to_bytes(), "program.bin")
    assert "device NSoC_v1;" in _one_line(e)
