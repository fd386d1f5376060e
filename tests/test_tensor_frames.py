"""Tensor frames (akida_rt/wire/tensor_frames.py), the only form of an inference and its
result since protocol 3: hypothesis round trips and decode fuzzing in-process, then
inline and sealed-memfd requests and every malformed-frame error against a live akidad
on its real socket.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import time

import numpy as np
import pytest
from akida_rt.daemon.config import Config
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from akida_rt.errors import DaemonError, FrameRefused
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import status_of
from tests.daemon_harness import (
    Akidad,
    RawConnection,
    memfd_bytes,
    memfd_holding,
    open_memfds,
    random_input,
    tiny_model,
    wait_for,
)

DAEMON_LIMIT = Config().max_tensor_bytes  # the daemon under test runs with the default


def _profile(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


# Decode fuzzing here adds 5,000 cases to test_daemon_protocol.py's (framing and
# protobuf decoding); hypothesis costs 1 to 3 ms per case on the 2-core test machines.
ROUND_TRIP = _profile(200)
REFUSED = (dpb.BAD_INPUT, dpb.BAD_MESSAGE, dpb.UNKNOWN_TYPE)
U64, U32 = 2**64 - 1, 2**32 - 1
M = U32
LIMIT = 1 << 16  # the tensor-size limit the fuzzed decoders are given
F_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x10)  # Python < 3.12 lacks it


# ------------------------------------------------------------------ strategies
@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:
    """Any array that may travel: every wire dtype, 1..4 dims (zero-size ones too), any
    bit pattern (NaNs included), in either byte order."""
    dtype = draw(st.sampled_from(list(ipc.DTYPES.values())))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    n = math.prod(shape) * dtype.itemsize
    arr = np.frombuffer(draw(st.binary(min_size=n, max_size=n)), dtype=dtype).reshape(shape)
    if draw(st.booleans()):
        arr = arr.astype(dtype.newbyteorder(">"))
    return arr


def _little(arr: np.ndarray) -> np.ndarray:
    return arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr


@st.composite
def infer_frames(draw: st.DrawFn) -> tuple[bytes, dict]:
    x = draw(tensors())
    fields = {
        "req_id": draw(st.integers(0, U64)),
        "session": draw(st.integers(0, U64)),
        "predict": draw(st.booleans()),
        "timeout_ms": draw(st.integers(0, U32)),
        "in_shm": draw(st.booleans()),
        "output_to_shm": draw(st.booleans()),
    }
    frame = tf.encode_infer(
        fields["req_id"], fields["session"], x, predict=fields["predict"],
        timeout_ms=fields["timeout_ms"], in_shm=fields["in_shm"],
        output_to_shm=fields["output_to_shm"],
    )  # fmt: skip
    return frame, {**fields, "x": x}


@st.composite
def result_frames(draw: st.DrawFn) -> tuple[bytes, dict]:
    y = draw(tensors())
    fields = {
        "req_id": draw(st.integers(0, U64)),
        "device": draw(st.text(max_size=24)),
        "batch_frames": draw(st.integers(0, U32)),
        "queue_s": draw(st.floats(allow_nan=False)),
        "run_s": draw(st.floats(allow_nan=False)),
        "in_shm": draw(st.booleans()),
    }
    frame = tf.encode_result(
        fields["req_id"], y, fields["device"], fields["batch_frames"], fields["queue_s"],
        fields["run_s"], in_shm=fields["in_shm"],
    )  # fmt: skip
    return frame, {**fields, "y": y}


def _payload(frame: bytes) -> bytes:
    """A framed message's payload, after checking its length prefix."""
    (length,) = ipc.LENGTH.unpack_from(frame)
    assert length == len(frame) - ipc.LENGTH.size
    return frame[ipc.LENGTH.size :]


def _framed(payload: bytes) -> bytes:
    return ipc.LENGTH.pack(len(payload)) + payload


def _decode_infer(payload: bytes) -> tf.InferFrame:
    return tf.decode_infer(payload, LIMIT)


def _decodes_or_refuses(decode, payload: bytes):
    """Run a decoder: its frame, or None when refused with a protocol status."""
    try:
        return decode(payload)
    except FrameRefused as exc:
        assert status_of(exc) in REFUSED, status_of(exc)
        assert str(exc)
        assert 0 <= exc.req_id <= U64
        return None


