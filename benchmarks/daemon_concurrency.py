"""akidad with 8 clients at once: aggregate throughput vs one client alone (digits program,
batch-1 requests, each client waiting for its answer). Target: aggregate >= 90% of one's.

Run: .venv/bin/python benchmarks/daemon_concurrency.py [--seconds S] [--clients N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
from daemon_common import print_table, user_daemon

from akida_rt.client.client import Client
from akida_rt.model import zoo


def _client(sock: Path, seconds: float, start_at: float, out: mp.Queue) -> None:
    model = zoo.digits_cnn(seed=0)
    x = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 1), dtype=np.uint8)
    with Client(sock, name="bench") as client:
        remote = client.load(model)
        remote.forward(x)
        time.sleep(max(0.0, start_at - time.time()))
        done, end = 0, time.time() + seconds
        while time.time() < end:
            remote.forward(x)
            done += 1
    out.put(done)


def run(sock: Path, clients: int, seconds: float) -> float:
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 2.0 + 0.3 * clients  # everyone loaded before the clock starts
    procs = [
        mp.Process(target=_client, args=(sock, seconds, start_at, out)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    with user_daemon() as sock:
        one = run(sock, 1, args.seconds)
        many = run(sock, args.clients, args.seconds)
        with Client(sock) as c:
            dev = c.stats()["devices"][0]
    ratio = many / one
    print_table(
        f"daemon concurrency: digits_cnn batch-1 requests, {args.seconds:g} s per phase",
        [
            ("1 client", f"{one:8.1f} inferences/s"),
            (f"{args.clients} clients (aggregate)", f"{many:8.1f} inferences/s"),
            ("ratio", f"{ratio:8.2f}"),
            ("device batches / frames", f"{dev['meter']['requests']} / {dev['meter']['frames']}"),
            ("target", "ratio >= 0.90: " + ("met" if ratio >= 0.9 else "NOT met")),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
