"""The floor under akidad's added latency on this machine: a bare Python echo over a
Unix socket (1 KiB request, 64-byte answer), with the caller running the embedded forward
between calls as the overhead benchmark does (so caches and sleep states match).

`blocking` sleeps in recv on both ends (akidad's default); `polling` polls both ends
(akidad --busy-poll-us, Client(busy_poll_us=)). Used by daemon_overhead.py; runs alone:
    .venv/bin/python benchmarks/echo_floor.py [--requests N]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def serve(path: str, poll: bool) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    conn, _ = listener.accept()
    conn.setblocking(not poll)
    while True:
        try:
            data = conn.recv(1 << 16)
        except BlockingIOError:
            os.sched_yield()
            continue
        if not data:
            return
        conn.sendall(data[:64])


def floor_us(poll: bool, requests: int, between: Callable[[], object]) -> float:
    """Median echo round trip in microseconds, calling `between` after each."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "echo.sock")
        server = subprocess.Popen([sys.executable, __file__, "--serve", path, *(["--poll"] * poll)])
        try:
            sock = socket.socket(socket.AF_UNIX)
            for _ in range(200):
                try:
                    sock.connect(path)
                    break
                except OSError:
                    time.sleep(0.02)
            sock.setblocking(not poll)
            message, times = b"x" * 1024, np.empty(requests)
            for i in range(requests):
                t = time.perf_counter()
                sock.sendall(message)
                while True:
                    try:
                        sock.recv(1 << 16)
                        break
                    except BlockingIOError:
                        os.sched_yield()
                times[i] = time.perf_counter() - t
                between()
            sock.close()
        finally:
            server.wait(10)
    return float(np.median(times[len(times) // 10 :]) * 1e6)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--poll", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--requests", type=int, default=1000)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.poll)
        return 0
    for poll in (False, True):
        print(
            f"{'polling' if poll else 'blocking'}: {floor_us(poll, args.requests, lambda: time.sleep(0.002)):.1f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
