"""akidad's wire protocol (protocol 3): hypothesis fuzzing of framing, control decoding,
tensor sizes and memfd checks in-process, and over the live socket, where every fuzz case
is followed by a normal client that must still get bit-exact answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akida_rt.client.client import Client
from akida_rt.errors import DaemonError, FrameError, FrameRefused, RemoteError
from akida_rt.model import zoo
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

FAST = settings(max_examples=3400, deadline=None, suppress_health_check=list(HealthCheck))
# Live fuzz cases: each opens connections and loads a program (about 20 ms a case).
LIVE = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
U32, U64 = 2**32 - 1, 2**64 - 1
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
F_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x10)  # Python < 3.12 lacks it
MODEL = tiny_model()
PROGRAM = MODEL.to_bytes()
# What a well-framed request may be refused with; INTERNAL never (it means a daemon bug).
REFUSALS = {dpb.BAD_MESSAGE, dpb.UNKNOWN_TYPE, dpb.BAD_INPUT, dpb.NO_SESSION}


# ------------------------------------------------------------------ in-process fuzzing
@FAST
@given(st.lists(st.binary(max_size=100), max_size=6), st.integers(1, 64))
def test_take_frame_recovers_every_payload_whatever_the_chunking(payloads, step) -> None:
    stream = b"".join(struct.pack("<I", len(p)) + p for p in payloads)
    buf, got = bytearray(), []
    for i in range(0, len(stream), step):
        buf += stream[i : i + step]
        while (payload := ipc.take_frame(buf, 1024)) is not None:
            got.append(payload)
    assert got == payloads
    assert not buf


def test_take_frame_waits_for_a_whole_frame_and_takes_exactly_the_limit() -> None:
    buf = bytearray(struct.pack("<I", 1024) + b"x" * 1023)
    assert ipc.take_frame(buf, 1024) is None
    assert len(buf) == 4 + 1023  # an incomplete frame is left as it was
    buf += b"yz"  # the last byte of the frame, then the first of the next
    assert ipc.take_frame(buf, 1024) == b"x" * 1023 + b"y"
    assert buf == bytearray(b"z")
    assert ipc.take_frame(bytearray(b"\x00\x00"), 1024) is None  # half a length prefix


@pytest.mark.parametrize("length", [1025, 1 << 30, U32])
def test_oversized_length_prefix_is_a_frame_error(length) -> None:
    buf = bytearray(struct.pack("<I", length) + b"x")
    with pytest.raises(FrameError, match=f"frame of {length} bytes is over the 1024-byte limit"):
        ipc.take_frame(buf, 1024)
    with pytest.raises(FrameError) as info:
        ipc.take_frame(buf, 1024)  # the stream cannot go on: it says so every time
    assert status_of(info.value) == dpb.BAD_FRAME


@FAST
@given(st.binary(max_size=600))
def test_decode_request_accepts_or_refuses_with_a_status(data) -> None:
    try:
        req = ipc.decode_request(data)
    except FrameRefused as exc:
        # PROTOCOL_MISMATCH: the bytes hold a request field of an earlier protocol
        assert status_of(exc) in (dpb.BAD_MESSAGE, dpb.UNKNOWN_TYPE, dpb.PROTOCOL_MISMATCH)
        assert str(exc)
        assert status_of(exc) != dpb.BAD_MESSAGE or exc.req_id == 0
    else:
        assert req.WhichOneof("body") is not None


def test_a_protocol_3_learn_request_is_refused_by_name() -> None:
    """Protocol 3 sent learning samples as a protobuf Learn (Request field 11): akidad
    names it and the protocol that replaced it, not just an unknown type."""
    learn = b"\x0a\x04\x08\x01\x10\x02"  # Learn{session=1, inputs=b"\x10\x02"}-like bytes
    payload = dpb.Request(id=7).SerializeToString() + b"\x5a" + bytes([len(learn)]) + learn
    with pytest.raises(FrameRefused) as info:
        ipc.decode_request(payload)
    assert status_of(info.value) == dpb.PROTOCOL_MISMATCH and info.value.req_id == 7
    assert "Learn" in str(info.value) and "tensor frame since protocol 4" in str(info.value)


def test_learn_frame_round_trip() -> None:
    x = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)
    frame = tf.encode_learn(9, 3, x, [1, 0], timeout_ms=250, update_id=77)
    payload = ipc.take_frame(bytearray(frame), 1 << 20)
    assert payload is not None and tf.is_learn_frame(payload)
    got = tf.decode_learn(payload, 1 << 20)
    assert (got.id, got.session, got.timeout_ms, got.update_id, got.labels) == (
        9,
        3,
        250,
        77,
        [1, 0],
    )
    assert np.array_equal(got.x, x)
    with pytest.raises(FrameRefused) as info:
        tf.decode_learn(payload[:-1], 1 << 20)
    assert info.value.req_id == 9 and "bytes" in str(info.value)
    with pytest.raises(FrameRefused):
        tf.decode_learn(payload, 8)  # samples over the tensor limit


@pytest.mark.parametrize("shape", [(3, 5), (0, 0)])  # an update applied already: no potentials
def test_learned_frame_round_trip(shape) -> None:
    pots = np.arange(math.prod(shape), dtype=np.int32).reshape(shape) - 7
    frame = tf.encode_learned(12, pots, '{"samples": 8}')
    payload = ipc.take_frame(bytearray(frame), 1 << 20)
    assert payload is not None and tf.is_tensor_frame(payload)
    got = tf.decode_answer(payload)
    assert isinstance(got, tf.LearnedFrame) and got.id == 12 and got.state_json == '{"samples": 8}'
    assert got.potentials.dtype == np.int32 and np.array_equal(got.potentials, pots)
    with pytest.raises(FrameRefused):
        tf.decode_learned(payload[:-1])


DIMS = st.one_of(st.integers(0, 6), st.sampled_from([2**16, 2**31, U32]), st.integers(0, U32))


@FAST
@given(
    st.lists(DIMS, max_size=4),
    st.sampled_from(list(ipc.DTYPES.values())),
    st.one_of(st.integers(0, 1 << 20), st.integers(0, 1 << 70)),
)
def test_shape_nbytes_is_exact_or_refuses_with_bad_input(shape, dtype, limit) -> None:
    """Python-int arithmetic: no u32/u64 wrap-around lets a huge shape pass as small."""
    size = math.prod(shape) * dtype.itemsize
    held = math.prod(d for d in shape if d) * dtype.itemsize  # what numpy must index
    try:
        got = ipc.shape_nbytes(shape, dtype, limit)
    except DaemonError as exc:
        assert status_of(exc) == dpb.BAD_INPUT
        assert f"tensor shape {tuple(shape)} of {dtype.name} is over {limit} bytes" == str(exc)
        assert size > limit or held > limit
    else:
        assert got == size and type(got) is int
        assert size <= limit and held <= limit


def test_wire_array_converts_big_endian_and_refuses_other_dtypes() -> None:
    big = np.arange(6, dtype=">i4")
    code, arr = ipc.wire_array(big)
    assert code == dpb.INT32 and arr.dtype.str == "<i4" and np.array_equal(arr, big)
    with pytest.raises(DaemonError, match="dtype float64 cannot travel"):
        ipc.wire_array(np.zeros(2))


# ------------------------------------------------------------------ sealed memfds
def test_sealed_memfd_cannot_change_size() -> None:
    fd = ipc.sealed_memfd(100)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS
        assert os.fstat(fd).st_size == 100
        for size in (10, 200):
            with pytest.raises(PermissionError):
                os.ftruncate(fd, size)
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:akida-tensor")
    finally:
        os.close(fd)
    fd = ipc.sealed_memfd(0)  # an empty tensor still gets a mappable page
    try:
        assert os.fstat(fd).st_size == 1
    finally:
        os.close(fd)


def test_map_sealed_maps_a_sealed_memfd_whole_and_shares_it() -> None:
    fd = memfd_holding(b"abc", 64)
    try:
        shm = ipc.map_sealed(fd, 3, 64)
        try:
            assert len(shm) == 64 and shm[:3] == b"abc"
            shm[3:6] = b"xyz"  # the peer sees what the daemon writes
            assert memfd_bytes(fd, 6) == b"abcxyz"
        finally:
            shm.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "case, need, limit, words",
    [
        ("unsealed", 3, 64, "must be a memfd sealed with F_SEAL_SHRINK and F_SEAL_GROW"),
        ("shrink-only", 3, 64, "must be a memfd sealed with F_SEAL_SHRINK and F_SEAL_GROW"),
        ("pipe", 3, 64, "ipc.sealed_memfd makes one"),
        ("file", 3, 64, "ipc.sealed_memfd makes one"),
        ("sealed", 65, 1024, "shared memory holds 64 bytes, the tensor needs 65"),
        ("sealed", 3, 63, "shared memory of 64 bytes is over the 63-byte limit"),
        ("write-sealed", 3, 64, "cannot map the shared memory for writing"),
        ("future-write-sealed", 3, 64, "not sealed with F_SEAL_WRITE or F_SEAL_FUTURE_WRITE"),
        ("read-only", 3, 64, "cannot map the shared memory for writing"),
    ],
)
def test_map_sealed_refuses_what_a_peer_could_change_or_overflow(
    tmp_path, case, need, limit, words
) -> None:
    closing = []
    if case in ("unsealed", "shrink-only", "sealed", "write-sealed", "future-write-sealed"):
        fd = memfd_holding(b"abc", 64, seal=case != "unsealed" and case != "shrink-only")
        if case == "shrink-only":
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        elif case != "sealed":
            seal = fcntl.F_SEAL_WRITE if case == "write-sealed" else F_SEAL_FUTURE_WRITE
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seal)
    elif case == "read-only":
        closing.append(memfd_holding(b"abc", 64))
        fd = os.open(f"/proc/self/fd/{closing[0]}", os.O_RDONLY)
    elif case == "pipe":
        fd, w = os.pipe()
        closing.append(w)
    else:
        path = tmp_path / "tensor"
        path.write_bytes(bytes(64))
        fd = os.open(path, os.O_RDWR)
    closing.append(fd)
    try:
        with pytest.raises(DaemonError) as info:
            ipc.map_sealed(fd, need, limit)
        assert status_of(info.value) == dpb.BAD_INPUT
        assert words in str(info.value)
    finally:
        for f in closing:
            os.close(f)


# --------------------------------------------------------------------- live daemon
@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("akidad")
    with Akidad(tmp, "--config", str(_config(tmp))) as d:
        yield d


def _config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "akidad.toml"
    path.write_text("max_frame = 1048576\nshm_threshold = 4096\n" + extra)
    return path


def _framed(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def _still_serves(daemon: Akidad, seed: int) -> None:
    """A normal client on a fresh connection gets bit-exact answers, inline and through a
    sealed memfd, and the daemon holds no memfd once everything is answered."""
    with Client(daemon.socket, name="check", retry_s=0) as client:
        remote = client.load(MODEL)
        for n in (1, 128):  # 36 bytes inline; 4,608 bytes, over shm_threshold, in a memfd
            x = random_input(MODEL, n, seed + n)
            assert np.array_equal(remote.forward(x), MODEL.forward(x))
    assert wait_for(lambda: open_memfds(daemon.proc.pid) == 0), "akidad kept a memfd"


def _expect_error(raw: RawConnection, req_id: int, statuses: set[int]) -> dpb.Response:
    resp = raw.recv()  # asserts a protobuf Response: errors never travel as tensor frames
    assert resp.WhichOneof("body") == "error", resp
    assert resp.id == req_id, resp
    assert resp.error.status in statuses, resp.error
    assert resp.error.message
    return resp


def _result(raw: RawConnection, req_id: int) -> tf.ResultFrame:
    answer = raw.recv_any()
    assert isinstance(answer, tf.ResultFrame), answer
    assert answer.id == req_id
    return answer


def _id_of(payload: bytes) -> int:
    """The id the daemon must answer a tensor frame with: its header's, or 0 if short."""
    return tf.INFER_HEAD.unpack_from(payload)[5] if len(payload) >= tf.INFER_HEAD.size else 0


