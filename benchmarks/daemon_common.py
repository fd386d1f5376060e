"""Shared by the daemon benchmarks: start a user-mode akidad or a helper server process in
a temp dir, time calls, print tables."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

HEADER = 64  # bytes a request or an answer carries besides its tensor, in the floors


@contextlib.contextmanager
def user_daemon(*args: str) -> Iterator[Path]:
    """Yield the socket path of a fresh `akidad --user` (stopped with SIGTERM after)."""
    with tempfile.TemporaryDirectory(prefix="akidad-bench-") as tmp:
        sock = Path(tmp) / "akida.sock"
        log = open(Path(tmp) / "akidad.log", "wb")  # noqa: SIM115 (outlives this block)
        proc = subprocess.Popen(
            [sys.executable, "-m", "akida_rt.daemon", "--user", "--socket", str(sock),
             "--state-dir", str(Path(tmp) / "state"), "--log-level", "WARNING", *args],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                with socket.socket(socket.AF_UNIX) as probe:
                    try:
                        probe.connect(str(sock))
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError((Path(tmp) / "akidad.log").read_text()) from None
                        time.sleep(0.05)
            yield sock
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


@contextlib.contextmanager
def server_process(script: str, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `script --serve PATH *args` in a separate process; yield PATH (a Unix socket in
    a temp dir, not yet bound when this yields) and the process. Stopped with SIGTERM after."""
    with tempfile.TemporaryDirectory(prefix="akida-floor-") as tmp:
        path = str(Path(tmp) / "floor.sock")
        proc = subprocess.Popen([sys.executable, script, "--serve", path, *args])
        try:
            yield path, proc
        finally:
            proc.terminate()
            proc.wait(30)


def connect_unix(path: str, proc: subprocess.Popen[bytes], within_s: float = 30.0) -> socket.socket:
    """Connect to a server process's Unix socket as soon as it listens."""
    deadline = time.monotonic() + within_s
    while True:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server for {path} did not start") from None
            time.sleep(0.02)


def time_calls(call: Callable[[], object], between: Callable[[], object], n: int) -> np.ndarray:
    """Seconds taken by each of `n` calls of `call`, running `between` (untimed) after each."""
    clock = time.perf_counter
    times = np.empty(n)
    for i in range(n):
        t0 = clock()
        call()
        times[i] = clock() - t0
        between()
    return times


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}\n" + "-" * len(title))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def measure_alone(
    name: str,
    server: Callable[[int, int], contextlib.AbstractContextManager[Callable[[], object]]],
    requests: int,
) -> None:
    """Print the median and p90 round trip of `server` (sized like the digits program's
    request and answer) with the caller running the program embedded between calls."""
    from akida_rt import devices
    from akida_rt.model import zoo

    embedded = zoo.digits_cnn(seed=0)
    embedded.map(devices()[0])
    x = np.zeros(embedded.input_shape, np.uint8)[None]
    y = embedded.forward(x)
    with server(x.nbytes + HEADER, y.nbytes + HEADER) as call:
        time_calls(call, lambda: embedded.forward(x), 100)  # warm-up
        t = time_calls(call, lambda: embedded.forward(x), requests) * 1e6
    print(f"{name}: median {np.median(t):.1f} us, p90 {np.percentile(t, 90):.1f} us")