# ------------------------------------------------------------------ round trips
@ROUND_TRIP
@given(infer_frames())
def test_infer_round_trip_is_exact_and_little_endian(case) -> None:
    frame, want = case
    payload = _payload(frame)
    assert tf.is_tensor_frame(payload)
    assert tf.uses_shm(payload) == (want["in_shm"] or want["output_to_shm"])
    f = tf.decode_infer(payload, tf.NO_LIMIT)
    assert (f.id, f.session, f.predict, f.timeout_ms, f.in_shm, f.output_to_shm) == (
        want["req_id"], want["session"], want["predict"], want["timeout_ms"],
        want["in_shm"], want["output_to_shm"],
    )  # fmt: skip
    x = _little(want["x"])
    assert f.dtype == x.dtype and f.dtype.byteorder in "<|="
    assert f.shape == x.shape
    if want["in_shm"]:
        assert f.x is None
        assert len(payload) == tf.INFER_HEAD.size  # the tensor is not on the socket
    else:
        assert f.x is not None and f.x.dtype.str == x.dtype.str
        assert f.x.shape == x.shape and f.x.tobytes() == x.tobytes()
        assert np.array_equal(f.x, want["x"], equal_nan=x.dtype.kind == "f")
        assert not f.x.flags.writeable


def test_infer_parts_sends_the_tensor_uncopied_after_the_header() -> None:
    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    head, body = tf.infer_parts(9, 4, x, predict=True, timeout_ms=250)
    assert len(head) == ipc.LENGTH.size + tf.INFER_HEAD.size
    assert isinstance(body, memoryview) and body.obj is x  # no copy before sendmsg
    assert head + bytes(body) == tf.encode_infer(9, 4, x, predict=True, timeout_ms=250)
    head, body = tf.infer_parts(9, 4, x, in_shm=True)
    assert body == b"" and _payload(head) == _payload(tf.encode_infer(9, 4, x, in_shm=True))


@ROUND_TRIP
@given(result_frames())
def test_result_round_trip_is_exact_and_little_endian(case) -> None:
    frame, want = case
    payload = _payload(frame)
    assert tf.is_tensor_frame(payload)
    assert not tf.uses_shm(payload)  # only requests bring descriptors
    r = tf.decode_result(payload)
    assert (r.id, r.device, r.batch_frames, r.queue_s, r.run_s, r.in_shm) == (
        want["req_id"], want["device"], want["batch_frames"], want["queue_s"],
        want["run_s"], want["in_shm"],
    )  # fmt: skip
    y = _little(want["y"])
    assert r.dtype == y.dtype and r.shape == y.shape
    if want["in_shm"]:
        assert r.y is None
    else:
        assert r.y is not None and r.y.dtype.str == y.dtype.str
        assert r.y.tobytes() == y.tobytes()
        assert np.array_equal(r.y, want["y"], equal_nan=y.dtype.kind == "f")
    shifted = tf.decode_result(b"junk" + frame, at=4 + ipc.LENGTH.size)  # parsed in place
    assert shifted.id == r.id and shifted.device == r.device


def test_arrays_that_cannot_travel_are_refused_when_encoding() -> None:
    with pytest.raises(DaemonError, match="cannot travel"):
        tf.encode_infer(1, 1, np.zeros(3, np.float64))
    with pytest.raises(DaemonError, match=r"1\.\.4 allowed"):
        tf.encode_infer(1, 1, np.zeros((1, 1, 1, 1, 1), np.uint8))
    with pytest.raises(DaemonError, match=r"1\.\.4 allowed"):
        tf.encode_result(1, np.zeros((), np.int32), "d", 1, 0.0, 0.0)


# ------------------------------------------------------------------ the size limit
@_profile(300)
@given(tensors(), st.integers(-3, 3), st.booleans(), st.integers(0, U64))
def test_decode_infer_takes_tensors_up_to_its_limit_and_refuses_bigger(x, delta, shm, rid):
    """The limit counts the tensor's bytes whether it is inline or in shared memory (and
    an empty tensor's other dimensions: numpy must be able to hold the shape); one byte
    over is BAD_INPUT naming the shape and the limit."""
    x = _little(x)
    limit = max(0, x.nbytes + delta)
    payload = _payload(tf.encode_infer(rid, 2, x, in_shm=shm))
    held = math.prod(d for d in x.shape if d) * x.itemsize
    if x.nbytes <= limit and held <= limit:
        f = tf.decode_infer(payload, limit)
        assert f.shape == x.shape and f.id == rid
        return
    with pytest.raises(FrameRefused) as info:
        tf.decode_infer(payload, limit)
    assert (status_of(info.value), info.value.req_id) == (dpb.BAD_INPUT, rid)
    assert f"tensor shape {x.shape} of {x.dtype.name} is over {limit} bytes" in str(info.value)


@pytest.mark.parametrize("decode", ["infer", "result"])
@pytest.mark.parametrize("dims", [(0, M, M, M), (M, M, M, 0), (0, 2**31, 2**31, 4)])
def test_zero_size_tensor_with_huge_dims_is_refused(decode, dims) -> None:
    """Zero bytes, but numpy could not even hold the shape: refused, never allocated."""
    if decode == "infer":
        payload = tf.INFER_HEAD.pack(tf.MARKER, tf.INFER, 0, dpb.INT64, 4, 11, 1, 0, *dims)
        with pytest.raises(FrameRefused) as info:
            tf.decode_infer(payload, tf.NO_LIMIT)
    else:
        payload = tf.RESULT_HEAD.pack(tf.MARKER, tf.RESULT, 0, dpb.INT64, 4, 11, 1, 0,
                                      0.0, 0.0, *dims)  # fmt: skip
        with pytest.raises(FrameRefused) as info:
            tf.decode_result(payload)
    assert (status_of(info.value), info.value.req_id) == (dpb.BAD_INPUT, 11)
    assert f"tensor shape {dims}" in str(info.value)


