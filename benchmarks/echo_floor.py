"""The floor under akidad's added latency on this machine: a bare Python echo over a Unix
socket, both ends asleep in recv between messages (akidad's default, blocking mode).

The server runs in a separate process, reads a request of a fixed size and answers with
its first bytes. daemon_overhead.py measures it interleaved with the daemon, sized like
the daemon's request and answer; run alone, it prints its median and p90 round trip with
the caller running the digits program embedded between calls (as the overhead benchmark
does, so caches and sleep states match):
    .venv/bin/python benchmarks/echo_floor.py [--requests N]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Callable, Iterator

import numpy as np
from daemon_common import connect_unix, measure_alone, server_process


def _recv_exactly(conn: socket.socket, buf: memoryview) -> bool:
    """Fill `buf` from `conn`; False if the peer closed first."""
    got = 0
    while got < len(buf):
        n = conn.recv_into(buf[got:])
        if not n:
            return False
        got += n
    return True


def serve(path: str, request: int, answer: int, forward: int = 0) -> None:
    """Echo; with `forward`, first run the digits program (mapped on a simulated AKD1000
    in this process) on the request's tensor, as the least any model server must do."""
    run: Callable[[memoryview], object] = lambda buf: None  # noqa: E731
    if forward:
        from akida_rt import devices
        from akida_rt.model import zoo

        model = zoo.digits_cnn(seed=0)
        model.map(devices()[0])
        shape, size = (1, *model.input_shape), int(np.prod(model.input_shape))
        run = lambda buf: model.forward(np.frombuffer(buf, np.uint8, size).reshape(shape))  # noqa: E731
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    conn, _ = listener.accept()
    buf = memoryview(bytearray(request))
    while _recv_exactly(conn, buf):
        run(buf)
        conn.sendall(buf[:answer])


@contextlib.contextmanager
def echo_server(request: int, answer: int, forward: bool = False) -> Iterator[Callable[[], None]]:
    """Yield a function doing one round trip: `request` bytes out, `answer` bytes back
    (with `forward`, the server runs the digits program on the request first)."""
    sizes = (str(request), str(answer), str(int(forward)))
    with server_process(__file__, *sizes) as (path, proc):
        sock = connect_unix(path, proc)
        message = b"x" * request
        back = memoryview(bytearray(answer))

        def call() -> None:
            sock.sendall(message)
            if not _recv_exactly(sock, back):
                raise ConnectionError("the echo server went away")

        try:
            yield call
        finally:
            sock.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("sizes", nargs="*", type=int, help=argparse.SUPPRESS)
    p.add_argument("--requests", type=int, default=1000)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, *args.sizes)
        return 0
    measure_alone("echo floor", echo_server, args.requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
