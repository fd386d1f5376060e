"""A reference for akidad's added latency: a Python gRPC unary round trip over a Unix
socket (a `unix:` address), default settings, the server in a separate process.

The server has no model: its one method answers with the first bytes of the request.
Requests and answers are raw bytes through grpc's generic handlers, so no .proto is
compiled. grpcio is a dev dependency, imported only here. daemon_overhead.py measures it
interleaved with the daemon, sized like the daemon's request and answer; run alone:
    .venv/bin/python benchmarks/grpc_floor.py [--requests N]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
from daemon_common import measure_alone, server_process

SERVICE, METHOD = "akida_bench.Echo", "Echo"


def serve(path: str, answer: int) -> None:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request[:answer]

    # No (de)serializers: the method takes and returns bytes as they are.
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), handlers=[handler])
    server.add_insecure_port(f"unix:{path}")
    server.start()
    server.wait_for_termination()


@contextlib.contextmanager
def grpc_server(request: int, answer: int) -> Iterator[Callable[[], None]]:
    """Yield a function doing one unary call: `request` bytes out, `answer` bytes back."""
    with (
        server_process(__file__, str(answer)) as (path, proc),
        grpc.insecure_channel(f"unix:{path}") as channel,
    ):
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
        except grpc.FutureTimeoutError:
            raise RuntimeError(f"the gRPC server did not start (exit code {proc.poll()})") from None
        stub = channel.unary_unary(f"/{SERVICE}/{METHOD}")
        message = b"x" * request

        def call() -> None:
            if len(stub(message)) != answer:
                raise RuntimeError("the gRPC server answered with the wrong size")

        yield call


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("answer", nargs="?", type=int, help=argparse.SUPPRESS)
    p.add_argument("--requests", type=int, default=1000)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.answer)
        return 0
    measure_alone("gRPC round trip", grpc_server, args.requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