@pytest.mark.parametrize("dims", [(0, M, M, M), (M, M, M, 0), (0, 2**31, 2**31, 4)])
def test_shape_nbytes_of_a_zero_size_shape_with_huge_dims_is_bad_input(dims) -> None:
    with pytest.raises(DaemonError) as info:
        ipc.shape_nbytes(dims, np.dtype("<i8"), 256 << 20)
    assert status_of(info.value) == dpb.BAD_INPUT
    assert f"{dims} of int64 is over {256 << 20} bytes" in str(info.value)


# ------------------------------------------------------------------ decode fuzzing
@_profile(2000)
@given(
    st.one_of(st.just(b""), st.sampled_from([tf.INFER, tf.RESULT]).map(lambda k: bytes([k]))),
    st.one_of(st.binary(max_size=160), st.binary(min_size=tf.RESULT_HEAD.size, max_size=160)),
)
def test_decoders_accept_or_refuse_random_bytes_after_the_marker(kind, tail) -> None:
    payload = bytes([tf.MARKER]) + kind + tail  # with a valid kind byte, half the time
    assert tf.is_tensor_frame(payload)
    f = _decodes_or_refuses(_decode_infer, payload)
    if f is not None:
        assert f.in_shm or (f.x is not None and f.x.nbytes == len(payload) - tf.INFER_HEAD.size)
        assert math.prod(f.shape) * f.dtype.itemsize <= LIMIT
    r = _decodes_or_refuses(tf.decode_result, payload)
    if r is not None:
        assert r.in_shm or (r.y is not None and r.y.shape == r.shape)


def _valid_payloads() -> list[bytes]:
    """Valid infer and result payloads: every dtype, 1..4 dims, empty tensors, in_shm."""
    rng = np.random.default_rng(7)
    out = []
    for i, dtype in enumerate(ipc.DTYPES.values()):
        for shape in [(3,), (2, 0), (1, 2, 3), (2, 1, 2, 2), (0, 4, 1, 1)]:
            x = rng.integers(0, 100, shape).astype(dtype)
            out.append(_payload(tf.encode_infer(i + 1, 9, x, predict=bool(i % 2))))
            out.append(_payload(tf.encode_result(i + 1, x, f"sim{i}", 2, 1e-3, 2e-3)))
        out.append(_payload(tf.encode_infer(i, 9, x, in_shm=True, output_to_shm=True)))
        out.append(_payload(tf.encode_result(i, x, "", 1, 0.0, 0.0, in_shm=True)))
    return out


