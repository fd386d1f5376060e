"""A soak of akidad under mixed clients and the issue-30 attacks: RSS, descriptors and
threads of the daemon sampled every 10 s (one CSV line each), for --minutes.

Workload, all at once: inference clients of several priorities, a learner, clients that
are SIGKILLed mid-request, a tenant that leaves partial frames, a client that never reads
its answers, and slow metrics connections.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from akida_rt.client.client import Client  # noqa: E402
from akida_rt.wire import ipc  # noqa: E402
from akida_rt.wire.proto import daemon_pb2 as dpb  # noqa: E402
from tests.daemon_harness import Akidad, RawConnection, random_input, tiny_model  # noqa: E402
from tests.learning_models import images, learnable_cnn  # noqa: E402

KILLED_CLIENT = """
import sys, numpy as np
from akida_rt.client.client import Client
from tests.daemon_harness import tiny_model, random_input
m = tiny_model(5)
with Client(sys.argv[1], retry_s=5) as c:
    r = c.load(m)
    while True:
        r.forward(random_input(m, 64, 1))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("soak.csv"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    tenant = tmp / "tenants" / "a"
    tenant.mkdir(parents=True)
    (tenant / "tenant").write_text("1000000001\n")
    (tmp / "akidad.toml").write_text(
        "partial_frame_timeout_s = 3.0\nmax_write_buffer = 1048576\n"
        "max_write_buffer_per_uid = 8388608\n"
    )
    daemon = Akidad(tmp, "--config", str(tmp / "akidad.toml"), "--tenant-dir",
                    str(tmp / "tenants"), "--metrics", "127.0.0.1:0", "--simulated", "2")  # fmt: skip
    daemon.start()
    port = int(re.search(r"127\.0\.0\.1:(\d+)/metrics", daemon.log()).group(1))
    proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
    stop = threading.Event()
    counts = {"answers": 0, "wrong": 0, "errors": 0, "fits": 0, "kills": 0, "attacks": 0}

    def inference(priority: int) -> None:
        model = tiny_model(priority)
        with Client(daemon.socket, priority=priority, retry_s=5, timeout=60) as c:
            remote = c.load(model)
            while not stop.is_set():
                x = random_input(model, random.choice((1, 8, 64, 3000)), priority)
                try:
                    ok = np.array_equal(remote.forward(x), model.forward(x))
                    counts["answers" if ok else "wrong"] += 1
                except Exception:
                    counts["errors"] += 1

    def learner() -> None:
        with Client(daemon.socket, retry_s=5, timeout=60) as c:
            remote = c.load(learnable_cnn(seed=1), device="sim://akd1000/1")
            while not stop.is_set():
                remote.fit(images(counts["fits"], 16), np.arange(16) % 4)
                counts["fits"] += 1

    def killer() -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        while not stop.is_set():
            child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(daemon.socket)],
                                     env=env, stderr=subprocess.DEVNULL)  # fmt: skip
            stop.wait(random.uniform(1.5, 3.0))
            child.send_signal(signal.SIGKILL)
            child.wait()
            counts["kills"] += 1

    def attacker() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                raws = [RawConnection(tenant / "akida.sock") for _ in range(3)]
                for raw in raws:  # partial frames, dropped after 3 s
                    raw.send_bytes(ipc.LENGTH.pack(32 << 20) + b"\x0a" * (2 << 20))
                deaf = RawConnection(tenant / "akida.sock")  # never reads its answers
                req = dpb.Request(id=1)
                req.list_devices.SetInParent()
                deaf.send_bytes(ipc.encode_frame(req) * 2000)
                slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
                for s in slow:
                    s.sendall(b"GET /metrics HTTP/1.0\r\n")
                counts["attacks"] += 1
                stop.wait(5.0)
                for c in [*raws, deaf]:
                    c.close()
                for s in slow:
                    s.close()

    threads = [threading.Thread(target=inference, args=(p,)) for p in (0, 3, 7)]
    threads += [threading.Thread(target=f) for f in (learner, killer, attacker)]
    for t in threads:
        t.start()
    start = time.monotonic()
    with open(args.out, "w") as out:
        out.write("t_s,rss_mib,fds,threads,answers,wrong,errors,fits,kills,attacks\n")
        while time.monotonic() - start < args.minutes * 60:
            row = [f"{time.monotonic() - start:.0f}", f"{proc.memory_info().rss / 2**20:.1f}",
                   str(proc.num_fds()), str(proc.num_threads()),
                   *(str(counts[k]) for k in ("answers", "wrong", "errors", "fits", "kills",
                                              "attacks"))]  # fmt: skip
            out.write(",".join(row) + "\n")
            out.flush()
            time.sleep(10)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
