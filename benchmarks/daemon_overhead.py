"""Added latency of akidad: the digits program at batch 1 through the daemon vs embedded
(the same program mapped in-process on a simulated AKD1000). Target: median added <= 100 us.

Calls alternate (daemon, embedded, daemon, ...) so machine noise hits both alike.
Run: .venv/bin/python benchmarks/daemon_overhead.py [--requests N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from daemon_common import print_table, user_daemon

from akida_rt import devices, zoo
from akida_rt.client import Client


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1000)
    args = p.parse_args()
    model = zoo.digits_cnn(seed=0)
    embedded = zoo.digits_cnn(seed=0)
    embedded.map(devices()[0])
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 1), dtype=np.uint8)
    with user_daemon() as sock, Client(sock, name="overhead") as client:
        remote = client.load(model)
        assert np.array_equal(remote.forward(x), embedded.forward(x))
        for _ in range(50):
            remote.forward(x)
            embedded.forward(x)
        d, e, run = np.empty(args.requests), np.empty(args.requests), np.empty(args.requests)
        for i in range(args.requests):
            t0 = time.perf_counter()
            remote.forward(x)
            t1 = time.perf_counter()
            embedded.forward(x)
            e[i], d[i], run[i] = time.perf_counter() - t1, t1 - t0, remote.last_run_s
    added = (np.median(d) - np.median(e)) * 1e6
    outside = np.median(d - run) * 1e6  # time not spent in the forward itself: robust to noise
    print_table(
        f"daemon overhead: digits_cnn, batch 1, {args.requests} interleaved pairs",
        [
            ("embedded median", f"{np.median(e) * 1e6:8.1f} us"),
            ("daemon median", f"{np.median(d) * 1e6:8.1f} us"),
            ("added (median daemon - median embedded)", f"{added:8.1f} us"),
            (
                "daemon round trip - daemon's forward time (median)",
                f"{np.median(d - run) * 1e6:8.1f} us",
            ),
            (
                "daemon p90 / embedded p90",
                f"{np.percentile(d, 90) * 1e6:8.1f} / {np.percentile(e, 90) * 1e6:.1f} us",
            ),
            (
                "target (judged on the round trip - forward time)",
                "<= 100 us: " + ("met" if max(outside, added) <= 100 else "NOT met"),
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