VALID = _valid_payloads()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid infer or result payload with bytes overwritten, cut off or appended."""
    payload = bytearray(draw(st.sampled_from(VALID)))
    for i, byte in draw(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=4)):
        payload[i % len(payload)] = byte
    end = len(payload)
    cut = draw(st.one_of(st.just(end), st.integers(max(0, end - 9), end), st.integers(0, end)))
    return bytes(payload[:cut]) + draw(st.binary(max_size=12))


@_profile(2000)
@given(mutated())
def test_decoders_accept_or_refuse_mutated_frames(payload) -> None:
    _decodes_or_refuses(_decode_infer, payload)
    _decodes_or_refuses(tf.decode_result, payload)


# Dims that hit the edges: empty, small, and sizes whose byte counts overflow u32/u64.
DIMS = st.one_of(st.integers(0, 6), st.sampled_from([2**16, 2**31, M]), st.integers(0, M))


@_profile(1000)
@given(
    kind=st.sampled_from([tf.INFER, tf.RESULT, 0, 3, 255]),
    flags=st.integers(0, 255),
    code=st.sampled_from([*ipc.DTYPES, 0, 5, 255]),
    ndim=st.integers(0, 6),
    dims=st.tuples(DIMS, DIMS, DIMS, DIMS),
    req_id=st.integers(0, U64),
    extra=st.integers(-3, 3),
)
def test_decoders_accept_or_refuse_any_header(kind, flags, code, ndim, dims, req_id, extra):
    """Headers built field by field (so every branch is reached), with a body as long as
    the header asks for, give or take a few bytes."""
    shape = dims[: min(ndim, 4)]
    need = math.prod(shape) * (ipc.DTYPES[code].itemsize if code in ipc.DTYPES else 1)
    body = b"\x01" * max(0, min(need, 512) + extra)
    head = tf.INFER_HEAD.pack(tf.MARKER, kind, flags, code, ndim, req_id, 3, 0, *dims)
    f = _decodes_or_refuses(_decode_infer, head + body)
    if f is not None:
        assert f.id == req_id and kind == tf.INFER and code in ipc.DTYPES and 1 <= ndim <= 4
        assert f.shape == shape and need <= LIMIT
        assert f.in_shm == bool(flags & tf.IN_SHM)
    head = tf.RESULT_HEAD.pack(tf.MARKER, kind, flags, code, ndim, req_id, 1, 2, 0.0, 0.0, *dims)
    r = _decodes_or_refuses(tf.decode_result, head + body + b"d0")
    if r is not None:
        assert r.id == req_id and kind == tf.RESULT and r.device == "d0"


@_profile(300)
@given(st.sampled_from(VALID), st.data())
def test_truncated_header_is_bad_message_with_id_0(payload, data) -> None:
    for decode, head in ((_decode_infer, tf.INFER_HEAD), (tf.decode_result, tf.RESULT_HEAD)):
        short = payload[: data.draw(st.integers(0, head.size - 1))]
        with pytest.raises(FrameRefused) as info:
            decode(short)
        assert status_of(info.value) == dpb.BAD_MESSAGE
        assert info.value.req_id == 0
        if decode is _decode_infer:
            assert f"{len(short)} bytes is shorter than its {head.size}-byte header" in str(
                info.value
            )


@_profile(200)
@given(tensors(), st.integers(0, U64), st.integers(-64, 64).filter(bool))
def test_wrong_byte_count_is_bad_input_naming_shape_and_counts(x, req_id, delta) -> None:
    payload = _payload(tf.encode_infer(req_id, 1, x))
    x = _little(x)
    assume(delta > 0 or x.nbytes >= -delta)
    payload = payload + b"\x07" * delta if delta > 0 else payload[:delta]
    with pytest.raises(FrameRefused) as info:
        _decode_infer(payload)
    exc = info.value
    assert status_of(exc) == dpb.BAD_INPUT
    assert exc.req_id == req_id
    assert f"tensor {x.shape} of {x.dtype.name} needs {x.nbytes} bytes, got " in str(exc)
    assert str(exc).endswith(f"got {x.nbytes + delta}")


@_profile(200)
@given(result_frames(), st.integers(-8, 8).filter(bool))
def test_result_of_the_wrong_length_is_bad_message_with_its_id(case, delta) -> None:
    frame, want = case
    payload = _payload(frame)
    assume(len(payload) + delta >= tf.RESULT_HEAD.size)
    payload = payload + b"\x07" * delta if delta > 0 else payload[:delta]
    with pytest.raises(FrameRefused) as info:
        tf.decode_result(payload)
    assert status_of(info.value) == dpb.BAD_MESSAGE
    assert info.value.req_id == want["req_id"]


def test_impossible_tensors_and_kinds_are_refused_with_the_request_id() -> None:
    def infer(kind=tf.INFER, code=dpb.UINT8, ndim=1, dims=(3, 0, 0, 0)) -> bytes:
        return tf.INFER_HEAD.pack(tf.MARKER, kind, 0, code, ndim, 42, 1, 0, *dims) + b"abc"

    cases = [
        (infer(code=0), dpb.BAD_INPUT, "unknown tensor dtype code 0"),
        (infer(code=9), dpb.BAD_INPUT, "unknown tensor dtype code 9"),
        (infer(ndim=0), dpb.BAD_INPUT, "tensor has 0 dimensions, 1..4 allowed"),
        (infer(ndim=5), dpb.BAD_INPUT, "tensor has 5 dimensions, 1..4 allowed"),
        (infer(kind=tf.RESULT), dpb.UNKNOWN_TYPE, "kind 2 is not a request"),
        (infer(kind=7), dpb.UNKNOWN_TYPE, "kind 7 is not a request"),
    ]
    for payload, status, words in cases:
        with pytest.raises(FrameRefused, match=re.escape(words)) as info:
            _decode_infer(payload)
        assert (status_of(info.value), info.value.req_id) == (status, 42)
    request = _payload(tf.encode_infer(42, 1, np.zeros(16, np.uint8)))
    with pytest.raises(FrameRefused, match="kind 1 is not a result") as info:
        tf.decode_result(request)
    assert (status_of(info.value), info.value.req_id) == (dpb.BAD_MESSAGE, 42)


@_profile(300)
@given(st.binary(max_size=60))
def test_uses_shm_reads_only_the_kind_and_flags_bytes(tail) -> None:
    """The server consumes descriptors by this answer however malformed the frame is."""
    payload = b"\0" + tail
    want = len(tail) >= 2 and tail[0] == tf.INFER and bool(tail[1] & (tf.IN_SHM | tf.OUTPUT_TO_SHM))
    assert tf.uses_shm(payload) == want


# ------------------------------------------------ protobuf never looks like a frame
@st.composite
def requests(draw: st.DrawFn) -> dpb.Request:
    """Requests of every kind with at least one field set (proto3 omits defaults)."""
    req = dpb.Request(id=draw(st.integers(0, U64)))
    kind = draw(st.sampled_from(["hello", "devices", "load", "unload", "stats", "put", "get",
                                 "delete", "id"]))  # fmt: skip
    if kind == "hello":
        req.hello.client_name = draw(st.text(max_size=10))
        req.hello.priority = draw(st.integers(-(2**31), 2**31 - 1))
        req.hello.protocol = draw(st.integers(0, U32))
        req.hello.SetInParent()
    elif kind == "devices":
        req.list_devices.SetInParent()
    elif kind == "load":
        req.load.program = draw(st.binary(max_size=32))
        req.load.device = draw(st.text(max_size=8))
        req.load.SetInParent()
    elif kind == "unload":
        req.unload.session = draw(st.integers(0, U64))
        req.unload.SetInParent()
    elif kind == "stats":
        req.stats.SetInParent()
    elif kind == "put":
        req.put_state.key = draw(st.text(max_size=8))
        req.put_state.data = draw(st.binary(max_size=8))
        req.put_state.SetInParent()
    elif kind == "get":
        req.get_state.key = draw(st.text(max_size=8))
        req.get_state.owner_uid = draw(st.integers(0, U32))
        req.get_state.SetInParent()
    elif kind == "delete":
        req.delete_state.key = draw(st.text(max_size=8))
        req.delete_state.SetInParent()
    assume(req.ListFields())
    return req


@st.composite
def responses(draw: st.DrawFn) -> dpb.Response:
    """Control responses a client must tell apart from result frames."""
    resp = dpb.Response(id=draw(st.integers(0, U64)))
    kind = draw(st.sampled_from(["error", "hello", "loaded", "ack", "state", "id"]))
    if kind == "error":
        resp.error.status = draw(st.sampled_from(list(dpb.Status.values())))
        resp.error.message = draw(st.text(max_size=10))
        resp.error.SetInParent()
    elif kind == "hello":
        resp.hello.protocol = draw(st.integers(0, U32))
        resp.hello.SetInParent()
    elif kind == "loaded":
        resp.loaded.session = draw(st.integers(0, U64))
        resp.loaded.SetInParent()
    elif kind == "ack":
        resp.ack.SetInParent()
    elif kind == "state":
        resp.state.data = draw(st.binary(max_size=8))
        resp.state.SetInParent()
    assume(resp.ListFields())
    return resp


@_profile(500)
@given(st.one_of(requests(), responses()))
def test_protobuf_messages_never_start_with_the_tensor_frame_marker(message) -> None:
    payload = message.SerializeToString()
    assert payload and payload[0] != tf.MARKER
    assert not tf.is_tensor_frame(payload)
    assert not tf.is_tensor_frame(_payload(ipc.encode_frame(message)))


def test_empty_payload_is_not_a_tensor_frame() -> None:
    assert not tf.is_tensor_frame(b"")
    assert tf.is_tensor_frame(b"\x00")


def test_protobuf_has_no_inference_messages_left() -> None:
    """Protocol 3 removed Infer, InferResult and Tensor; their field numbers stay
    reserved so an old peer's message can never be read as something else."""
    names = dpb.DESCRIPTOR.message_types_by_name
    assert not {"Infer", "InferResult", "Tensor"} & set(names)
    assert 6 not in dpb.Request.DESCRIPTOR.fields_by_number
    assert 7 not in dpb.Response.DESCRIPTOR.fields_by_number
    # Protocol 4 moved learning samples and potentials from the protobuf Learn and Learned
    # into tensor frames.
    assert not {"Learn", "Learned"} & set(names)
    assert 11 not in dpb.Request.DESCRIPTOR.fields_by_number
    assert 10 not in dpb.Response.DESCRIPTOR.fields_by_number
    assert ipc.PROTOCOL == 4 and set(ipc.PROTOCOLS) == {3, 4}