def test_live_fuzz_garbage_frames_get_one_answer_each_and_the_daemon_keeps_serving(daemon):
    x = random_input(MODEL, 2, 0)
    with Client(daemon.socket, name="bystander") as bystander:
        remote = bystander.load(MODEL)
        raw = RawConnection(daemon.socket)

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=200))
        def fuzz(payload: bytes) -> None:
            raw.send_bytes(_framed(payload))
            resp = raw.recv_any()  # exactly one answer per frame, in order
            if isinstance(resp, tf.ResultFrame):
                raise AssertionError(f"garbage computed as request {resp.id}")
            if resp.WhichOneof("body") == "error":
                assert resp.error.message
                assert resp.error.status != dpb.INTERNAL, resp.error.message
            if tf.is_tensor_frame(payload):  # never a result: its session is not this one's
                assert resp.WhichOneof("body") == "error" and resp.error.status in REFUSALS
                assert resp.id == _id_of(payload)
            # a valid Request by chance is answered too (e.g. stats, hello)

        fuzz()
        raw.send(dpb.Request(id=U64, list_devices=dpb.ListDevices()))
        assert raw.recv().id == U64  # nothing was answered twice
        raw.close()
        assert np.array_equal(remote.forward(x), MODEL.forward(x))
    _still_serves(daemon, 0)


