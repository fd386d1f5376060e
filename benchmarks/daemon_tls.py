"""akidad over mutual TLS on loopback against its Unix socket, in one run: the digits
program at batch 64 (throughput) and batch 1 (latency), the two transports taking turns
in blocks of calls to one daemon. Target: TLS throughput at batch 64 >= 0.8x the Unix
socket's. Over TLS the tensors travel in the frames (a batch of 64 is 64 KiB, which the
Unix socket sends in a memfd).
Run: .venv/bin/python benchmarks/daemon_tls.py [--rounds N]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from daemon_common import print_table, user_daemon

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from akida_rt.client.client import Client
from akida_rt.model import zoo
from tests.tls_certs import CA

BLOCK = 20
TARGET = 0.8


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    model = zoo.digits_cnn(seed=0)
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (64, *model.input_shape), dtype=np.uint8)
    one = batch[:1]
    with tempfile.TemporaryDirectory(prefix="akida-tls-bench-") as tmp:
        ca = CA(Path(tmp))
        cert, key = ca.issue("akidad", server=True)
        ccert, ckey = ca.issue("bench")
        config = Path(tmp) / "akidad.toml"
        config.write_text("[akidad.tls_tenants]\nbench = 20001\n")
        flags = ("--config", str(config), "--listen", "tcp://127.0.0.1:0", "--tls-cert", cert,
                 "--tls-key", key, "--tls-ca", ca.pem, "--log-level", "INFO")  # fmt: skip
        with user_daemon(*flags) as sock:
            log = (sock.parent / "akidad.log").read_text()
            port = re.search(r"mutual-TLS clients on 127\.0\.0\.1:(\d+)", log)
            assert port, log
            url = f"akida+tls://127.0.0.1:{port.group(1)}"
            with Client(sock) as local, Client(url, cert=ccert, key=ckey, ca=ca.pem) as remote:
                models = {"unix": local.load(model), "tls": remote.load(model)}
                expected = model.forward(batch)
                for m in models.values():
                    assert np.array_equal(m.forward(batch), expected)
                times: dict[tuple[str, int], list[float]] = {}
                for r in range(args.rounds):
                    order = list(models.items()) if r % 2 == 0 else list(models.items())[::-1]
                    for name, m in order:
                        for x in (batch, one):
                            for _ in range(BLOCK):
                                t = time.perf_counter()
                                m.forward(x)
                                times.setdefault((name, len(x)), []).append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    fps = {name: 64 / med[(name, 64)] for name in ("unix", "tls")}
    ratio = fps["tls"] / fps["unix"]
    rows = [
        ("batch 64, Unix socket (memfd)", f"{fps['unix']:9.0f} frames/s"),
        ("batch 64, TLS loopback (in frame)", f"{fps['tls']:9.0f} frames/s"),
        ("TLS / Unix throughput", f"{ratio:9.2f}   target >= {TARGET}: "
         f"{'met' if ratio >= TARGET else 'not met'}"),
        ("batch 1 latency, Unix socket", f"{med[('unix', 1)] * 1e6:9.0f} us (median)"),
        ("batch 1 latency, TLS loopback", f"{med[('tls', 1)] * 1e6:9.0f} us (median)"),
    ]  # fmt: skip
    print_table(f"akidad over TLS vs Unix socket: digits_cnn, {args.rounds} rounds", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