# --------------------------------------------------------------------- live daemon
@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with Akidad(tmp_path_factory.mktemp("akidad")) as d:
        yield d


@pytest.fixture
def loaded(daemon):
    """(raw connection, model, session) with the tiny model loaded; on exit, checks the
    daemon holds no memfd of it any more."""
    raw = RawConnection(daemon.socket)
    model = tiny_model()
    session = raw.load(model.to_bytes()).session
    yield raw, model, session
    raw.close()
    assert wait_for(lambda: open_memfds(daemon.proc.pid) == 0), "akidad kept a memfd"


def _result(raw: RawConnection, req_id: int) -> tf.ResultFrame:
    payload = raw.recv_payload()
    assert tf.is_tensor_frame(payload), ipc.decode_response(payload)
    r = tf.decode_result(payload)
    assert r.id == req_id
    return r


def _error(raw: RawConnection) -> dpb.Response:
    """The next answer, which must be an error (always protobuf), with its id."""
    payload = raw.recv_payload()
    assert not tf.is_tensor_frame(payload), "an error must travel as a protobuf Response"
    resp = ipc.decode_response(payload)
    assert resp.WhichOneof("body") == "error", resp
    return resp


def _old_protobuf_infer(req_id: int, session: int) -> bytes:
    """A protocol-2 client's Request{infer}: field 6, an Infer with a session and a tensor."""
    tensor = b"\x08\x01\x12\x04\x01\x06\x06\x01\x1a\x24" + bytes(36)  # UINT8 (1,6,6,1)
    body = b"\x08" + _varint(session) + b"\x12" + _varint(len(tensor)) + tensor
    return b"\x08" + _varint(req_id) + b"\x32" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_live_tensor_frame_gets_a_tensor_frame_and_an_old_protobuf_infer_is_named(
    loaded,
) -> None:
    raw, model, session = loaded
    x = random_input(model, 1, 5)
    expected = model.forward(x)
    raw.send_frame(tf.encode_infer(1001, session, x))
    r = _result(raw, 1001)  # a tensor-frame request gets a tensor-frame answer
    assert r.device and r.batch_frames >= 1 and not r.in_shm and r.run_s >= 0
    assert r.y is not None and r.y.dtype == expected.dtype
    assert np.array_equal(r.y, expected)

    raw.send_frame(_framed(_old_protobuf_infer(1002, session)))
    resp = _error(raw)
    assert (resp.id, resp.error.status) == (1002, dpb.PROTOCOL_MISMATCH), resp
    assert "Infer is a tensor frame since protocol 3" in resp.error.message

    raw.send_frame(tf.encode_infer(1003, session, x, predict=True))  # still served
    r = _result(raw, 1003)
    assert np.array_equal(r.y, model.predict(x))