# --------------------------------------------------- live fuzzing of memfd pairing
def _payload(frame: bytes) -> bytes:
    return frame[ipc.LENGTH.size :]


def _refused_with_memfd(how: str, value: int, session: int, x: np.ndarray):
    """(payload, memfd size, seals, answer id, statuses) of an IN_SHM frame that comes
    with a memfd holding a valid input `x` and must be refused; seals: "size" (what
    ipc.sealed_memfd adds), "none", or "size+write"."""
    n = x.shape[0]
    payload = bytearray(_payload(tf.infer_parts(50, session, x, in_shm=True,
                                                output_to_shm=bool(value & 1))[0]))  # fmt: skip
    size, seals, rid, statuses = 4096, "size", 50, {dpb.BAD_INPUT}
    if how == "dtype":
        payload[3] = 0 if value in ipc.DTYPES else value
    elif how == "ndim":
        payload[4] = 0 if 1 <= value <= 4 else value
    elif how == "kind":
        payload[1] = 0 if value == tf.INFER else value  # then no memfd is expected
    elif how == "cut":
        payload, rid, statuses = payload[: 3 + value % 45], 0, {dpb.BAD_MESSAGE}
    elif how == "huge":
        struct.pack_into("<4I", payload, 28, 1, 1 << 16, 1 << 16, 1)
    elif how == "small-memfd":
        size = value % x.nbytes or 1
    elif how in ("unsealed", "write-sealed"):
        seals = "none" if how == "unsealed" else "size+write"
    elif how == "no-session":
        struct.pack_into("<Q", payload, 16, session ^ (value + 1))
        statuses = {dpb.NO_SESSION}
    else:
        assert how == "shape"  # mapped and read, then refused by the input check
        struct.pack_into("<4I", payload, 28, n, 6, 5, 1)
    return bytes(payload), size, seals, rid, statuses


