"""akidad's wire protocol: hypothesis fuzzing of framing and decoding (in-process and over
the live socket), and precise errors for bad input while everyone else is still served.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akida_rt import ipc
from akida_rt.client import Client
from akida_rt.errors import DaemonError
from akida_rt.proto import daemon_pb2 as dpb
from tests.daemon_harness import Akidad, RawConnection, random_input, tiny_model

FAST = settings(max_examples=3400, deadline=None, suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------ in-process fuzzing
@FAST
@given(st.lists(st.binary(max_size=100), max_size=6), st.integers(3, 64))
def test_split_frames_recovers_every_payload_whatever_the_chunking(payloads, step) -> None:
    stream = b"".join(struct.pack("<I", len(p)) + p for p in payloads)
    buf, got = bytearray(), []
    for i in range(0, len(stream), step):
        buf += stream[i : i + step]
        got += ipc.split_frames(buf, 1024)
    assert got == payloads
    assert not buf


@FAST
@given(st.binary(max_size=600))
def test_decode_request_accepts_or_refuses_with_a_status(data) -> None:
    try:
        req = ipc.decode_request(data)
    except ipc.MessageError as exc:
        assert exc.status in (dpb.BAD_MESSAGE, dpb.UNKNOWN_TYPE)
        assert str(exc)
    else:
        assert req.WhichOneof("body") is not None


@FAST
@given(
    st.sampled_from([*list(ipc.DTYPES), 0, 9]),
    st.lists(st.integers(0, 9), max_size=6),
    st.binary(max_size=200),
)
def test_array_from_tensor_is_exact_or_refuses_with_bad_input(dtype, shape, data) -> None:
    t = dpb.Tensor(dtype=dtype, shape=shape, data=data)
    try:
        arr = ipc.array_from_tensor(t)
    except ipc.MessageError as exc:
        assert exc.status == dpb.BAD_INPUT
    else:
        assert arr.shape == tuple(shape)
        assert arr.tobytes() == data


def test_oversized_length_prefix_is_a_frame_error() -> None:
    buf = bytearray(struct.pack("<I", 1 << 30) + b"x")
    with pytest.raises(ipc.FrameError, match="over the 1024-byte limit"):
        ipc.split_frames(buf, 1024)


# --------------------------------------------------------------------- live daemon
@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("akidad")
    with Akidad(tmp, "--config", str(_config(tmp))) as d:
        yield d


def _config(tmp: Path) -> Path:
    path = tmp / "akidad.toml"
    path.write_text("max_frame = 1048576\nshm_threshold = 4096\n")
    return path


def _load(raw: RawConnection, program: bytes) -> dpb.Loaded:
    req = dpb.Request(id=7)
    req.load.program = program
    raw.send(req)
    resp = raw.recv()
    assert resp.WhichOneof("body") == "loaded", resp
    return resp.loaded


def test_live_fuzz_garbage_frames_get_errors_and_the_daemon_keeps_serving(daemon) -> None:
    model = tiny_model()
    x = random_input(model, 2, 0)
    with Client(daemon.socket, name="bystander") as bystander:
        remote = bystander.load(model)
        raw = RawConnection(daemon.socket)

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=200))
        def fuzz(payload: bytes) -> None:
            raw.send_bytes(struct.pack("<I", len(payload)) + payload)
            resp = raw.recv()
            if resp.WhichOneof("body") == "error":
                assert resp.error.message
            # a valid Request by chance must have been answered too (e.g. stats, hello)

        fuzz()
        raw.close()
        assert np.array_equal(remote.forward(x), model.forward(x))


@pytest.mark.parametrize(
    "build, status, words",
    [
        (lambda s: b"\x08\x01\xa2\x01\x00", dpb.UNKNOWN_TYPE, "no known message type"),
        (lambda s: b"\xff\xff\xff", dpb.BAD_MESSAGE, "not a Request"),
        (lambda s: _infer(s, np.zeros((1, 5, 5, 1), np.uint8)), dpb.BAD_INPUT, "does not match"),
        (lambda s: _infer(s, np.zeros((1, 6, 6, 1), np.float32)), dpb.BAD_INPUT, "uint8"),
        (lambda s: _infer(s, np.zeros((0, 6, 6, 1), np.uint8)), dpb.BAD_INPUT, "empty"),
        (lambda s: _bad_tensor(s), dpb.BAD_INPUT, "needs 36 bytes, got 3"),
        (lambda s: _infer(12345, np.zeros((1, 6, 6, 1), np.uint8)), dpb.NO_SESSION, "12345"),
        (lambda s: _load_bytes(b"AKIDARTP" + b"\0" * 10), dpb.BAD_PROGRAM, "header"),
        (lambda s: _load_bytes(b"not a program at all" * 5), dpb.BAD_PROGRAM, "magic"),
    ],
)
def test_bad_input_gets_a_precise_error_and_the_connection_stays_usable(
    daemon, build, status, words
) -> None:
    raw = RawConnection(daemon.socket)
    model = tiny_model()
    loaded = _load(raw, model.to_bytes())
    raw.send_bytes(_frame(build(loaded.session)))
    resp = raw.recv()
    assert resp.WhichOneof("body") == "error"
    assert resp.error.status == status, resp.error.message
    assert words in resp.error.message
    x = random_input(model, 1, 3)  # the same connection still works
    raw.send_bytes(_frame(_infer(loaded.session, x)))
    ok = raw.recv()
    assert np.array_equal(ipc.array_from_tensor(ok.result.output), model.forward(x))
    raw.close()


def test_oversized_frame_gets_bad_frame_then_hangup_others_unaffected(daemon) -> None:
    model = tiny_model()
    with Client(daemon.socket) as other:
        remote = other.load(model)
        raw = RawConnection(daemon.socket)
        raw.send_bytes(struct.pack("<I", 2 << 20) + b"\0" * 100)
        resp = raw.recv()
        assert resp.error.status == dpb.BAD_FRAME
        assert "over the 1048576-byte limit" in resp.error.message
        with pytest.raises(ConnectionResetError):
            raw.recv()
        x = random_input(model, 1, 1)
        assert np.array_equal(remote.forward(x), model.forward(x))


def test_large_tensors_travel_in_a_memfd_not_on_the_socket(daemon) -> None:
    from akida_rt import zoo

    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 8, 4)  # 8 KiB over the 4 KiB threshold set in the config
    with Client(daemon.socket) as client:
        assert client.shm_threshold == 4096
        remote = client.load(model)
        sent: list[int] = []
        real = ipc.send_frame

        def spy(sock, head, body=b"", fds=()):
            sent.append(len(head) + len(body))
            assert fds and os.fstat(fds[0]).st_size >= x.nbytes
            real(sock, head, body, fds)

        ipc.send_frame = spy  # type: ignore[assignment]
        try:
            y = remote.forward(x)
        finally:
            ipc.send_frame = real  # type: ignore[assignment]
        assert np.array_equal(y, model.forward(x))
        assert sent and sent[0] < 200  # only the descriptor-bearing header went over


def test_unknown_session_from_client_library_raises_remote_error(daemon) -> None:
    with Client(daemon.socket) as client:
        remote = client.load(tiny_model())
        remote.session = 99
        with pytest.raises(ipc.RemoteError, match="NO_SESSION"):
            remote.forward(random_input(tiny_model(), 1, 0))


def test_client_without_daemon_fails_fast_with_how_to_start_it(tmp_path) -> None:
    with pytest.raises(DaemonError, match="akidad --user"):
        Client(tmp_path / "nothing.sock", retry_s=0)


def _frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def _infer(session: int, x: np.ndarray) -> bytes:
    req = dpb.Request(id=5)
    req.infer.session = session
    req.infer.input.dtype = ipc.CODE_OF.get(x.dtype, dpb.FLOAT32)
    req.infer.input.shape[:] = x.shape
    req.infer.input.data = x.tobytes()
    return req.SerializeToString()


def _bad_tensor(session: int) -> bytes:
    req = dpb.Request(id=5)
    req.infer.session = session
    req.infer.input.dtype = dpb.UINT8
    req.infer.input.shape[:] = (1, 6, 6, 1)
    req.infer.input.data = b"abc"
    return req.SerializeToString()


def _load_bytes(program: bytes) -> bytes:
    req = dpb.Request(id=6)
    req.load.program = program
    return req.SerializeToString()


def test_a_flooding_client_is_refused_past_max_in_flight_and_loses_nothing(tmp_path) -> None:
    """Requests past the cap get TOO_MANY_REQUESTS; every accepted one is answered right."""
    config = tmp_path / "akidad.toml"
    config.write_text("max_in_flight = 3\n")
    with Akidad(tmp_path, "--config", str(config)) as daemon:
        raw = RawConnection(daemon.socket)
        model = tiny_model()
        loaded = _load(raw, model.to_bytes())
        xs = [random_input(model, 1, s) for s in range(12)]
        # Every frame goes out in one write, so the daemon reads them all before answering.
        raw.send_bytes(b"".join(_frame(_infer(loaded.session, x)) for x in xs))
        answers = [raw.recv() for _ in xs]
        kinds = [a.WhichOneof("body") for a in answers]
        refused = [a for a, kind in zip(answers, kinds, strict=True) if kind == "error"]
        assert kinds.count("result") >= 3 and refused
        assert all(a.error.status == dpb.TOO_MANY_REQUESTS for a in refused)
        assert "max_in_flight=3" in refused[0].error.message
        results = sorted(
            (
                ipc.array_from_tensor(a.result.output)
                for a in answers
                if a.WhichOneof("body") == "result"
            ),
            key=lambda y: y.tobytes(),
        )
        expected = sorted((model.forward(x) for x in xs), key=lambda y: y.tobytes())
        assert all(any(np.array_equal(r, e) for e in expected) for r in results)
        x = random_input(model, 1, 99)  # once answered, the client is served again
        raw.send_bytes(_frame(_infer(loaded.session, x)))
        assert np.array_equal(ipc.array_from_tensor(raw.recv().result.output), model.forward(x))
        raw.close()