def test_live_pipelined_tensor_frames_in_one_write_are_all_answered(loaded) -> None:
    raw, model, session = loaded
    xs = [random_input(model, 1 + i % 2, 20 + i) for i in range(8)]
    raw.send_bytes(b"".join(tf.encode_infer(2000 + i, session, x) for i, x in enumerate(xs)))
    answers = {}
    for _ in xs:
        r = tf.decode_result(raw.recv_payload())
        assert r.id not in answers
        answers[r.id] = r.y
    assert sorted(answers) == [2000 + i for i in range(len(xs))]
    for i, x in enumerate(xs):
        assert np.array_equal(answers[2000 + i], model.forward(x))


def _bad_frame(case: str, session: int) -> tuple[bytes, int, int, str]:
    """(framed bytes, request id, status, words of the message) of a malformed frame."""
    zeros = np.zeros((1, 6, 6, 1), np.uint8)
    good = tf.encode_infer(31, session, zeros)
    if case == "byte-count":
        payload = _payload(good)[:-5]
        return _framed(payload), 31, dpb.BAD_INPUT, "tensor (1, 6, 6, 1) of uint8 needs 36 bytes, got 31"  # fmt: skip
    if case == "unknown-dtype":
        payload = bytearray(_payload(good))
        payload[3] = 9  # the dtype code
        return _framed(bytes(payload)), 31, dpb.BAD_INPUT, "unknown tensor dtype code 9"
    if case == "wrong-kind":
        payload = bytearray(_payload(good))
        payload[1] = tf.RESULT
        return _framed(bytes(payload)), 31, dpb.UNKNOWN_TYPE, "kind 2 is not a request"
    if case == "in-shm-without-fd":
        frame = tf.encode_infer(31, session, zeros, in_shm=True)
        return frame, 31, dpb.BAD_INPUT, "(IN_SHM or OUTPUT_TO_SHM), 0 came with it"
    if case == "output-to-shm-without-fd":
        frame = tf.encode_infer(31, session, zeros, output_to_shm=True)
        return frame, 31, dpb.BAD_INPUT, "(IN_SHM or OUTPUT_TO_SHM), 0 came with it"
    if case == "empty-batch":
        frame = tf.encode_infer(31, session, np.zeros((0, 6, 6, 1), np.uint8))
        return frame, 31, dpb.BAD_INPUT, "batch is empty"
    if case == "over-max-tensor-bytes":
        head = tf.INFER_HEAD.pack(tf.MARKER, tf.INFER, 0, dpb.UINT8, 4, 31, session, 0,
                                  1, 1 << 16, 1 << 16, 1)  # fmt: skip
        return _framed(head), 31, dpb.BAD_INPUT, f"is over {DAEMON_LIMIT} bytes"
    if case == "wrong-shape":
        frame = tf.encode_infer(31, session, np.zeros((1, 6, 5, 1), np.uint8))
        return frame, 31, dpb.BAD_INPUT, "input shape (1, 6, 5, 1) does not match (N, 6, 6, 1)"
    if case == "float-input":
        frame = tf.encode_infer(31, session, np.zeros((1, 6, 6, 1), np.float32))
        return frame, 31, dpb.BAD_INPUT, "inputs must be uint8, got float32"
    assert case == "short-header"
    return _framed(_payload(good)[:20]), 0, dpb.BAD_MESSAGE, "20 bytes is shorter than its 48-byte header"  # fmt: skip


