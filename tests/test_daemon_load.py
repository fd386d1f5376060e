"""akidad under load and crashes: 16 clients x 2,000 requests bit-identical to the embedded
result, kill -9 of a client mid-stream, kill -9 and restart of the daemon, SIGTERM drain.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from akida_rt.client.client import Client
from tests.daemon_harness import Akidad, random_input, tiny_model

CLIENTS = 16
REQUESTS = 2000
WINDOW = 25


def _run_client(path: Path, program: bytes, x: np.ndarray, out: list, errors: list) -> None:
    try:
        with Client(path, name="load", retry_s=5) as client:
            remote = client.load(program)
            got = []
            for i in range(0, len(x), WINDOW):
                got += remote.forward_many([x[j : j + 1] for j in range(i, i + WINDOW)])
            out.append(np.concatenate(got))
    except Exception as exc:  # reported by the main thread
        errors.append(exc)


def test_sixteen_clients_two_thousand_requests_each_bit_identical(tmp_path: Path) -> None:
    model = tiny_model(seed=3)
    program = model.to_bytes()
    inputs = [random_input(model, REQUESTS, seed=100 + c) for c in range(CLIENTS)]
    expected = [model.forward(x) for x in inputs]  # the embedded, in-process result
    with Akidad(tmp_path) as daemon:
        results: list[list[np.ndarray]] = [[] for _ in range(CLIENTS)]
        errors: list[Exception] = []
        threads = [
            threading.Thread(
                target=_run_client, args=(daemon.socket, program, inputs[c], results[c], errors)
            )
            for c in range(CLIENTS)
        ]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - start
        assert not errors, errors[:3]
        for c in range(CLIENTS):
            assert len(results[c]) == 1, f"client {c} got no answers"
            assert results[c][0].shape == expected[c].shape
            assert np.array_equal(results[c][0], expected[c]), f"client {c} got a wrong answer"
        with Client(daemon.socket) as probe:
            stats = probe.stats()
        frames = sum(d["meter"]["frames"] for d in stats["devices"])
        assert frames == CLIENTS * REQUESTS
        assert daemon.stop() == 0
    print(f"{CLIENTS * REQUESTS} requests in {elapsed:.1f}s")


CLIENT_SCRIPT = """
import sys, numpy as np
from akida_rt.client.client import Client
from tests.daemon_harness import tiny_model, random_input
m = tiny_model(seed=1)
c = Client(sys.argv[1], name="victim")
r = c.load(m)
x = random_input(m, 1, 0)
print("ready", flush=True)
while True:
    r.forward_many([x] * 32)
"""


def test_kill9_client_mid_stream_releases_its_sessions_within_2s(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    with Akidad(tmp_path) as daemon:
        victim = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, str(daemon.socket)],
                                  stdout=subprocess.PIPE, cwd=root)  # fmt: skip
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == b"ready"
        with Client(daemon.socket, name="observer") as obs:
            deadline = time.monotonic() + 10
            while not any(c["name"] == "victim" and c["meter"]["frames"] > 100
                          for c in obs.stats()["clients"]):  # fmt: skip
                assert time.monotonic() < deadline
                time.sleep(0.05)
            victim.kill()
            victim.wait()
            killed = time.monotonic()
            while True:
                stats = obs.stats()
                gone = not any(c["name"] == "victim" for c in stats["clients"])
                if gone and stats["sessions"] == 0 and stats["outstanding"] == 0:
                    break
                assert time.monotonic() - killed < 2.0, stats
                time.sleep(0.02)
            # and the daemon still serves everyone else
            model = tiny_model(seed=2)
            x = random_input(model, 3, 5)
            assert np.array_equal(obs.load(model).forward(x), model.forward(x))


def test_kill9_daemon_then_restart_clients_reconnect_and_retry(tmp_path: Path) -> None:
    model = tiny_model(seed=4)
    x = random_input(model, 2, 9)
    daemon = Akidad(tmp_path).start()
    try:
        client = Client(daemon.socket, name="survivor", retry_s=30)
        remote = client.load(model)
        assert np.array_equal(remote.forward(x), model.forward(x))
        old_session = remote.session
        daemon.kill9()
        restarter = threading.Timer(0.3, daemon.start, kwargs={"wait": False})
        restarter.start()
        got = remote.forward(x)  # fails over the dead socket, reconnects, reloads, retries
        restarter.join()
        assert np.array_equal(got, model.forward(x))
        assert client.reconnects >= 1
        assert remote.session != old_session
        client.close()
    finally:
        daemon.__exit__()


def test_sigterm_completes_requests_in_flight(tmp_path: Path) -> None:
    """Every request a client sent before SIGTERM is served, including those akidad had
    not read yet: they were in its socket, in flight, not new work."""
    from akida_rt.model import zoo

    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 4, 1)
    expected = model.forward(x)
    with Akidad(tmp_path) as daemon:
        with Client(daemon.socket, retry_s=0) as client:
            remote = client.load(model)
            handles = {client.submit(remote, x) for _ in range(64)}  # all on the wire
            with Client(daemon.socket, retry_s=0) as observer:
                deadline = time.monotonic() + 10
                while observer.stats()["outstanding"] < 2:
                    assert time.monotonic() < deadline, "requests never queued"
                    time.sleep(0.002)
            daemon.signal(signal.SIGTERM)
            answers: list = []
            deadline = time.monotonic() + 60
            while len(answers) < len(handles) and time.monotonic() < deadline:
                answers.extend(client.collect(wait=1.0))
            assert daemon.proc is not None
            assert daemon.proc.wait(30) == 0
        assert {a.handle for a in answers} == handles
        assert [a.error for a in answers if a.error is not None] == []
        assert all(np.array_equal(a.y, expected) for a in answers)
        log = daemon.log()
        assert "draining:" in log and "abandoned" not in log
        drained = int(log.split("draining: ")[1].split()[0])
        assert drained > 0, "SIGTERM arrived with nothing in flight; the test proved nothing"


@pytest.mark.parametrize("count", [2])
def test_requests_spread_across_devices(tmp_path: Path, count: int) -> None:
    from akida_rt.model import zoo

    model = zoo.digits_cnn(seed=0)
    with Akidad(tmp_path, "--simulated", str(count),
                *[f"--device=sim://akd1000/{i}" for i in range(count)]) as daemon:  # fmt: skip
        errors: list[Exception] = []

        def work(seed: int) -> None:
            try:
                with Client(daemon.socket) as c:
                    r = c.load(model)
                    x = random_input(model, 1, seed)
                    for _ in range(40):
                        assert np.array_equal(r.forward(x), model.forward(x))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        with Client(daemon.socket) as c:
            stats = c.stats()
        assert len(stats["devices"]) == count
        assert all(d["meter"]["frames"] > 0 for d in stats["devices"]), stats["devices"]
