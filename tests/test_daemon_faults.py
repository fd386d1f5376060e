"""Device faults under akidad: a simulator process that dies (an unplugged board) fails
or requeues the affected requests with a clear status, and no client hangs.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from akida_rt.client.client import Client
from akida_rt.errors import RemoteError
from akida_rt.model import zoo
from tests.daemon_harness import Akidad, random_input

URL = "sim://akd1000/{i}?mode=process"


def _simulators(daemon: Akidad) -> list[psutil.Process]:
    assert daemon.proc is not None
    return psutil.Process(daemon.proc.pid).children(recursive=True)


def test_unplugged_device_requeues_to_the_other_and_is_noticed(tmp_path: Path) -> None:
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 2, 7)
    expected = model.forward(x)
    with Akidad(tmp_path, *[f"--device={URL.format(i=i)}" for i in range(2)]) as daemon:
        with Client(daemon.socket, timeout=20) as c:
            remote = c.load(model)
            for _ in range(4):
                assert np.array_equal(remote.forward(x), expected)
            sims = _simulators(daemon)
            assert len(sims) == 2, sims
            sims[0].kill()
            start = time.monotonic()
            results = remote.forward_many([x] * 16)
            assert all(np.array_equal(r, expected) for r in results)
            assert time.monotonic() - start < 20
            deadline = time.monotonic() + 10
            while sum(d["state"] == "ready" for d in c.devices()) != 1:
                assert time.monotonic() < deadline, c.devices()
                time.sleep(0.1)
        assert "lost" in daemon.log()


def test_only_device_unplugged_fails_requests_with_a_clear_status(tmp_path: Path) -> None:
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 1, 2)
    daemon = Akidad(tmp_path, f"--device={URL.format(i=5)}")
    with daemon, Client(daemon.socket, timeout=10, retry_s=0) as c:
        remote = c.load(model)
        assert np.array_equal(remote.forward(x), model.forward(x))
        for sim in _simulators(daemon):
            sim.kill()
        start = time.monotonic()
        with pytest.raises(RemoteError) as info:
            remote.forward(x)
        assert info.value.status_name in ("DEVICE_FAILED", "NO_DEVICE")
        assert "sim://akd1000/5" in str(info.value) or "no device" in str(info.value)
        assert "simulated devices are off" not in str(info.value)
        assert time.monotonic() - start < 15


@pytest.mark.parametrize(
    ("signum", "logged"),
    [(signal.SIGUSR1, "timed out"), (signal.SIGUSR2, "reset itself")],
    ids=["firmware-hang", "spontaneous-reset"],
)
def test_hang_or_reset_is_recovered_and_the_request_completes(
    tmp_path: Path, signum: int, logged: str
) -> None:
    """A hung firmware times out and is reset; a chip that reset itself dropped the command.
    Either way the request is retried, the program reloaded, and the answer is right."""
    config = tmp_path / "akidad.toml"
    config.write_text("device_timeout_scale = 0.05\n")  # command timeouts of ~0.6 s
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 2, 11)
    expected = model.forward(x)
    args = ("--config", str(config), f"--device={URL.format(i=3)}")
    with Akidad(tmp_path, *args) as daemon:
        with Client(daemon.socket, timeout=20, retry_s=0) as c:
            remote = c.load(model)
            for _ in range(2):
                assert np.array_equal(remote.forward(x), expected)
            (sim,) = _simulators(daemon)
            sim.send_signal(signum)
            time.sleep(0.2)  # the signal is handled before the next command arrives
            start = time.monotonic()
            assert np.array_equal(remote.forward(x), expected)
            assert time.monotonic() - start < 10
            assert np.array_equal(remote.forward(x), expected)  # and the device stays usable
            reloads = c.stats()["devices"][0]["driver"]["reloads"]
            assert reloads >= 2  # the program was loaded again after the fault
        assert logged in daemon.log() and "requeueing" in daemon.log()


def _simulator_of(daemon: Akidad, url: str) -> psutil.Process:
    for line in daemon.log().splitlines():
        if f"{url}: simulator child process pid" in line:
            return psutil.Process(int(line.rsplit(" ", 1)[1]))
    raise AssertionError(f"no simulator process logged for {url}:\n{daemon.log()}")


def test_a_hung_board_stalls_only_its_own_requests(tmp_path: Path) -> None:
    """With the default device timeouts (12 s for a run), one board hangs while a second
    serves another client: that client's requests and `stats` keep answering without
    waiting for the hung board, and the hung board's requests fail at their deadline."""
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 1, 4)
    expected = model.forward(x)
    urls = [URL.format(i=i) for i in (7, 8)]
    daemon = Akidad(tmp_path, *[f"--device={u}" for u in urls])
    with (
        daemon,
        Client(daemon.socket, timeout=20, retry_s=0) as victim,
        Client(daemon.socket, timeout=20, retry_s=0) as other,
    ):
        hung = victim.load(model, device=urls[0])
        fine = other.load(model, device=urls[1])
        assert np.array_equal(hung.forward(x), expected)
        assert np.array_equal(fine.forward(x), expected)
        _simulator_of(daemon, urls[0]).send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        failed: list[BaseException] = []

        def stuck() -> None:
            try:
                hung.forward(x, timeout=3.0)
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=stuck)
        started = time.monotonic()
        thread.start()
        time.sleep(0.3)  # the hung board now holds that request
        slowest = 0.0
        while time.monotonic() - started < 4.0:
            t = time.monotonic()
            assert np.array_equal(fine.forward(x), expected)
            stats = other.stats()
            slowest = max(slowest, time.monotonic() - t)
        assert slowest < 2.0, f"a request of the healthy board waited {slowest:.1f} s"
        by_id = {d["id"]: d for d in stats["devices"]}
        assert by_id[urls[1]]["driver_fresh"] and not by_id[urls[0]]["driver_fresh"]
        thread.join(10)
        assert time.monotonic() - started < 6.0, "the hung request outlived its deadline"
        assert len(failed) == 1 and isinstance(failed[0], RemoteError), failed
        assert failed[0].status_name == "DEADLINE_EXCEEDED"
