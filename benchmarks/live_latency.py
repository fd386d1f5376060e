"""Live-source latency: from an event's time to the model's answer for the frame that
holds it, with a camera on loopback sending a Prophesee EVT3 stream over TCP at 1 and
10 million events a second.

    .venv/bin/python benchmarks/live_latency.py [--seconds S] [--rates 1,10] [--daemon]

The sender (its own process) pre-encodes 1 ms slices of events (320x240 sensor, random
pixels) and writes each when the wall clock reaches its time, so event time t maps to
wall time start + t. The consumer streams `tcp://` with 10 ms windows binned onto the
event model's 34x34 input (`akida stream` options), in this process or through akidad
(--daemon); a frame's latency is its answer's wall time minus start + its window's end
(the newest event it holds): p50/p99 over the frames.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import socket
import time
from pathlib import Path

import numpy as np


def sender(port_q: mp.Queue, start_q: mp.Queue, rate: float, seconds: float) -> None:
    from akida_rt.stream.events import make_events
    from akida_rt.stream.evt3 import encode_evt3
    from akida_rt.stream.prophesee import raw_header

    rng = np.random.default_rng(0)
    n = int(rate * seconds)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n))
    ev = make_events(t, rng.integers(0, 320, n), rng.integers(0, 240, n), rng.integers(0, 2, n))
    cuts = np.searchsorted(t, np.arange(0, int(seconds * 1e6) + 1000, 1000))
    slices = [encode_evt3(ev[a:b]).tobytes() for a, b in itertools.pairwise(cuts)]
    server = socket.create_server(("127.0.0.1", 0))
    port_q.put(server.getsockname()[1])
    conn, _ = server.accept()
    conn.sendall(raw_header(320, 240, "EVT3"))
    start = time.time() + 0.2
    start_q.put(start)
    for k, data in enumerate(slices):
        wait = start + (k + 1) * 1e-3 - time.time()  # slice k holds [k ms, k+1 ms)
        if wait > 0:
            time.sleep(wait)
        conn.sendall(data)
    conn.close()


def run(
    rate_mev: float, seconds: float, program: Path, socket_path: str | None
) -> dict[str, float]:
    from akida_rt.stream.pipeline import Stream
    from akida_rt.stream.runners import connect
    from akida_rt.stream.sources import EventOptions, open_source

    ctx = mp.get_context("spawn")
    port_q, start_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=sender, args=(port_q, start_q, rate_mev * 1e6, seconds))
    proc.start()
    port = port_q.get(timeout=120)
    runner = connect(program, socket=socket_path, embedded=socket_path is None)
    frames = open_source(f"tcp://127.0.0.1:{port}", runner.input_shape, window_us=10_000,
                         options=EventOptions(stall_s=30))  # fmt: skip
    start = start_q.get(timeout=60)
    lat = []
    stream = Stream(runner, frames, window=4, policy="block")
    for r in stream:
        lat.append(time.time() - (start + r.t_us / 1e6))
    runner.close()
    proc.join(10)
    a = np.asarray(lat[5:]) * 1e3  # past the first frames (connection, model load)
    return {"frames": len(lat), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "dropped": stream.stats.dropped}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rates", default="1,10")
    ap.add_argument("--socket", help="an akidad socket (default: in this process)")
    args = ap.parse_args()
    from akida_rt.data import sample_program

    program = sample_program().with_name("dvs_digits_cnn.akp")
    for rate in [float(r) for r in args.rates.split(",")]:
        res = run(rate, args.seconds, program, args.socket)
        print(f"{rate:g} Mev/s: {res['frames']} frames of 10 ms, event time to result p50 "
              f"{res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
