"""Program files: round trip, atomic save, and a precise ProgramFormatError for bad input."""

from __future__ import annotations

import functools
import hashlib
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akida_rt import AKD1000, MapMode, Model, ProgramFormatError, TwoNodesIP
from akida_rt.format import program as fmt
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.model import zoo


@pytest.fixture(scope="module")
def packed() -> bytes:
    return zoo.digits_cnn(seed=1).to_bytes()


def _repack(msg: pb.Program) -> bytes:
    payload = msg.SerializeToString()
    return (
        fmt.HEADER.pack(fmt.MAGIC, 1, 0, 0, len(payload), hashlib.sha256(payload).digest())
        + payload
    )


def test_round_trip_is_identical(tmp_path, packed) -> None:
    model = Model(packed)
    path = tmp_path / "m.akp"
    model.save(path)
    again = Model(path)
    assert again.same_as(model)
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.akp"]  # no temp files left


def test_mapping_is_stored(tmp_path) -> None:
    model = zoo.digits_cnn(seed=1)
    model.map(TwoNodesIP(), mode=MapMode.Minimal)
    path = tmp_path / "mapped.akp"
    model.save(path)
    again = Model(path)
    assert [s.name for s in again.sequences] == [s.name for s in model.sequences]
    assert [s.plan for s in again.sequences] == [s.plan for s in model.sequences]
    assert again.device.name == "TwoNodesIP"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:10], "truncated: 10 bytes"),
        (lambda b: b[:-5], "truncated: header says"),
        (lambda b: b + b"xx", "trailing bytes"),
        (lambda b: b"NOTAKIDA" + b[8:], "not an akida_rt program"),
        (lambda b: b[:8] + struct.pack("<H", 9) + b[10:], "unknown format version 9"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "content hash mismatch"),
    ],
)
def test_framing_errors(packed, mutate, message) -> None:
    with pytest.raises(ProgramFormatError, match=message):
        Model(mutate(packed))


def _message(packed: bytes) -> pb.Program:
    return fmt.unpack(packed)


def test_shape_that_does_not_match_weight_count(packed) -> None:
    msg = _message(packed)
    msg.layers[1].weights.shape[:] = [3, 3, 16, 31]
    with pytest.raises(
        ProgramFormatError, match=r"layer 1 'conv_1' weights: tensor shape .* needs"
    ):
        Model(_repack(msg))


def test_out_of_range_bit_width(packed) -> None:
    msg = _message(packed)
    msg.layers[2].weight_bits = 3
    with pytest.raises(ProgramFormatError, match=r"conv_2.*weight_bits 3 not in"):
        Model(_repack(msg))


def test_weights_outside_their_bit_range(packed) -> None:
    msg = _message(packed)
    w = np.frombuffer(msg.layers[1].weights.data, np.int8).copy()
    w[0] = 100
    msg.layers[1].weights.data = w.tobytes()
    with pytest.raises(ProgramFormatError, match="outside the 4-bit range"):
        Model(_repack(msg))


def test_layers_that_do_not_chain(packed) -> None:
    msg = _message(packed)
    msg.layers[3].input_shape[:] = [5, 5, 64]
    with pytest.raises(ProgramFormatError, match="does not chain"):
        Model(_repack(msg))


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(ProgramFormatError, match="no such program file"):
        Model(tmp_path / "nope.akp")
    with pytest.raises(ProgramFormatError, match="is a directory"):
        Model(tmp_path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    with pytest.raises(ProgramFormatError):
        Model(data)


@functools.cache
def _valid_program() -> bytes:
    return zoo.digits_cnn(seed=1).to_bytes()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fuzz_mutated_valid_files(data) -> None:
    msg = fmt.unpack(_valid_program())
    payload = bytearray(msg.SerializeToString())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(payload) - 1))
        payload[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(payload)))
        payload = payload[:cut]
    blob = fmt.HEADER.pack(
        fmt.MAGIC, 1, 0, 0, len(payload), hashlib.sha256(payload).digest()
    ) + bytes(payload)
    try:
        model = Model(blob)
    except ProgramFormatError:
        return
    # A mutation that still parses must give a usable model.
    x = np.zeros((1, *model.input_shape), np.uint8)
    model.forward(x)


def test_mapped_program_for_akd1000_round_trips() -> None:
    model = zoo.ds_cnn_kws(seed=0)
    model.map(AKD1000())
    again = Model(model.to_bytes())
    assert again.sequences[0].np_count == model.sequences[0].np_count == 65


def test_atomic_write_sets_the_mode_and_leaves_no_temp_file(tmp_path) -> None:
    """Program files are readable like any saved file; private blobs can ask for 0600."""
    model = zoo.digits_cnn(seed=1)
    model.save(tmp_path / "m.akp")
    fmt.atomic_write(tmp_path / "secret", b"learned", mode=0o600)
    assert (tmp_path / "m.akp").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.akp", "secret"]