BAD_CASES = ["byte-count", "unknown-dtype", "wrong-kind", "in-shm-without-fd",
             "output-to-shm-without-fd", "empty-batch", "over-max-tensor-bytes", "wrong-shape",
             "float-input", "short-header"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_live_malformed_tensor_frame_gets_protobuf_error_then_connection_serves(
    loaded, case
) -> None:
    raw, model, session = loaded
    frame, req_id, status, words = _bad_frame(case, session)
    raw.send_frame(frame)
    resp = _error(raw)
    assert (resp.id, resp.error.status) == (req_id, status), resp.error.message
    assert words in resp.error.message
    x = random_input(model, 1, 9)  # the same connection still serves
    raw.send_frame(tf.encode_infer(32, session, x))
    assert np.array_equal(_result(raw, 32).y, model.forward(x))


def test_live_zero_size_tensor_with_huge_dims_gets_an_error(loaded) -> None:
    raw, model, session = loaded
    head = tf.INFER_HEAD.pack(tf.MARKER, tf.INFER, 0, dpb.UINT8, 4, 41, session, 0, 0, M, M, M)
    raw.send_frame(_framed(head))
    resp = _error(raw)
    assert (resp.id, resp.error.status) == (41, dpb.BAD_INPUT), resp
    assert f"tensor shape (0, {M}, {M}, {M}) of uint8 is over" in resp.error.message
    x = random_input(model, 2, 41)
    raw.send_frame(tf.encode_infer(42, session, x))
    assert np.array_equal(_result(raw, 42).y, model.forward(x))


# ------------------------------------------------------------ live sealed memfds
def _send_in_memfd(raw, req_id, session, x, *, room=4096, output_to_shm=True, **memfd) -> int:
    """Send `x` in a memfd of `room` bytes with its own header frame; the memfd (the
    caller closes it)."""
    fd = memfd_holding(x.tobytes(), max(room, x.nbytes), **memfd)
    head, _ = tf.infer_parts(req_id, session, x, in_shm=True, output_to_shm=output_to_shm)
    raw.send_frame(head, [fd])
    return fd


def test_live_memfd_request_is_computed_from_and_answered_into_its_memfd(loaded) -> None:
    raw, model, session = loaded
    x = random_input(model, 5, 51)
    expected = model.forward(x)
    fd = _send_in_memfd(raw, 51, session, x)
    try:
        r = _result(raw, 51)
        assert r.in_shm and r.y is None  # nothing but the header came back on the socket
        assert (r.dtype, r.shape) == (expected.dtype, expected.shape)
        assert memfd_bytes(fd, expected.nbytes) == expected.tobytes()
    finally:
        os.close(fd)


def test_live_inline_input_with_output_to_shm_gets_its_output_in_the_memfd(loaded) -> None:
    raw, model, session = loaded
    x = random_input(model, 3, 52)
    expected = model.forward(x)
    fd = memfd_holding(b"", 1024)
    try:
        raw.send_frame(tf.encode_infer(52, session, x, output_to_shm=True), [fd])
        r = _result(raw, 52)
        assert r.in_shm and memfd_bytes(fd, expected.nbytes) == expected.tobytes()
    finally:
        os.close(fd)
    small = memfd_holding(b"", 4)  # too small for the output: it comes back inline
    try:
        raw.send_frame(tf.encode_infer(53, session, x, output_to_shm=True), [small])
        r = _result(raw, 53)
        assert not r.in_shm and np.array_equal(r.y, expected)
        assert memfd_bytes(small, 4) == bytes(4)
    finally:
        os.close(small)


def _refused_memfd(
    case: str, raw: RawConnection, session: int, x: np.ndarray
) -> tuple[str, list[int]]:
    """Send request 61 with a descriptor problem; (words of the refusal, fds to close)."""
    head, _ = tf.infer_parts(61, session, x, in_shm=True, output_to_shm=True)
    if case == "unsealed":
        fd = memfd_holding(x.tobytes(), seal=False)
        raw.send_frame(head, [fd])
        return "sealed with F_SEAL_SHRINK and F_SEAL_GROW", [fd]
    if case == "too-small":
        fd = memfd_holding(x.tobytes()[:-1])
        raw.send_frame(head, [fd])
        return f"shared memory holds {x.nbytes - 1} bytes, the tensor needs {x.nbytes}", [fd]
    if case == "over-max-tensor-bytes":
        fd = memfd_holding(x.tobytes(), DAEMON_LIMIT + 1)  # sparse: costs no memory
        raw.send_frame(head, [fd])
        return f"shared memory of {DAEMON_LIMIT + 1} bytes is over", [fd]
    if case == "two-fds":
        fds = [memfd_holding(x.tobytes()), memfd_holding(x.tobytes())]
        raw.send_frame(head, fds)
        return "takes 1 descriptors (IN_SHM or OUTPUT_TO_SHM), 2 came with it", fds
    if case == "fd-without-shm":
        fd = memfd_holding(x.tobytes())
        raw.send_frame(tf.encode_infer(61, session, x), [fd])
        return "takes 0 descriptors (IN_SHM or OUTPUT_TO_SHM), 1 came with it", [fd]
    if case in ("write-sealed", "future-write-sealed"):
        fd = memfd_holding(x.tobytes())
        seal = fcntl.F_SEAL_WRITE if case == "write-sealed" else F_SEAL_FUTURE_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seal)
        raw.send_frame(head, [fd])
        return "cannot map the shared memory for writing", [fd]
    if case == "read-only":
        fd = memfd_holding(x.tobytes())
        readonly = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        raw.send_frame(head, [readonly])
        return "cannot map the shared memory for writing", [fd, readonly]
    assert case == "pipe"
    r, w = os.pipe()
    raw.send_frame(head, [r])
    return "must be a memfd sealed", [r, w]


