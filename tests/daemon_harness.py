"""Runs a real akidad as a child process on a real Unix socket for the daemon tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from akida_rt.format.layer_kinds import FullyConnected, InputConv2D
from akida_rt.model import zoo
from akida_rt.model.model import Model
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(seed: int = 0) -> Model:
    """A two-layer model that runs in tens of microseconds (load tests)."""
    model = Model(name="tiny")
    model.add(InputConv2D("conv_0", (6, 6, 1), 4, 3, weight_bits=8, activation_bits=4))
    model.add(FullyConnected("dense", 3, weight_bits=4, activation=False))
    return zoo.randomize(model, seed, v1=True)


def daemon_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(key, None)
    env.update(extra)
    return env


class Akidad:
    """akidad in user mode with its socket and state under `tmp`."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.socket = tmp / "run" / "akida.sock"
        self.state = tmp / "state"
        self.args = list(args)
        self.env = env or daemon_env()
        self.log_path = tmp / f"akidad-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "akida_rt.daemon", "--user", "--socket", str(self.socket),
                "--state-dir", str(self.state), *self.args]  # fmt: skip

    def start(self, wait: bool = True, **popen: Any) -> Akidad:
        self.log_path = self.tmp / f"akidad-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env, **popen
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"akidad exited {self.proc.returncode}:\n{self.log()}")
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.socket))
                    return
                except OSError:
                    time.sleep(0.05)
        raise AssertionError(f"akidad not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"akidad ignored SIGTERM:\n{self.log()}") from None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def start_outcome(self, timeout: float = 30.0) -> int | None:
        """Start akidad and return its exit status if it exits before serving (a refused
        configuration), or None once it serves its socket (the caller then stops it)."""
        self.start(wait=False)
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.socket))
                    return None
                except OSError:
                    time.sleep(0.05)
        raise AssertionError(f"akidad neither served nor exited in {timeout}s:\n{self.log()}")

    def __enter__(self) -> Akidad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class RawConnection:
    """A bare socket speaking frames, to send what the client library never would."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.buf = bytearray()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, frame: bytes, fds: Sequence[int] = ()) -> None:
        """Send already framed bytes with one sendmsg, `fds` riding on it (SCM_RIGHTS),
        so the daemon pairs the descriptors with this frame."""
        ipc.send_frame(self.sock, frame, b"", fds)

    def send(self, req: Any, fds: Sequence[int] | None = None) -> None:
        ipc.send_frame(self.sock, ipc.encode_frame(req), fds=fds or ())

    def recv_payload(self) -> bytes:
        """The next whole frame payload, undecoded: a tensor frame (first byte 0) or a
        protobuf Response."""
        while (payload := ipc.take_frame(self.buf, 1 << 30)) is None:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("daemon closed the connection")
            self.buf += chunk
        return payload

    def recv(self) -> Any:
        """The next answer, which must be a protobuf Response."""
        payload = self.recv_payload()
        assert not tf.is_tensor_frame(payload), "expected a protobuf Response, got a tensor frame"
        return ipc.decode_response(payload)

    def recv_any(self) -> dpb.Response | tf.ResultFrame:
        """The next answer: a protobuf Response or a decoded result tensor frame."""
        payload = self.recv_payload()
        if tf.is_tensor_frame(payload):
            return tf.decode_result(payload)
        return ipc.decode_response(payload)

    def load(self, program: bytes, req_id: int = 1) -> dpb.Loaded:
        """Load a program on this connection; its Loaded reply."""
        req = dpb.Request(id=req_id)
        req.load.program = program
        self.send(req)
        resp = self.recv()
        assert resp.id == req_id and resp.WhichOneof("body") == "loaded", resp
        return resp.loaded

    def close(self) -> None:
        self.sock.close()


def memfd_holding(data: bytes, size: int | None = None, *, seal: bool = True) -> int:
    """A memfd of `size` bytes (default len(data)) starting with `data`: sealed against
    shrinking and growing like ipc.sealed_memfd's, or unsealed. The caller closes it."""
    size = len(data) if size is None else size
    if seal:
        fd = ipc.sealed_memfd(size)
    else:
        fd = os.memfd_create("akida-test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, max(size, 1))
    os.pwrite(fd, data, 0)
    return fd


def memfd_bytes(fd: int, count: int) -> bytes:
    """The first `count` bytes of a memfd (what the daemon wrote into it, if anything)."""
    return os.pread(fd, count, 0)


def open_memfds(pid: int) -> int:
    """How many memfds process `pid` holds open (a mapped one counts: Python's mmap
    keeps a duplicate descriptor)."""
    count = 0
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(entry).startswith("/memfd:")
        except OSError:
            continue  # closed while listing
    return count


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `check` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def random_input(model: Model, n: int, seed: int) -> np.ndarray:
    hi = 2**model.input_bits
    rng = np.random.default_rng(seed)
    return rng.integers(0, hi, (n, *model.input_shape), dtype=np.uint8)
