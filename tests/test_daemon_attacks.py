"""Attacks on akidad by a local client, each against a real daemon over its real socket:
memfds that shrink, oversized and sparse tensors, clients that never read or die with
work queued, connection floods, half-sent frames, quotas, forged program hashes, and a
planted socket directory. Each attack fails, and the daemon keeps serving everyone else.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import resource
import socket
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from akida_rt.client.client import Client
from akida_rt.errors import DaemonError, RemoteError
from akida_rt.format import program as fmt
from akida_rt.model import zoo
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import status_of
from tests.daemon_harness import Akidad, RawConnection, random_input, tiny_model

ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")


def _config(tmp_path: Path, **keys: object) -> str:
    path = tmp_path / "akidad.toml"
    path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in keys.items()))
    return str(path)


def _load(raw: RawConnection, program: bytes, rid: int = 1) -> dpb.Response:
    req = dpb.Request(id=rid)
    req.load.program = program
    raw.send(req)
    return raw.recv()


def _hello(raw: RawConnection) -> None:
    req = dpb.Request(id=99)
    req.hello.protocol = ipc.PROTOCOL
    raw.send(req)
    assert raw.recv().WhichOneof("body") == "hello"


def _still_serves(daemon: Akidad) -> None:
    model = tiny_model(3)
    x = random_input(model, 2, 5)
    with Client(daemon.socket, retry_s=0) as c:
        assert np.array_equal(c.load(model).forward(x), model.forward(x))


def _infer_shm(raw: RawConnection, rid: int, session: int, x: np.ndarray, fd: int) -> None:
    head, _ = tf.infer_parts(rid, session, x, in_shm=True, output_to_shm=True)
    ipc.send_frame(raw.sock, head, b"", (fd,))


def _unsealed(x: np.ndarray) -> int:
    fd = os.memfd_create("attack", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, max(x.nbytes, 4096))
    os.pwrite(fd, x.tobytes(), 0)
    return fd


# ------------------------------------------------------------------ memfds
def test_unsealed_memfd_is_refused_and_shrinking_it_cannot_kill_the_daemon(tmp_path: Path) -> None:
    model = tiny_model()
    x = random_input(model, 64, 1)
    with Akidad(tmp_path) as daemon:
        raw = RawConnection(daemon.socket)
        session = _load(raw, model.to_bytes()).loaded.session
        for rid in range(1, 6):  # the old attack: shrink the memfd while the request runs
            fd = _unsealed(x)
            _infer_shm(raw, rid, session, x, fd)
            os.ftruncate(fd, 0)
            os.close(fd)
            answer = raw.recv()
            assert answer.id == rid and answer.error.status == dpb.BAD_INPUT
            assert "F_SEAL_SHRINK" in answer.error.message
        # A sealed memfd cannot be shrunk at all, and is served.
        fd = ipc.sealed_memfd(x.nbytes)
        os.pwrite(fd, x.tobytes(), 0)
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 0)
        _infer_shm(raw, 7, session, x, fd)
        result = tf.decode_result(raw.recv_payload())
        assert result.id == 7 and result.in_shm
        with mmap.mmap(fd, x.nbytes) as region:
            y = np.frombuffer(region, result.dtype, np.prod(result.shape)).reshape(result.shape)
            assert np.array_equal(y, model.forward(x))
            del y
        os.close(fd)
        assert daemon.proc is not None and daemon.proc.poll() is None
        _still_serves(daemon)


def test_huge_sparse_memfd_is_refused_before_it_is_mapped(tmp_path: Path) -> None:
    model = tiny_model()
    x = random_input(model, 1, 1)
    with Akidad(tmp_path, "--config", _config(tmp_path, max_tensor_bytes=1 << 20)) as daemon:
        raw = RawConnection(daemon.socket)
        session = _load(raw, model.to_bytes()).loaded.session
        rss = psutil.Process(daemon.proc.pid).memory_info().rss  # type: ignore[union-attr]
        fd = ipc.sealed_memfd(1 << 30)  # 1 GiB that costs the sender nothing
        frames = (1 << 30) // x[0].nbytes
        big = np.lib.stride_tricks.as_strided(x, (frames, *x.shape[1:]), (0, *x.strides[1:]))
        _infer_shm(raw, 1, session, big, fd)
        answer = raw.recv()
        assert answer.error.status == dpb.BAD_INPUT
        assert "over 1048576 bytes" in answer.error.message
        # A small tensor in the same huge memfd: the memfd itself is over the limit.
        _infer_shm(raw, 2, session, x, fd)
        answer = raw.recv()
        assert answer.error.status == dpb.BAD_INPUT and "over the 1048576-byte limit" in (
            answer.error.message
        )
        os.close(fd)
        grown = psutil.Process(daemon.proc.pid).memory_info().rss - rss  # type: ignore[union-attr]
        assert grown < 64 << 20, f"daemon RSS grew by {grown >> 20} MiB"
        _still_serves(daemon)


# --------------------------------------------------------------- buffers
def test_a_client_that_never_reads_cannot_grow_the_daemon(tmp_path: Path) -> None:
    blob = os.urandom(4 << 20)
    with Akidad(tmp_path, "--config", _config(tmp_path, max_write_buffer=1 << 20)) as daemon:
        with Client(daemon.socket) as c:
            c.put_state("big.bin", blob)
        proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
        rss = proc.memory_info().rss
        raw = RawConnection(daemon.socket)
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        requests = 100  # 400 MiB of answers if the daemon buffered them all
        sender = socket.socket(fileno=os.dup(raw.sock.fileno()))
        sender.setblocking(False)
        payload = b""
        for rid in range(1, requests + 1):
            req = dpb.Request(id=rid)
            req.get_state.key = "big.bin"
            payload += ipc.encode_frame(req)
        sent = 0
        deadline = time.monotonic() + 5
        while sent < len(payload) and time.monotonic() < deadline:
            try:
                sent += sender.send(payload[sent:])
            except BlockingIOError:
                time.sleep(0.05)  # the daemon stopped reading us: that is the point
        time.sleep(0.5)
        grown = proc.memory_info().rss - rss
        assert grown < 48 << 20, (
            f"daemon RSS grew by {grown >> 20} MiB for a client that never reads"
        )
        _still_serves(daemon)  # others are served meanwhile
        sender.setblocking(True)
        sender.sendall(payload[sent:])
        for rid in range(1, requests + 1):  # and nothing of the reader's was lost
            answer = raw.recv()
            assert answer.id == rid and answer.state.data == blob
        sender.close()


def test_half_sent_frames_are_bounded_in_total(tmp_path: Path) -> None:
    cfg = _config(tmp_path, max_read_buffer_total=4 << 20)
    with Akidad(tmp_path, "--config", cfg) as daemon:
        conns = [RawConnection(daemon.socket) for _ in range(3)]
        for conn in conns:  # each announces 4 MiB and sends 1.5 MiB of it
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # hung up on
                conn.send_bytes(ipc.LENGTH.pack(4 << 20) + b"\x0a" * (3 << 19))
        refused = []
        for conn in conns:
            conn.sock.settimeout(2)
            try:
                answer = conn.recv()
            except TimeoutError:
                continue
            refused.append(answer)
        assert len(refused) == 1, refused
        assert refused[0].error.status == dpb.BAD_FRAME
        assert "read buffers are full" in refused[0].error.message
        _still_serves(daemon)


# ------------------------------------------------------- dead and many clients
def test_a_dead_client_frees_its_queued_memfds_at_once(tmp_path: Path) -> None:
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 64, 2)
    with Akidad(tmp_path) as daemon:
        proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
        fds_before = proc.num_fds()
        raw = RawConnection(daemon.socket)
        session = _load(raw, model.to_bytes()).loaded.session
        mine = []
        for rid in range(1, 41):  # queued behind each other, 10 min deadlines each
            fd = ipc.sealed_memfd(x.nbytes)
            os.pwrite(fd, x.tobytes(), 0)
            head, _ = tf.infer_parts(rid, session, x, in_shm=True, output_to_shm=True,
                                     timeout_ms=600_000)  # fmt: skip
            ipc.send_frame(raw.sock, head, b"", (fd,))
            mine.append(fd)
        deadline = time.monotonic() + 10
        while proc.num_fds() < fds_before + 10:
            assert time.monotonic() < deadline, "the daemon never held the memfds"
            time.sleep(0.01)
        for fd in mine:
            os.close(fd)
        raw.close()  # the client dies with 40 requests queued
        deadline = time.monotonic() + 2
        while proc.num_fds() > fds_before + 2:
            assert time.monotonic() < deadline, (
                f"{proc.num_fds() - fds_before} descriptors still held after the client died"
            )
            time.sleep(0.02)
        maps = [m for m in proc.memory_maps(grouped=False) if "akida-tensor" in m.path]
        assert len(maps) <= 1, maps  # at most the one the running batch had
        _still_serves(daemon)


def test_a_deadline_over_the_cap_is_refused(tmp_path: Path) -> None:
    model = tiny_model()
    x = random_input(model, 1, 0)
    cfg = _config(tmp_path, max_timeout_ms=5000)
    with Akidad(tmp_path, "--config", cfg) as daemon, Client(daemon.socket, timeout=6) as c:
        remote = c.load(model)
        with pytest.raises(RemoteError, match="timeout_ms 6000 is over max_timeout_ms 5000"):
            remote.forward(x)


def test_connections_are_capped_per_uid_and_the_loop_does_not_spin_out_of_fds(
    tmp_path: Path,
) -> None:
    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    cfg = _config(tmp_path, max_connections_per_uid=20, max_connections=1000)
    daemon = Akidad(tmp_path, "--config", cfg)
    daemon.start(preexec_fn=low_fd_limit)
    try:
        conns = [RawConnection(daemon.socket) for _ in range(20)]
        extra = RawConnection(daemon.socket)
        answer = extra.recv()
        assert answer.error.status == dpb.QUOTA_EXCEEDED and "max_connections_per_uid" in (
            answer.error.message
        )
        _hello(conns[0])  # the first 20 still work
        for conn in conns:
            conn.close()
        # Now exhaust the daemon's 64 descriptors with connections under the uid cap.
        cfg2 = _config(tmp_path, max_connections_per_uid=500, max_connections=1000)
        Path(cfg).write_text(Path(cfg2).read_text())
        daemon.signal(__import__("signal").SIGHUP)
        time.sleep(0.5)
        flood = []
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(daemon.socket))
            flood.append(s)
        proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
        proc.cpu_percent()
        time.sleep(1.0)
        assert proc.cpu_percent() < 50, "the accept loop spins on EMFILE"
        assert 1 <= daemon.log().count("accept failed") <= 2, "EMFILE floods the log"
        for s in flood:
            s.close()
        time.sleep(0.5)
        _still_serves(daemon)
    finally:
        daemon.__exit__()


# ------------------------------------------------------------------ quotas
def test_sessions_per_client_and_state_per_uid_are_limited_and_state_can_be_deleted(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, max_sessions_per_client=2, max_state_keys_per_uid=2,
                  max_state_bytes_per_uid=1000)  # fmt: skip
    with Akidad(tmp_path, "--config", cfg) as daemon, Client(daemon.socket, retry_s=0) as c:
        first = c.load(tiny_model(0))
        c.load(tiny_model(1))
        with pytest.raises(RemoteError) as info:
            c.load(tiny_model(2))
        assert info.value.status_name == "QUOTA_EXCEEDED"
        first.unload()
        c.load(tiny_model(2))  # unloading freed one
        c.put_state("a", b"1")
        c.put_state("b", b"2")
        with pytest.raises(RemoteError, match=r"QUOTA_EXCEEDED.*2 keys"):
            c.put_state("c", b"3")
        with pytest.raises(RemoteError, match=r"QUOTA_EXCEEDED.*1000 bytes"):
            c.put_state("b", b"x" * 1001)
        c.delete_state("a")
        with pytest.raises(RemoteError, match="NOT_FOUND"):
            c.get_state("a")
        with pytest.raises(RemoteError, match="NOT_FOUND"):
            c.delete_state("a")
        c.put_state("c", b"3")
        assert c.get_state("c") == b"3" and c.get_state("b") == b"2"
    assert not (tmp_path / "state" / "users" / str(os.getuid()) / "a").exists()


# ---------------------------------------------------------------- programs
def test_a_header_naming_a_loaded_program_gets_nothing(tmp_path: Path) -> None:
    model = tiny_model()
    program = model.to_bytes()
    x = random_input(model, 1, 0)
    with Akidad(tmp_path) as daemon, Client(daemon.socket, retry_s=0) as owner:
        remote = owner.load(model)
        raw = RawConnection(daemon.socket)
        answer = _load(raw, program[: fmt.HEADER.size])  # the hash alone, no payload
        assert answer.error.status == dpb.BAD_PROGRAM and "truncated" in answer.error.message
        forged = program[: fmt.HEADER.size] + b"\x00" * (len(program) - fmt.HEADER.size)
        answer = _load(raw, forged, 2)  # the hash and a payload of the right length
        assert answer.error.status == dpb.BAD_PROGRAM and "hash" in answer.error.message
        assert np.array_equal(remote.forward(x), model.forward(x))


def test_a_program_with_an_overflowing_shape_is_answered(tmp_path: Path) -> None:
    from akida_rt.format.proto import program_pb2 as pb

    model = tiny_model()
    message = pb.Program()
    message.ParseFromString(model.to_bytes()[fmt.HEADER.size :])
    tensor = next(t for layer in message.layers for t in _tensors(layer))
    tensor.shape[:] = [65536] * 4
    tensor.data = b""
    bad = fmt.pack(message)
    with Akidad(tmp_path) as daemon:
        raw = RawConnection(daemon.socket)
        raw.sock.settimeout(10)
        answer = _load(raw, bad)
        assert answer.error.status == dpb.BAD_PROGRAM, answer
        _still_serves(daemon)


def _tensors(layer: object) -> list:
    from akida_rt.format.proto import program_pb2 as pb

    return [
        getattr(layer, f.name)
        for f in layer.DESCRIPTOR.fields  # type: ignore[attr-defined]
        if f.message_type is pb.Tensor.DESCRIPTOR and layer.HasField(f.name)  # type: ignore[attr-defined]
    ]


# ------------------------------------------------------------- the socket
@ROOT_ONLY
def test_the_daemon_refuses_a_socket_directory_it_does_not_own_or_that_is_not_0700(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "run"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)  # another user made it first
    daemon = Akidad(tmp_path)
    assert daemon.start_outcome() == 1
    assert "unsafe socket directory" in daemon.log() and "65534" in daemon.log()
    os.chown(planted, 0, 0)
    planted.chmod(0o755)
    daemon = Akidad(tmp_path)
    assert daemon.start_outcome() == 1
    assert "mode 0700" in daemon.log()
    planted.chmod(0o700)
    daemon = Akidad(tmp_path)
    assert daemon.start_outcome() is None
    daemon.__exit__()


@ROOT_ONLY
@pytest.mark.parametrize("planted_dir", [True, False], ids=["planted-dir", "foreign-server"])
def test_the_client_sends_nothing_to_a_server_of_another_user(
    tmp_path: Path, planted_dir: bool
) -> None:
    """Another user serves the socket, in a directory it made (the /tmp fallback
    hijack) or in ours: the client refuses before it sends a byte."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    if planted_dir:
        os.chown(folder, 65534, 65534)
    path = folder / "akida.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the impostor: listens as uid 65534 and reports what it receives
        try:
            os.setgid(65534)
            os.setuid(65534)
            listener.listen(1)
            os.write(write, b"L")
            listener.settimeout(5)
            try:
                conn, _ = listener.accept()
                conn.settimeout(2)
                got = conn.recv(1 << 16)
            except OSError:
                got = b""
            os.write(write, b"%d" % len(got))
        finally:
            os._exit(0)
    os.close(write)
    listener.close()
    assert os.read(read, 1) == b"L"
    with pytest.raises(DaemonError) as info:
        Client(path, retry_s=0)
    assert status_of(info.value) == dpb.PERMISSION_DENIED
    assert "65534" in str(info.value)
    os.waitpid(pid, 0)
    assert os.read(read, 16) in (b"", b"0"), "the client sent bytes to the impostor"
    os.close(read)