HOWS = ["dtype", "ndim", "kind", "cut", "huge", "small-memfd", "unsealed", "write-sealed",
        "no-session", "shape"]  # fmt: skip


@LIVE
@given(how=st.sampled_from(HOWS), value=st.integers(0, 255), n=st.integers(1, 4),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_live_fuzz_a_refused_memfd_frame_leaves_no_stale_memfd_behind(
    daemon, how, value, n, seed
) -> None:
    """A memfd request refused while decoding or checking, then a good memfd request on
    the same connection: the good one is computed on its own memfd, answered into it,
    and the refused one's memory is never written."""
    stale, good = random_input(MODEL, n, seed), random_input(MODEL, n, seed + 1)
    raw = RawConnection(daemon.socket)
    fds = []
    try:
        session = raw.load(PROGRAM).session
        payload, size, seals, rid, statuses = _refused_with_memfd(how, value, session, stale)
        content = stale.tobytes()[:size]
        fds.append(memfd_holding(content, size, seal=seals != "none"))
        if seals == "size+write":
            fcntl.fcntl(fds[0], fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
        raw.send_frame(_framed(payload), [fds[0]])
        _expect_error(raw, rid, statuses)
        fds.append(memfd_holding(good.tobytes(), 4096))
        head, _ = tf.infer_parts(51, session, good, in_shm=True, output_to_shm=True)
        raw.send_frame(head, [fds[1]])
        assert _result(raw, 51).in_shm
        expected = MODEL.forward(good)
        assert memfd_bytes(fds[1], expected.nbytes) == expected.tobytes()
        assert memfd_bytes(fds[0], len(content)) == content
    finally:
        raw.close()
        for fd in fds:
            os.close(fd)
    _still_serves(daemon, seed)


@LIVE
@given(carrier=st.sampled_from(["inline-infer", "short", "stats", "devices", "hello"]),
       sealed=st.booleans(), n=st.integers(1, 4), seed=st.integers(0, 2**16))  # fmt: skip
def test_live_fuzz_a_stray_memfd_is_never_used_later(daemon, carrier, sealed, n, seed) -> None:
    """A frame that sends a memfd without declaring shared memory: then an inline request
    and a memfd request are answered right, and the stray memory is never touched."""
    xs = [random_input(MODEL, n, seed + i) for i in range(3)]
    raw = RawConnection(daemon.socket)
    stray = memfd_holding(xs[0].tobytes(), 4096, seal=sealed)
    own = memfd_holding(xs[2].tobytes(), 4096)
    try:
        session = raw.load(PROGRAM).session
        if carrier in ("inline-infer", "short"):
            frame = tf.encode_infer(60, session, xs[0]) if carrier == "inline-infer" else b"\0\1"
            raw.send_frame(frame if carrier == "inline-infer" else _framed(frame), [stray])
            resp = _expect_error(raw, 60 if carrier == "inline-infer" else 0, {dpb.BAD_INPUT})
            assert "takes 0 descriptors" in resp.error.message
            assert "1 came with it" in resp.error.message
        else:
            req = dpb.Request(id=60)
            if carrier == "hello":
                req.hello.protocol = ipc.PROTOCOL
            elif carrier == "stats":
                req.stats.SetInParent()
            else:
                req.list_devices.SetInParent()
            raw.send(req, [stray])
            resp = raw.recv()  # answered (or refused as BAD_INPUT), the memfd dropped
            assert resp.id == 60
            assert resp.WhichOneof("body") != "error" or resp.error.status == dpb.BAD_INPUT
        raw.send_frame(tf.encode_infer(61, session, xs[1], output_to_shm=False))
        r = _result(raw, 61)
        assert not r.in_shm and np.array_equal(r.y, MODEL.forward(xs[1]))
        head, _ = tf.infer_parts(62, session, xs[2], in_shm=True, output_to_shm=True)
        raw.send_frame(head, [own])
        assert _result(raw, 62).in_shm
        expected = MODEL.forward(xs[2])
        assert memfd_bytes(own, expected.nbytes) == expected.tobytes()
        assert memfd_bytes(stray, 4096) == xs[0].tobytes() + bytes(4096 - xs[0].nbytes)
    finally:
        raw.close()
        os.close(stray)
        os.close(own)
    _still_serves(daemon, seed)


@LIVE
@given(
    kind=st.sampled_from([b"", bytes([tf.INFER])]),
    tail=st.one_of(st.binary(max_size=60), st.binary(min_size=47, max_size=120)),
    memfd=st.one_of(
        st.none(), st.tuples(st.integers(0, 600), st.booleans(), st.binary(max_size=600))
    ),
)
def test_live_fuzz_random_bytes_after_the_marker_with_and_without_a_memfd(
    daemon, kind, tail, memfd
) -> None:
    payload = bytes([tf.MARKER]) + kind + tail
    raw = RawConnection(daemon.socket)
    fd = None
    try:
        session = raw.load(PROGRAM).session
        if memfd is not None:
            size, sealed, content = memfd
            content = content[:size]
            fd = memfd_holding(content, size, seal=sealed)
        raw.send_frame(_framed(payload), [fd] if fd is not None else [])
        _expect_error(raw, _id_of(payload), REFUSALS)
        x = random_input(MODEL, 2, len(payload))
        raw.send_frame(tf.encode_infer(70, session, x))
        assert np.array_equal(_result(raw, 70).y, MODEL.forward(x))
        if fd is not None:  # refused requests never write into the memory they brought
            assert memfd_bytes(fd, len(content)) == content
    finally:
        raw.close()
        if fd is not None:
            os.close(fd)
    _still_serves(daemon, len(payload))


@LIVE
@given(protocol=st.integers(0, U32).filter(lambda p: p != ipc.PROTOCOL),
       name=st.text(max_size=20), priority=st.integers(0, 7))  # fmt: skip
def test_live_fuzz_hello_of_another_protocol_is_refused_naming_both(
    daemon, protocol, name, priority
) -> None:
    raw = RawConnection(daemon.socket)
    try:
        hello = dpb.Hello(client_name=name, priority=priority, protocol=protocol)
        raw.send(dpb.Request(id=80, hello=hello))
        resp = _expect_error(raw, 80, {dpb.PROTOCOL_MISMATCH})
        assert re.search(rf"\bprotocol {protocol}\b", resp.error.message), resp.error.message
        assert re.search(rf"\bprotocol {ipc.PROTOCOL}\b", resp.error.message)
        hello.protocol = ipc.PROTOCOL  # the connection goes on: a right hello is answered
        raw.send(dpb.Request(id=81, hello=hello))
        reply = raw.recv()
        assert reply.id == 81 and reply.hello.protocol == ipc.PROTOCOL, reply
    finally:
        raw.close()
    _still_serves(daemon, protocol % 1000)


# ------------------------------------------------------------------ precise errors
def _infer(session: int, x: np.ndarray, **options) -> tuple[bytes, int]:
    return tf.encode_infer(5, session, x, **options), 5


def _short_tensor(session: int) -> tuple[bytes, int]:
    head = tf.INFER_HEAD.pack(tf.MARKER, tf.INFER, 0, dpb.UINT8, 4, 5, session, 0, 1, 6, 6, 1)
    return _framed(head + b"abc"), 5


def _control(req: dpb.Request) -> tuple[bytes, int]:
    return ipc.encode_frame(req), req.id


def _load_bytes(program: bytes) -> tuple[bytes, int]:
    req = dpb.Request(id=6)
    req.load.program = program
    return _control(req)


@pytest.mark.parametrize(
    "build, status, words",
    [
        (lambda s: (_framed(b"\x08\x05\xa2\x01\x00"), 5), dpb.UNKNOWN_TYPE, "no known message type"),
        (lambda s: (_framed(b"\xff\xff\xff"), 0), dpb.BAD_MESSAGE, "not a Request"),
        (lambda s: _infer(s, np.zeros((1, 5, 5, 1), np.uint8)), dpb.BAD_INPUT, "does not match"),
        (lambda s: _infer(s, np.zeros((1, 6, 6, 1), np.float32)), dpb.BAD_INPUT, "uint8"),
        (lambda s: _infer(s, np.zeros((0, 6, 6, 1), np.uint8)), dpb.BAD_INPUT, "batch is empty"),
        (lambda s: _short_tensor(s), dpb.BAD_INPUT, "needs 36 bytes, got 3"),
        (lambda s: _infer(12345, np.zeros((1, 6, 6, 1), np.uint8)), dpb.NO_SESSION, "12345"),
        (lambda s: _infer(s, np.zeros((1, 6, 6, 1), np.uint8), timeout_ms=600_001),
         dpb.BAD_INPUT, "timeout_ms 600001 is over max_timeout_ms 600000"),
        (lambda s: _load_bytes(b"AKIDARTP" + b"\0" * 10), dpb.BAD_PROGRAM,
         "truncated: 18 bytes, the header alone is 56"),
        (lambda s: _load_bytes(b"not a program at all" * 5), dpb.BAD_PROGRAM,
         "not an akida_rt program (magic"),
        (lambda s: _load_bytes(PROGRAM[:-1] + bytes([PROGRAM[-1] ^ 1])), dpb.BAD_PROGRAM,
         "content hash mismatch"),  # the session's own program is cached: its hash is checked
        (lambda s: _control(dpb.Request(id=8, unload=dpb.Unload(session=s + 1))),
         dpb.NO_SESSION, "no session"),
        (lambda s: _control(dpb.Request(id=9, get_state=dpb.GetState(key="absent-key"))),
         dpb.NOT_FOUND, "no state 'absent-key'"),
        (lambda s: _control(dpb.Request(id=10, hello=dpb.Hello(protocol=ipc.PROTOCOL, priority=9))),
         dpb.BAD_INPUT, "priority 9 is outside 0..7"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_precise_error_and_the_connection_stays_usable(
    daemon, build, status, words
) -> None:
    raw = RawConnection(daemon.socket)
    session = raw.load(PROGRAM).session
    frame, req_id = build(session)
    raw.send_frame(frame)
    resp = _expect_error(raw, req_id, {status})
    assert words in resp.error.message
    x = random_input(MODEL, 1, 3)  # the same connection still works
    raw.send_frame(tf.encode_infer(11, session, x))
    assert np.array_equal(_result(raw, 11).y, MODEL.forward(x))
    raw.close()


@pytest.mark.parametrize("with_memfd", [False, True])
def test_oversized_frame_gets_bad_frame_then_hangup_others_unaffected(daemon, with_memfd):
    with Client(daemon.socket) as other:
        remote = other.load(MODEL)
        raw = RawConnection(daemon.socket)
        fd = memfd_holding(b"x", 4096)
        try:
            raw.send_frame(struct.pack("<I", 2 << 20) + b"\0" * 100, [fd] if with_memfd else [])
        finally:
            os.close(fd)
        resp = _expect_error(raw, 0, {dpb.BAD_FRAME})
        assert "frame of 2097152 bytes is over the 1048576-byte limit" in resp.error.message
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            raw.recv_payload()
        raw.close()
        x = random_input(MODEL, 1, 1)
        assert np.array_equal(remote.forward(x), MODEL.forward(x))
    _still_serves(daemon, 1)


def test_large_tensors_travel_in_a_sealed_memfd_not_on_the_socket(daemon, monkeypatch):
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 8, 4)  # 8 KiB over the 4 KiB threshold set in the config
    sent: list[tuple[int, int]] = []
    answers: list[tuple[int, bool]] = []
    send, decode = ipc.send_frame, tf.decode_result

    def spy_send(sock, head, body=b"", fds=()):
        if fds:
            assert len(fds) == 1 and os.fstat(fds[0]).st_size >= x.nbytes
            sent.append((len(head) + len(body), fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)))
        send(sock, head, body, fds)

    def spy_decode(payload, at=0):
        r = decode(payload, at)
        answers.append((len(payload) - at, r.in_shm))
        return r

    monkeypatch.setattr(ipc, "send_frame", spy_send)
    monkeypatch.setattr(tf, "decode_result", spy_decode)
    with Client(daemon.socket) as client:
        assert client.shm_threshold == 4096
        remote = client.load(model)
        y = remote.forward(x)
    assert np.array_equal(y, model.forward(x))
    assert len(sent) == 1  # only the descriptor-bearing header went over the socket
    assert sent[0][0] == ipc.LENGTH.size + tf.INFER_HEAD.size
    assert sent[0][1] & SEALS == SEALS
    size, in_shm = answers[-1]
    assert in_shm and size == tf.RESULT_HEAD.size + len(remote.last_device)


def test_unknown_session_from_client_library_raises_remote_error(daemon) -> None:
    with Client(daemon.socket) as client:
        remote = client.load(MODEL)
        remote.session = 99
        with pytest.raises(RemoteError, match="NO_SESSION: no session 99") as info:
            remote.forward(random_input(MODEL, 1, 0))
        assert (status_of(info.value), info.value.status_name) == (dpb.NO_SESSION, "NO_SESSION")


def test_client_without_daemon_fails_fast_with_how_to_start_it(tmp_path) -> None:
    with pytest.raises(DaemonError, match="akidad --user"):
        Client(tmp_path / "nothing.sock", retry_s=0)


def test_hello_reply_names_protocol_4_and_the_limits(daemon) -> None:
    raw = RawConnection(daemon.socket)
    raw.send(
        dpb.Request(id=3, hello=dpb.Hello(client_name="raw", priority=2, protocol=ipc.PROTOCOL))
    )
    resp = raw.recv()
    raw.close()
    h = resp.hello
    assert resp.id == 3 and resp.WhichOneof("body") == "hello", resp
    assert (h.protocol, h.pid, h.uid) == (4, daemon.proc.pid, os.getuid())
    assert (h.shm_threshold, h.max_frame) == (4096, 1048576)
    assert (h.max_tensor_bytes, h.max_timeout_ms) == (128 << 20, 600_000)


@pytest.mark.parametrize("answer", ["hello-of-protocol-2", "protocol-mismatch-error"])
def test_client_refuses_a_daemon_of_another_protocol(tmp_path, answer) -> None:
    path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(10)
    asked: list[int] = []

    def serve() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as conn:
            buf = bytearray()
            while (payload := ipc.take_frame(buf, 1 << 20)) is None:
                buf += conn.recv(4096)
            req = ipc.decode_request(payload)
            asked.append(req.hello.protocol)
            if answer == "hello-of-protocol-2":
                resp = dpb.Response(id=req.id, hello=dpb.HelloReply(protocol=2, version="old"))
            else:
                resp = ipc.error_response(req.id, dpb.PROTOCOL_MISMATCH, "protocol 3 vs 4")
            conn.sendall(ipc.encode_frame(resp))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with pytest.raises(DaemonError) as info:
            Client(path, retry_s=0, timeout=5)
    finally:
        thread.join(10)
        listener.close()
    assert asked == [ipc.PROTOCOL]
    assert status_of(info.value) == dpb.PROTOCOL_MISMATCH
    if answer == "hello-of-protocol-2":
        assert f"speaks protocol 2, this client protocol {ipc.PROTOCOL}" in str(info.value)
    else:
        assert isinstance(info.value, RemoteError)
        assert info.value.status_name == "PROTOCOL_MISMATCH"


def test_a_client_whose_hello_is_refused_hangs_up(daemon) -> None:
    with pytest.raises(RemoteError, match=r"priority 9 is outside 0\.\.7") as info:
        Client(daemon.socket, name="refused", priority=9, retry_s=0)
    assert status_of(info.value) == dpb.BAD_INPUT
    with Client(daemon.socket, name="watcher") as watcher:  # while the error is still held
        alone = wait_for(lambda: len(watcher.stats()["clients"]) == 1, timeout=2)
        assert alone, watcher.stats()["clients"]


def test_delete_state_removes_a_key_and_a_missing_one_is_not_found(daemon) -> None:
    with Client(daemon.socket) as client:
        client.put_state("proto-delete", b"v1")
        assert client.get_state("proto-delete") == b"v1"
        client.delete_state("proto-delete")
        for call in (client.get_state, client.delete_state):
            with pytest.raises(RemoteError, match="no state 'proto-delete'") as info:
                call("proto-delete")
            assert status_of(info.value) == dpb.NOT_FOUND
        with pytest.raises(RemoteError) as info:
            client.delete_state("../escape")
        assert status_of(info.value) == dpb.BAD_INPUT
    raw = RawConnection(daemon.socket)  # the raw request is acknowledged with its id
    raw.send(dpb.Request(id=4, put_state=dpb.PutState(key="proto-raw", data=b"x")))
    assert raw.recv().WhichOneof("body") == "ack"
    raw.send(dpb.Request(id=5, delete_state=dpb.DeleteState(key="proto-raw")))
    resp = raw.recv()
    assert resp.id == 5 and resp.WhichOneof("body") == "ack", resp
    raw.close()


# ------------------------------------------------------------------ flooding
def test_a_flooding_client_is_refused_past_max_in_flight_and_loses_nothing(tmp_path) -> None:
    """Requests past the cap get TOO_MANY_REQUESTS; every request is answered once, the
    accepted ones with their own outputs, and memfds of refused ones are left alone."""
    config = _config(tmp_path, "max_in_flight = 3\n")
    with Akidad(tmp_path, "--config", str(config)) as daemon:
        raw = RawConnection(daemon.socket)
        session = raw.load(PROGRAM).session
        xs = {100 + i: random_input(MODEL, 1, i) for i in range(12)}
        # Every frame goes out in one write, so the daemon reads them all before answering.
        raw.send_bytes(b"".join(tf.encode_infer(rid, session, x) for rid, x in xs.items()))
        answers = _answers(raw, len(xs))
        assert sorted(answers) == sorted(xs)
        served = [rid for rid, a in answers.items() if isinstance(a, tf.ResultFrame)]
        refused = [answers[rid].error for rid in xs if rid not in served]
        assert {100, 101, 102} <= set(served) and refused  # the first three were taken
        assert all(e.status == dpb.TOO_MANY_REQUESTS for e in refused)
        assert "max_in_flight=3" in refused[0].message
        for rid in served:
            assert np.array_equal(answers[rid].y, MODEL.forward(xs[rid]))

        fds = {200 + i: memfd_holding(xs[100 + i].tobytes(), 4096) for i in range(8)}
        try:
            for rid, fd in fds.items():  # one sendmsg per frame and its memfd
                head, _ = tf.infer_parts(rid, session, xs[rid - 100], in_shm=True,
                                         output_to_shm=True)  # fmt: skip
                raw.send_frame(head, [fd])
            answers = _answers(raw, len(fds))
            assert sorted(answers) == sorted(fds)
            for rid, a in answers.items():
                x = xs[rid - 100]
                if isinstance(a, tf.ResultFrame):
                    y = MODEL.forward(x)
                    assert a.in_shm and memfd_bytes(fds[rid], y.nbytes) == y.tobytes()
                else:
                    assert a.error.status == dpb.TOO_MANY_REQUESTS
                    assert memfd_bytes(fds[rid], x.nbytes) == x.tobytes()
        finally:
            for fd in fds.values():
                os.close(fd)
        assert wait_for(lambda: open_memfds(daemon.proc.pid) == 0)
        raw.send(dpb.Request(id=300, stats=dpb.GetStats()))
        stats = json.loads(raw.recv().stats.json)
        assert stats["outstanding"] == 0
        assert [c["in_flight"] for c in stats["clients"]] == [0]  # this connection alone
        x = random_input(MODEL, 1, 99)  # once answered, the client is served again
        raw.send_frame(tf.encode_infer(301, session, x))
        assert np.array_equal(_result(raw, 301).y, MODEL.forward(x))
        raw.close()


def _answers(raw: RawConnection, count: int) -> dict[int, tf.ResultFrame | dpb.Response]:
    """The next `count` answers by request id; no id may be answered twice."""
    out: dict[int, tf.ResultFrame | dpb.Response] = {}
    for _ in range(count):
        answer = raw.recv_any()
        assert answer.id not in out, f"request {answer.id} answered twice"
        out[answer.id] = answer
    return out
