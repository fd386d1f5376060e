"""Device faults under akidad: a simulator process that dies (an unplugged board) fails
or requeues the affected requests with a clear status, and no client hangs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from akida_rt import ipc, zoo
from akida_rt.client import Client
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
        with pytest.raises(ipc.RemoteError) as info:
            remote.forward(x)
        assert info.value.status_name in ("DEVICE_FAILED", "NO_DEVICE")
        assert "sim://akd1000/5" in str(info.value) or "no device" in str(info.value)
        assert time.monotonic() - start < 15