def test_sigterm_ends_the_daemon_within_drain_timeout_while_a_device_is_busy(
    tmp_path: Path,
) -> None:
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 16000, 3)  # several seconds of device work in one batch
    cfg = _config(tmp_path, drain_timeout_s=1.0, max_batch_frames=16000)
    with Akidad(tmp_path, "--config", cfg) as daemon:
        raw = RawConnection(daemon.socket)
        session = _load(raw, model.to_bytes()).loaded.session
        fd = ipc.sealed_memfd(x.nbytes)
        os.pwrite(fd, x.tobytes(), 0)
        _infer_shm(raw, 2, session, x, fd)
        os.close(fd)
        time.sleep(0.5)  # the batch is running
        start = time.monotonic()
        daemon.signal(__import__("signal").SIGTERM)
        assert daemon.proc is not None
        assert daemon.proc.wait(10) == 0
        took = time.monotonic() - start
        assert took < 2.5, f"akidad took {took:.1f} s to stop with drain_timeout_s = 1"
        assert "abandoned" in daemon.log()


def test_rehashed_mutated_programs_get_bad_program_or_load(tmp_path: Path) -> None:
    """Valid header and hash over a mutated payload: every load is answered, with a
    session or BAD_PROGRAM (never INTERNAL), and the daemon keeps serving."""
    payload = bytearray(zoo.digits_cnn(seed=0).to_bytes()[fmt.HEADER.size :])
    rng = np.random.default_rng(12)
    with Akidad(tmp_path) as daemon:
        raw = RawConnection(daemon.socket)
        for rid in range(1, 81):
            mutated = bytearray(payload)
            for at in rng.integers(0, len(mutated), int(rng.integers(1, 4))):
                mutated[at] = int(rng.integers(0, 256))
            if rid % 4 == 0:
                mutated = mutated[: int(rng.integers(1, len(mutated)))]
            answer = _load(raw, fmt.pack_payload(bytes(mutated), mapped=False), rid)
            assert answer.id == rid
            kind = answer.WhichOneof("body")
            assert kind == "loaded" or answer.error.status == dpb.BAD_PROGRAM, answer
        _still_serves(daemon)


