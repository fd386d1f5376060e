"""Tensor frames (akida_rt/tensor_frames.py), the protocol-2 form of Infer and its result:
hypothesis round trips and decode fuzzing in-process, then both request forms and the
malformed-frame errors against a live akidad on its real socket.
"""

from __future__ import annotations

import math
import re
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from akida_rt import ipc
from akida_rt import tensor_frames as tf
from akida_rt.proto import daemon_pb2 as dpb
from tests.daemon_harness import Akidad, RawConnection, random_input, tiny_model


def _profile(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


# Decode fuzzing here adds 5,000 cases to test_daemon_protocol.py's 10,500 (framing and
# protobuf decoding); hypothesis costs 1 to 3 ms per case on the 2-core test machines.
ROUND_TRIP = _profile(200)
REFUSED = (dpb.BAD_INPUT, dpb.BAD_MESSAGE, dpb.UNKNOWN_TYPE)
U64, U32 = 2**64 - 1, 2**32 - 1
M = U32


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


def _decodes_or_refuses(decode, payload: bytes, head: struct.Struct):
    """Run a decoder: its frame, or None when refused with a protocol status."""
    try:
        return decode(payload)
    except tf.FrameRefused as exc:
        assert exc.status in REFUSED, exc.status
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
    f = tf.decode_infer(payload)
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


@ROUND_TRIP
@given(result_frames())
def test_result_round_trip_is_exact_and_little_endian(case) -> None:
    frame, want = case
    payload = _payload(frame)
    assert tf.is_tensor_frame(payload)
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


def test_arrays_that_cannot_travel_are_refused_when_encoding() -> None:
    from akida_rt.errors import DaemonError

    with pytest.raises(DaemonError, match="cannot travel"):
        tf.encode_infer(1, 1, np.zeros(3, np.float64))
    with pytest.raises(DaemonError, match=r"1\.\.4 allowed"):
        tf.encode_infer(1, 1, np.zeros((1, 1, 1, 1, 1), np.uint8))
    with pytest.raises(DaemonError, match=r"1\.\.4 allowed"):
        tf.encode_result(1, np.zeros((), np.int32), "d", 1, 0.0, 0.0)


# ------------------------------------------------------------------ decode fuzzing
@_profile(2000)
@given(
    st.one_of(st.just(b""), st.sampled_from([tf.INFER, tf.RESULT]).map(lambda k: bytes([k]))),
    st.one_of(st.binary(max_size=160), st.binary(min_size=tf.RESULT_HEAD.size, max_size=160)),
)
def test_decoders_accept_or_refuse_random_bytes_after_the_marker(kind, tail) -> None:
    payload = bytes([tf.MARKER]) + kind + tail  # with a valid kind byte, half the time
    assert tf.is_tensor_frame(payload)
    f = _decodes_or_refuses(tf.decode_infer, payload, tf.INFER_HEAD)
    if f is not None:
        assert f.in_shm or (f.x is not None and f.x.nbytes == len(payload) - tf.INFER_HEAD.size)
    r = _decodes_or_refuses(tf.decode_result, payload, tf.RESULT_HEAD)
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
    _decodes_or_refuses(tf.decode_infer, payload, tf.INFER_HEAD)
    _decodes_or_refuses(tf.decode_result, payload, tf.RESULT_HEAD)


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
    f = _decodes_or_refuses(tf.decode_infer, head + body, tf.INFER_HEAD)
    if f is not None:
        assert f.id == req_id and kind == tf.INFER
    head = tf.RESULT_HEAD.pack(tf.MARKER, kind, flags, code, ndim, req_id, 1, 2, 0.0, 0.0, *dims)
    r = _decodes_or_refuses(tf.decode_result, head + body + b"d0", tf.RESULT_HEAD)
    if r is not None:
        assert r.id == req_id and kind == tf.RESULT


@_profile(300)
@given(st.sampled_from(VALID), st.data())
def test_truncated_header_is_bad_message_with_id_0(payload, data) -> None:
    for decode, head in ((tf.decode_infer, tf.INFER_HEAD), (tf.decode_result, tf.RESULT_HEAD)):
        short = payload[: data.draw(st.integers(0, head.size - 1))]
        with pytest.raises(tf.FrameRefused) as info:
            decode(short)
        assert info.value.status == dpb.BAD_MESSAGE
        assert info.value.req_id == 0
        if decode is tf.decode_infer:
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
    with pytest.raises(tf.FrameRefused) as info:
        tf.decode_infer(payload)
    exc = info.value
    assert exc.status == dpb.BAD_INPUT
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
    with pytest.raises(tf.FrameRefused) as info:
        tf.decode_result(payload)
    assert info.value.status == dpb.BAD_MESSAGE
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
        with pytest.raises(tf.FrameRefused, match=re.escape(words)) as info:
            tf.decode_infer(payload)
        assert (info.value.status, info.value.req_id) == (status, 42)
    request = _payload(tf.encode_infer(42, 1, np.zeros(16, np.uint8)))
    with pytest.raises(tf.FrameRefused, match="kind 1 is not a result") as info:
        tf.decode_result(request)
    assert (info.value.status, info.value.req_id) == (dpb.BAD_MESSAGE, 42)


@pytest.mark.parametrize("decode", ["infer", "result"])
@pytest.mark.parametrize("dims", [(0, M, M, M), (M, M, M, 0), (0, 2**31, 2**31, 4)])
def test_zero_size_tensor_with_huge_dims_is_refused(decode, dims) -> None:
    if decode == "infer":
        payload = tf.INFER_HEAD.pack(tf.MARKER, tf.INFER, 0, dpb.INT64, 4, 11, 1, 0, *dims)
        call = tf.decode_infer
    else:
        payload = tf.RESULT_HEAD.pack(tf.MARKER, tf.RESULT, 0, dpb.INT64, 4, 11, 1, 0,
                                      0.0, 0.0, *dims)  # fmt: skip
        call = tf.decode_result
    try:
        call(payload)
    except tf.FrameRefused as exc:
        assert (exc.status, exc.req_id) == (dpb.BAD_INPUT, 11)


def test_protobuf_zero_size_tensor_with_huge_dims_is_bad_input() -> None:
    t = dpb.Tensor(dtype=dpb.INT64, shape=[0, M, M, M], data=b"")
    with pytest.raises(ipc.MessageError) as info:
        ipc.array_from_tensor(t)
    assert info.value.status == dpb.BAD_INPUT


# ------------------------------------------------ protobuf never looks like a frame
@st.composite
def requests(draw: st.DrawFn) -> dpb.Request:
    """Requests of several kinds with at least one field set (proto3 omits defaults)."""
    req = dpb.Request(id=draw(st.integers(0, U64)))
    kind = draw(st.sampled_from(["hello", "infer", "load", "unload", "stats", "state", "id"]))
    if kind == "hello":
        req.hello.client_name = draw(st.text(max_size=10))
        req.hello.priority = draw(st.integers(-(2**31), 2**31 - 1))
        req.hello.protocol = draw(st.integers(0, U32))
        req.hello.SetInParent()
    elif kind == "infer":
        req.infer.session = draw(st.integers(0, U64))
        req.infer.predict = draw(st.booleans())
        req.infer.input.dtype = draw(st.sampled_from(list(dpb.DType.values())))
        req.infer.input.shape[:] = draw(st.lists(st.integers(0, U32), max_size=4))
        req.infer.input.data = draw(st.binary(max_size=16))
        req.infer.SetInParent()
    elif kind == "load":
        req.load.program = draw(st.binary(max_size=32))
        req.load.device = draw(st.text(max_size=8))
        req.load.SetInParent()
    elif kind == "unload":
        req.unload.session = draw(st.integers(0, U64))
        req.unload.SetInParent()
    elif kind == "stats":
        req.stats.SetInParent()
    elif kind == "state":
        req.put_state.key = draw(st.text(max_size=8))
        req.put_state.data = draw(st.binary(max_size=8))
        req.put_state.SetInParent()
    assume(req.ListFields())
    return req


@_profile(500)
@given(requests())
def test_protobuf_requests_never_start_with_the_tensor_frame_marker(req) -> None:
    payload = req.SerializeToString()
    assert payload and payload[0] != tf.MARKER
    assert not tf.is_tensor_frame(payload)
    assert not tf.is_tensor_frame(_payload(ipc.encode_frame(req)))


def test_empty_payload_is_not_a_tensor_frame() -> None:
    assert not tf.is_tensor_frame(b"")
    assert tf.is_tensor_frame(b"\x00")


# --------------------------------------------------------------------- live daemon
@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with Akidad(tmp_path_factory.mktemp("akidad")) as d:
        yield d


@pytest.fixture
def loaded(daemon):
    """(raw connection, model, session) with the tiny model loaded."""
    raw = RawConnection(daemon.socket)
    model = tiny_model()
    req = dpb.Request(id=1)
    req.load.program = model.to_bytes()
    raw.send(req)
    resp = raw.recv()
    assert resp.WhichOneof("body") == "loaded", resp
    yield raw, model, resp.loaded.session
    raw.close()


def _protobuf_infer(req_id: int, session: int, x: np.ndarray) -> dpb.Request:
    req = dpb.Request(id=req_id)
    req.infer.session = session
    ipc.tensor_from_array(x, req.infer.input)
    return req


def test_live_tensor_frame_and_protobuf_infer_on_one_connection(loaded) -> None:
    raw, model, session = loaded
    x = random_input(model, 1, 5)
    expected = model.forward(x)
    raw.send_bytes(tf.encode_infer(1001, session, x))
    payload = raw.recv_payload()
    assert tf.is_tensor_frame(payload)  # a tensor-frame request gets a tensor-frame answer
    r = tf.decode_result(payload)
    assert r.id == 1001 and r.device and r.batch_frames >= 1 and not r.in_shm
    assert r.y is not None and r.y.dtype == expected.dtype
    assert np.array_equal(r.y, expected)

    raw.send(_protobuf_infer(1002, session, x))  # protobuf still answered in protobuf
    payload = raw.recv_payload()
    assert not tf.is_tensor_frame(payload)
    resp = ipc.decode_response(payload)
    assert resp.id == 1002 and resp.WhichOneof("body") == "result", resp
    y = ipc.array_from_tensor(resp.result.output)
    assert y.dtype == expected.dtype and np.array_equal(y, expected)


def test_live_pipelined_tensor_frames_in_one_write_are_all_answered(loaded) -> None:
    raw, model, session = loaded
    xs = [random_input(model, 1 + i % 2, 20 + i) for i in range(8)]
    raw.send_bytes(b"".join(tf.encode_infer(2000 + i, session, x) for i, x in enumerate(xs)))
    answers = {}
    for _ in xs:
        r = tf.decode_result(raw.recv_payload())
        answers[r.id] = r.y
    assert sorted(answers) == [2000 + i for i in range(len(xs))]
    for i, x in enumerate(xs):
        assert np.array_equal(answers[2000 + i], model.forward(x))


def _bad_frame(case: str, session: int) -> tuple[bytes, int, int, str]:
    """(framed bytes, request id, status, words of the message) of a malformed frame."""
    good = tf.encode_infer(31, session, np.zeros((1, 6, 6, 1), np.uint8))
    if case == "byte-count":
        payload = _payload(good)[:-5]
        return (
            _framed(payload),
            31,
            dpb.BAD_INPUT,
            "tensor (1, 6, 6, 1) of uint8 needs 36 bytes, got 31",
        )
    if case == "unknown-dtype":
        payload = bytearray(_payload(good))
        payload[3] = 9  # the dtype code
        return _framed(bytes(payload)), 31, dpb.BAD_INPUT, "unknown tensor dtype code 9"
    if case == "wrong-kind":
        payload = bytearray(_payload(good))
        payload[1] = tf.RESULT
        return _framed(bytes(payload)), 31, dpb.UNKNOWN_TYPE, "kind 2 is not a request"
    if case == "in-shm-without-fd":
        frame = tf.encode_infer(31, session, np.zeros((1, 6, 6, 1), np.uint8), in_shm=True)
        return frame, 31, dpb.BAD_INPUT, "frame names shared memory but sent no fd"
    assert case == "short-header"
    return (
        _framed(_payload(good)[:20]),
        0,
        dpb.BAD_MESSAGE,
        "20 bytes is shorter than its 48-byte header",
    )


def _framed(payload: bytes) -> bytes:
    return ipc.LENGTH.pack(len(payload)) + payload


@pytest.mark.parametrize(
    "case", ["byte-count", "unknown-dtype", "wrong-kind", "in-shm-without-fd", "short-header"]
)
def test_live_malformed_tensor_frame_gets_protobuf_error_then_connection_serves(
    loaded, case
) -> None:
    raw, model, session = loaded
    frame, req_id, status, words = _bad_frame(case, session)
    raw.send_bytes(frame)
    payload = raw.recv_payload()
    assert not tf.is_tensor_frame(payload)  # errors are always protobuf
    resp = ipc.decode_response(payload)
    assert resp.WhichOneof("body") == "error", resp
    assert (resp.id, resp.error.status) == (req_id, status), resp.error.message
    assert words in resp.error.message
    x = random_input(model, 1, 9)  # the same connection still serves
    raw.send_bytes(tf.encode_infer(32, session, x))
    r = tf.decode_result(raw.recv_payload())
    assert r.id == 32 and np.array_equal(r.y, model.forward(x))


def test_live_zero_size_tensor_with_huge_dims_gets_an_error(loaded) -> None:
    raw, _model, session = loaded
    head = tf.INFER_HEAD.pack(tf.MARKER, tf.INFER, 0, dpb.UINT8, 4, 41, session, 0, 0, M, M, M)
    raw.send_bytes(_framed(head))
    time.sleep(0.2)  # then a request in a read of its own, which is answered either way
    raw.send(dpb.Request(id=42, stats=dpb.GetStats()))
    raw.sock.settimeout(3)
    resp = ipc.decode_response(raw.recv_payload())
    assert resp.id == 41 and resp.error.status == dpb.BAD_INPUT, resp
