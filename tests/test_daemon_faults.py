"""Device faults under akidad: a simulator process that dies (an unplugged board) fails
or requeues the affected requests with a clear status, and no client hangs.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from akida_rt import ipc, zoo
from akida_rt.client import Client
from tests.daemon_harness import Akidad, daemon_env, random_input

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
        with pytest.raises(ipc.RemoteError) as info:
            remote.forward(x)
        assert info.value.status_name in ("DEVICE_FAILED", "NO_DEVICE")
        assert "sim://akd1000/5" in str(info.value) or "no device" in str(info.value)
        assert time.monotonic() - start < 15


@pytest.mark.parametrize(
    ("signum", "logged"),
    [(signal.SIGUSR1, "timed out"), (signal.SIGUSR2, "reset itself")],
    ids=["firmware-hang", "spontaneous-reset"],
)
@pytest.mark.parametrize("express", [False, True], ids=["queued", "express"])
def test_hang_or_reset_is_recovered_and_the_request_completes(
    tmp_path: Path, signum: int, logged: str, express: bool
) -> None:
    """A hung firmware times out and is reset; a chip that reset itself dropped the command.
    Either way the request is requeued, the program reloaded, and the answer is right:
    whether it was queued (the first run after loading) or ran on the express path (a
    resident program on an idle device, run in the loop thread)."""
    config = tmp_path / "akidad.toml"
    config.write_text("device_timeout_scale = 0.05\n")  # command timeouts of ~0.25 s
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 2, 11)
    expected = model.forward(x)
    # Express: any run counts as short work. Queued: the first run after loading is
    # never short, so the fault hits a queued request.
    env = {**daemon_env(), "AKIDAD_INLINE": "10" if express else "0"}
    args = ("--config", str(config), f"--device={URL.format(i=3)}")
    with Akidad(tmp_path, *args, env=env) as daemon:
        with Client(daemon.socket, timeout=20, retry_s=0) as c:
            remote = c.load(model)
            for _ in range(3 if express else 1):
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
        assert logged in daemon.log()
        assert ("goes round again" in daemon.log()) == express