MEMFD_CASES = ["unsealed", "too-small", "over-max-tensor-bytes", "two-fds", "fd-without-shm",
               "write-sealed", "future-write-sealed", "read-only", "pipe"]  # fmt: skip


@pytest.mark.parametrize("case", MEMFD_CASES)
def test_live_bad_descriptor_is_bad_input_and_the_next_memfd_request_uses_its_own(
    loaded, case
) -> None:
    raw, model, session = loaded
    x, good = random_input(model, 2, 61), random_input(model, 2, 62)
    words, fds = _refused_memfd(case, raw, session, x)
    try:
        resp = _error(raw)
        assert (resp.id, resp.error.status) == (61, dpb.BAD_INPUT), resp.error.message
        assert words in resp.error.message
        fd = _send_in_memfd(raw, 62, session, good)
        try:
            assert _result(raw, 62).in_shm
            assert memfd_bytes(fd, 24) == model.forward(good).tobytes()
        finally:
            os.close(fd)
        for sent in fds:  # the refused request's memory was never written
            if case != "pipe":
                assert memfd_bytes(sent, x.nbytes)[:20] == x.tobytes()[:20]
    finally:
        for sent in fds:
            os.close(sent)


def test_live_memfd_riding_on_the_first_bytes_of_its_frame_is_paired_with_it(loaded) -> None:
    """A frame whose descriptor comes with its first bytes, the rest in a later write."""
    raw, model, session = loaded
    x = random_input(model, 4, 71)
    fd = memfd_holding(x.tobytes(), 4096)
    try:
        head, _ = tf.infer_parts(71, session, x, in_shm=True, output_to_shm=True)
        raw.send_frame(head[:6], [fd])
        time.sleep(0.05)  # the daemon reads the first part (and the fd) on its own
        raw.send_bytes(head[6:])
        assert _result(raw, 71).in_shm
        assert memfd_bytes(fd, 48) == model.forward(x).tobytes()
    finally:
        os.close(fd)


def test_live_two_memfd_frames_in_one_sendmsg_are_both_refused(loaded) -> None:
    """Descriptors pair with the frame whose sendmsg carried them: two frames sharing one
    sendmsg leave the first without its memfd and give the second two; neither is run."""
    raw, model, session = loaded
    x = random_input(model, 1, 72)
    fds = [memfd_holding(x.tobytes(), 4096) for _ in range(2)]
    try:
        heads = [tf.infer_parts(rid, session, x, in_shm=True)[0] for rid in (72, 73)]
        raw.send_frame(b"".join(heads), fds)
        got = {}
        for _ in heads:
            resp = _error(raw)
            got[resp.id] = resp.error
        assert sorted(got) == [72, 73]
        assert all(e.status == dpb.BAD_INPUT for e in got.values())
        assert "0 came with it" in got[72].message and "2 came with it" in got[73].message
        raw.send_frame(tf.encode_infer(74, session, x))
        assert np.array_equal(_result(raw, 74).y, model.forward(x))
        assert all(memfd_bytes(fd, x.nbytes) == x.tobytes() for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)


def test_live_in_shm_without_output_to_shm_leaves_the_input_memfd_untouched(loaded) -> None:
    raw, model, session = loaded
    x = random_input(model, 3, 71)
    fd = memfd_holding(x.tobytes(), 4096)
    try:
        head, _ = tf.infer_parts(72, session, x, in_shm=True)  # the answer comes inline
        raw.send_frame(head, [fd])
        r = raw.recv_any()
        assert isinstance(r, tf.ResultFrame) and r.id == 72 and not r.in_shm
        assert np.array_equal(r.y, model.forward(x))
        assert memfd_bytes(fd, x.nbytes) == x.tobytes()  # the daemon never wrote there
    finally:
        os.close(fd)
