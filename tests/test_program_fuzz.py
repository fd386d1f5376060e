"""Mutated programs with a valid header (hash recomputed over the mutated payload): the
loader refuses each one with ProgramFormatError, or loads a model that runs.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akida_rt import AKD1000, MapMode, Model, ProgramFormatError, TwoNodesIP
from akida_rt.errors import AkidaError
from akida_rt.format import program as fmt
from akida_rt.format.layer_kinds import Conv2D, FullyConnected, InputConv2D, InputData
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.model import zoo
from tests.daemon_harness import tiny_model

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I64 = (-(2**63), 2**63 - 1)
I32 = (-(2**31), 2**31 - 1)
U32 = (0, 2**32 - 1)
ITEMSIZE = {pb.INT8: 1, pb.UINT8: 1, pb.INT32: 4, pb.FLOAT32: 4, pb.INT64: 8}
EDGES = (0, 1, -1, 2, 3, 4, 7, 8, 9, 62, 63, 64, 65535, 65536, 65537, 2**31 - 1, 2**32, 2**62)


def _passes_model() -> Model:
    """HRC, two hardware passes, a software sequence (kernel 9) and an FNP."""
    model = Model(name="passes")
    model.add(InputConv2D("conv_0", (8, 8, 1), 4, 3, weight_bits=8))
    for i in range(1, 10):
        model.add(Conv2D(f"conv_{i}", 4, 3))
    model.add(Conv2D("conv_k9", 4, 9))
    model.add(FullyConnected("dense", 3, activation=False))
    zoo.randomize(model, 0)
    model.map(TwoNodesIP(), mode=MapMode.HwPr)
    return model


def _input_data_model() -> Model:
    """InputData (a placement with no NP) in a mapped model."""
    model = Model(name="events", input_scaling=(2.0, 1.0))
    model.add(InputData("events", (6, 6, 2), 4))
    model.add(Conv2D("conv", 4, 3))
    model.add(FullyConnected("dense", 3, activation=False))
    zoo.randomize(model, 1)
    model.map(TwoNodesIP(), mode=MapMode.AllNps)
    return model


@functools.cache
def _programs() -> tuple[bytes, ...]:
    mapped_tiny = tiny_model(1)
    mapped_tiny.map(AKD1000())
    models = (zoo.digits_cnn(seed=0), tiny_model(0), mapped_tiny)
    return tuple(m.to_bytes() for m in (*models, _passes_model(), _input_data_model()))


def _payload(program: bytes) -> bytes:
    return program[fmt.HEADER.size :]


def _rehashed(payload: bytes, *, mapped: bool) -> bytes:
    """A program file around `payload` whose header (length, SHA-256) is valid."""
    return fmt.pack_payload(payload, mapped=mapped)


def _rehashed_message(msg: pb.Program) -> bytes:
    return _rehashed(msg.SerializeToString(), mapped=msg.HasField("mapping"))


def _check(blob: bytes) -> None:
    """Refused with ProgramFormatError, or loaded into a model that runs or raises an
    AkidaError, saves, and loads again."""
    try:
        model = Model(blob)
    except ProgramFormatError:
        return
    top = 2**model.input_bits
    batch = np.random.default_rng(0).integers(0, top, (2, *model.input_shape), dtype=np.uint8)
    try:
        model.forward(batch[:1] * 0)
        model.predict(batch)
    except AkidaError:
        pass
    _ = [s.plan for s in model.sequences]  # (the plans only: no binaries compiled)
    assert Model(model.to_bytes()).same_as(model)


# ------------------------------------------------------------------- byte mutations
_EDITS = st.lists(
    st.tuples(
        st.sampled_from(("flip", "set", "insert", "delete")),
        st.floats(0, 1, exclude_max=True),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=3,
)


@FUZZ
@given(
    which=st.integers(0, 4),
    edits=_EDITS,
    cut=st.none() | st.floats(0, 1),
)
def test_byte_mutations_are_refused_or_run(which: int, edits: list[Any], cut: Any) -> None:
    program = _programs()[which]
    payload = bytearray(_payload(program))
    for op, where, data in edits:
        pos = int(where * len(payload))
        if op == "flip":
            payload[pos] ^= 1 << (data[0] % 8)
        elif op == "set":
            payload[pos : pos + len(data)] = data
        elif op == "insert":
            payload[pos:pos] = data
        else:
            del payload[pos : pos + data[0] % 32 + 1]
    if cut is not None:
        payload = payload[: int(cut * len(payload))]
    mapped = fmt.unpack(program).HasField("mapping")
    _check(_rehashed(bytes(payload), mapped=mapped))


# ------------------------------------------------------------------ field mutations
def _slots(msg: Message) -> list[tuple[Message, Any]]:
    """Every (message, field) of `msg` and of its set sub-messages."""
    out: list[tuple[Message, Any]] = []
    for fd in msg.DESCRIPTOR.fields:
        out.append((msg, fd))
        if fd.type != fd.TYPE_MESSAGE:
            continue
        if fd.is_repeated:
            for sub in getattr(msg, fd.name):
                out += _slots(sub)
        elif msg.HasField(fd.name):
            out += _slots(getattr(msg, fd.name))
    return out


def _int_range(fd: Any) -> tuple[int, int]:
    if fd.type in (fd.TYPE_UINT32, fd.TYPE_FIXED32):
        return U32
    if fd.type in (fd.TYPE_UINT64, fd.TYPE_FIXED64):
        return 0, 2**64 - 1
    if fd.type in (fd.TYPE_INT64, fd.TYPE_SINT64, fd.TYPE_SFIXED64):
        return I64
    return I32  # int32 and (open) enums


def _ints(fd: Any) -> st.SearchStrategy[int]:
    lo, hi = _int_range(fd)
    edges = [v for v in (*EDGES, lo, hi) if lo <= v <= hi]
    return st.sampled_from(edges) | st.integers(lo, hi)


_FLOATS = st.sampled_from((0.0, -1.0, 1e38, float("nan"), float("inf"))) | st.floats(width=32)
_TEXTS = st.sampled_from(("", "conv_1", "dense", "AKD1000", "HwPr", "HRC", "CNP2", "\x00")) | (
    st.text(max_size=12)
)


def _mutate_field(draw: Callable[..., Any], owner: Message, fd: Any) -> None:
    name = fd.name
    if fd.type == fd.TYPE_MESSAGE:
        if fd.is_repeated:
            items = getattr(owner, name)
            if len(items) and draw(st.booleans()):
                del items[draw(st.integers(0, len(items) - 1))]
            elif len(items):
                items.add().CopyFrom(items[draw(st.integers(0, len(items) - 1))])
            else:
                items.add()
        elif owner.HasField(name) and draw(st.booleans()):
            owner.ClearField(name)
        else:
            getattr(owner, name).SetInParent()
        return
    if fd.is_repeated:
        values: st.SearchStrategy[Any]
        if fd.type == fd.TYPE_STRING:
            values = _TEXTS
        elif fd.type in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
            values = _FLOATS
        else:
            values = _ints(fd)
        items = getattr(owner, name)
        new = list(items)
        op = draw(st.sampled_from(("set", "fill", "append", "delete", "replace")))
        if op == "set" and new:
            new[draw(st.integers(0, len(new) - 1))] = draw(values)
        elif op == "fill":  # e.g. a shape of [65536] * 4
            new = [draw(values)] * draw(st.integers(len(new), len(new) + 2))
        elif op == "delete" and new:
            del new[draw(st.integers(0, len(new) - 1))]
        elif op == "append":
            new.append(draw(values))
        else:
            new = draw(st.lists(values, max_size=6))
        items[:] = new
        if isinstance(owner, pb.Tensor) and draw(st.booleans()):
            # Zeros to match the new shape, or none at all when that would be too many.
            size = math.prod(new) * ITEMSIZE.get(owner.dtype, 1)
            owner.data = bytes(size) if 0 <= size <= 1 << 16 else b""
        return
    if fd.type == fd.TYPE_BOOL:
        setattr(owner, name, not getattr(owner, name))
    elif fd.type == fd.TYPE_STRING:
        setattr(owner, name, draw(_TEXTS))
    elif fd.type == fd.TYPE_BYTES:
        data = getattr(owner, name)
        cut = draw(st.integers(0, len(data)))
        setattr(owner, name, data[:cut] + draw(st.binary(max_size=9)))
    elif fd.type in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
        setattr(owner, name, draw(_FLOATS))
    else:
        setattr(owner, name, draw(_ints(fd)))


@FUZZ
@given(which=st.integers(0, 4), data=st.data())
def test_field_mutations_are_refused_or_run(which: int, data: st.DataObject) -> None:
    msg = fmt.unpack(_programs()[which])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        slots = _slots(msg)
        owner, fd = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
        _mutate_field(data.draw, owner, fd)
    _check(_rehashed_message(msg))


@FUZZ
@given(
    dtype=st.integers(*I32),
    shape=st.lists(st.sampled_from(EDGES) | st.integers(*I64), max_size=6),
    data=st.binary(max_size=64),
)
def test_any_tensor_is_decoded_or_refused(dtype: int, shape: list[int], data: bytes) -> None:
    tensor = pb.Tensor(dtype=dtype, shape=shape, data=data)  # type: ignore[arg-type]
    try:
        arr = fmt.decode_tensor(tensor, "t")
    except ProgramFormatError:
        return
    assert arr.nbytes == len(data) and list(arr.shape) == shape


def test_every_shape_of_edge_dimensions_is_decoded_or_refused() -> None:
    """Exhaustive over small ranks, since random shapes rarely hit a product that wraps."""
    dims = (0, 1, 2, -1, 32768, 65535, 65536, 65537, 2**32, 2**63 - 1, -(2**63))
    shapes = [s for rank in range(5) for s in itertools.product(dims, repeat=rank)]
    for shape in [*shapes, *itertools.product((1, 65536), repeat=5)]:
        for data in (b"", bytes(8)):
            tensor = pb.Tensor(dtype=pb.INT64, shape=shape, data=data)
            try:
                arr = fmt.decode_tensor(tensor, "t")
            except ProgramFormatError:
                continue
            assert arr.nbytes == len(data) and arr.shape == shape


# ------------------------------------------------------------------ regressions
def _digits() -> pb.Program:
    return fmt.unpack(_programs()[0])


@pytest.mark.parametrize(
    "shape",
    [[65536] * 4, [65536, 65536, 65536, 32768], [65536, 65536, 65536, 65535]],
)
def test_shape_whose_int64_product_wraps(shape: list[int]) -> None:
    """[65536]*4 used to wrap to 0 elements, match its empty data, and then make numpy
    raise ValueError on the reshape."""
    msg = _digits()
    msg.layers[1].weights.shape[:] = shape
    msg.layers[1].weights.data = b""
    with pytest.raises(ProgramFormatError, match=r"layer 1 'conv_1' weights: tensor of \d+"):
        Model(_rehashed_message(msg))


def test_header_only_programs() -> None:
    program = _programs()[0]
    header = program[: fmt.HEADER.size]
    assert len(header) == 56
    with pytest.raises(ProgramFormatError, match="truncated: header says"):
        Model(header)
    magic, version, flags, reserved, _length, digest = fmt.HEADER.unpack(header)
    zero_length = fmt.HEADER.pack(magic, version, flags, reserved, 0, digest)
    with pytest.raises(ProgramFormatError, match="content hash mismatch"):
        Model(zero_length)
    with pytest.raises(ProgramFormatError, match="format_version 0"):
        Model(_rehashed(b"", mapped=False))


def _edit_layer(index: int, **fields: Any) -> Callable[[pb.Program], None]:
    def edit(msg: pb.Program) -> None:
        for key, value in fields.items():
            if isinstance(value, pb.Tensor):
                getattr(msg.layers[index], key).CopyFrom(value)
            else:
                setattr(msg.layers[index], key, value)

    return edit


def _tensor(dtype: int, values: list[Any], np_dtype: str, shape: list[int] | None = None) -> Any:
    data = np.asarray(values, np_dtype).tobytes()
    return pb.Tensor(dtype=dtype, shape=shape or [len(values)], data=data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # Silently wrapped to int32 before.
        (_edit_layer(4, bias=_tensor(pb.INT64, [2**40] + [0] * 9, "<i8")), "bias: dtype INT64"),
        (_edit_layer(4, bias=_tensor(pb.INT32, [0] * 10, "<i4", [5, 2])), "is not 1-D"),
        (
            _edit_layer(4, output_scale=_tensor(pb.FLOAT32, [np.nan] * 10, "<f4")),
            "NaN or infinite",
        ),
        (_edit_layer(4, kernel_size=9), "FullyConnected has 1"),
        (_edit_layer(0, name=""), "a layer name is 1 to 256 printable"),
        (_edit_layer(1, name="conv\n1"), "printable"),
        (lambda msg: setattr(msg, "name", "x" * 300), "model name"),
        (lambda msg: msg.input_scaling.SetInParent(), "scale 0.0"),
        (lambda msg: setattr(msg.learning, "num_classes", -1), "learning: negative count"),
    ],
)
def test_fields_the_loader_used_to_accept(edit: Callable[[pb.Program], None], message) -> None:
    msg = _digits()
    edit(msg)
    with pytest.raises(ProgramFormatError, match=message):
        Model(_rehashed_message(msg))


def test_input_data_that_pools() -> None:
    """Its output shape halved, so the next layer chained, but the engine passes
    InputData through: forward raised ValueError in the dense product."""
    msg = fmt.unpack(_programs()[4])
    msg.layers[0].pooling = pb.MAX_2X2
    with pytest.raises(ProgramFormatError, match="InputData does not pool"):
        Model(_rehashed_message(msg))


def test_consistent_program_too_large_to_run() -> None:
    """A 65536x65536 input (a few bytes of weights) loaded, then forward needed GiBs."""
    msg = pb.Program(format_version=fmt.FORMAT_VERSION, name="huge")
    msg.layers.add(
        name="in", kind=pb.INPUT_DATA, input_shape=[65536, 65536, 1], padding=pb.SAME, input_bits=4
    )
    one = pb.Tensor(dtype=pb.INT8, shape=[1, 1, 1, 1], data=b"\x01")
    msg.layers.add(
        name="c", kind=pb.CONV2D, input_shape=[65536, 65536, 1], kernel_size=1, filters=1,
        stride=1, padding=pb.SAME, weight_bits=4, input_bits=4, weights=one,
    )  # fmt: skip
    with pytest.raises(ProgramFormatError, match="exceeds 268435456 elements"):
        Model(_rehashed_message(msg))


def test_header_flags_and_reserved_word() -> None:
    program = _programs()[0]
    payload = _payload(program)
    with pytest.raises(ProgramFormatError, match="the header says mapped"):
        Model(_rehashed(payload, mapped=True))
    head = bytearray(program[: fmt.HEADER.size])
    head[10] |= 0x80  # an unknown flag
    with pytest.raises(ProgramFormatError, match="unknown header flags"):
        Model(bytes(head) + payload)


def _edit_mapping(edit: Callable[[pb.Mapping], None]) -> bytes:
    msg = fmt.unpack(_programs()[3])
    edit(msg.mapping)
    return _rehashed_message(msg)


def _set(obj: Any, **fields: Any) -> None:
    for key, value in fields.items():
        setattr(obj, key, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: _set(m.sequences[0], passes=0), "0 passes, expected 1..10"),
        (lambda m: _set(m.sequences[0], passes=2**31 - 1), "passes, expected 1..10"),
        (lambda m: _set(m.sequences[0].placements[3], pass_index=7), "pass_index 7"),
        (lambda m: _set(m.sequences[0].placements[2].nps[0], col=99), "has no CNP1 at"),
        (lambda m: _set(m.sequences[0].placements[1], np_type="GPU"), "unknown NP type"),
        (lambda m: _set(m.sequences[0].placements[0], np_type="CNP1"), "only it, runs on the HRC"),
        (lambda m: _set(m.sequences[0].placements[4], weight_bytes=-1), "negative byte count"),
        (lambda m: _set(m.sequences[0].placements[2], layer="conv_1"), "each of its layers once"),
        (lambda m: m.sequences[1].placements.add(layer="conv_k9"), "software sequence has no"),
        (lambda m: _set(m, hw_only=True), "hw_only with 3 sequences"),
        (lambda m: _set(m, device="AKD2000"), "unknown device description"),
        (lambda m: m.sequences[1].layers.append("dense"), "cover the layers"),
        (
            lambda m: (
                m.sequences[0].placements[3].nps.add().CopyFrom(m.sequences[0].placements[2].nps[0])
            ),
            "already used in pass 0",
        ),
    ],
)
def test_mapping_fields(edit: Callable[[pb.Mapping], None], message: str) -> None:
    with pytest.raises(ProgramFormatError, match=message):
        Model(_edit_mapping(edit))


def test_programs_load_from_any_bytes_like() -> None:
    """Model(bytearray) used to raise TypeError (taken for a path)."""
    program = _programs()[1]
    for blob in (bytearray(program), memoryview(program)):
        assert Model(blob).same_as(Model(program))


def test_the_base_programs_round_trip() -> None:
    for program in _programs():
        _check(program)
        assert Model(program).to_bytes() == program