def test_the_inputs_a_client_keeps_queued_are_bounded(tmp_path: Path) -> None:
    """40 requests of 4 MiB each, pipelined: past max_queued_bytes the daemon refuses with
    TOO_MANY_REQUESTS instead of holding them, answers every one, and loses nothing."""
    model = _image_model()  # 4 MiB in 606 frames: the simulated chip computes each one
    x = random_input(model, (4 << 20) // (48 * 48 * 3), 9)
    cfg = _config(tmp_path, max_queued_bytes=16 << 20)
    with Akidad(tmp_path, "--config", cfg) as daemon:
        raw = RawConnection(daemon.socket)
        session = _load(raw, model.to_bytes()).loaded.session
        proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
        warm = ipc.sealed_memfd(x[:1].nbytes)  # maps the program, imports the device path
        os.pwrite(warm, x[:1].tobytes(), 0)
        _infer_shm(raw, 100, session, x[:1], warm)
        raw.recv_any()
        os.close(warm)
        rss = proc.memory_info().rss
        fds = []
        for rid in range(1, 41):
            fd = ipc.sealed_memfd(x.nbytes)
            os.pwrite(fd, x.tobytes(), 0)
            _infer_shm(raw, rid, session, x, fd)
            fds.append(fd)
        answers = {}
        for _ in range(40):
            a = raw.recv_any()
            answers[a.id] = a
        grown = proc.memory_info().rss - rss
        assert sorted(answers) == list(range(1, 41))
        refused = [a for a in answers.values() if isinstance(a, dpb.Response)]
        assert refused and all(a.error.status == dpb.TOO_MANY_REQUESTS for a in refused)
        assert all("max_queued_bytes" in a.error.message for a in refused)
        assert len(refused) < 40  # the first ones were served
        assert grown < 64 << 20, f"daemon RSS grew by {grown >> 20} MiB"
        for fd in fds:
            os.close(fd)


def _image_model():
    from akida_rt.format.layer_kinds import FullyConnected, InputConv2D
    from akida_rt.format.layer_params import Pooling
    from akida_rt.model.model import Model

    model = Model(name="image")
    model.add(InputConv2D("conv", (48, 48, 3), 2, 3, stride=2, pooling=Pooling.Max, pool_size=4,
                          pool_stride=4, weight_bits=8, activation_bits=4))  # fmt: skip
    model.add(FullyConnected("fc", 3, weight_bits=4, activation=False))
    return zoo.randomize(model, 5, v1=True)
