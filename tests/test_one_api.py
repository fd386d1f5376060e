"""One API: `akida_rt.devices()`, `Model.map`, forward/predict/statistics through a real
akidad when one answers, bit for bit the in-process results; without one, the simulated
AKD1000 in this process, logged."""

from __future__ import annotations

import logging

import pytest

import akida_rt
from akida_rt import Model
from akida_rt.client.daemon_devices import DaemonDevice
from akida_rt.data import sample_program
from akida_rt.errors import DaemonError, ModelError
from tests.daemon_harness import Akidad, random_input


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with Akidad(tmp_path_factory.mktemp("one-api")) as d:
        yield d


def test_through_akidad_identical_to_in_process(daemon):
    remote_devices = akida_rt.devices(socket=str(daemon.socket))
    assert [type(d) for d in remote_devices] == [DaemonDevice]
    device = remote_devices[0]
    assert device.id == "sim://akd1000/0" and device.simulated
    assert device.describe()["name"] == "AKD1000"

    local = Model(sample_program())
    local.map(akida_rt.devices(daemon=False)[0])
    remote = Model(sample_program())
    remote.map(device)
    x = random_input(local, 5, seed=3)
    for run in (Model.forward, Model.predict):
        a, b = run(local, x), run(remote, x)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit for bit, floats included

    stats = remote.statistics
    assert stats.backend == "Hardware" and stats.frames == 10
    assert "through akidad at" in stats.where and str(daemon.socket) in stats.where
    assert stats.energy_mj_per_frame is not None and stats.energy_mj_per_frame > 0
    assert remote.device == device.spec and len(remote.sequences) == len(local.sequences)
    with pytest.raises(ModelError, match="mapped through akidad"):
        remote.fit(x, 0)

    remote.map(None)  # the session is closed
    mine = [c for c in device.client.stats()["clients"] if c["name"].startswith("akida_rt")]
    assert mine and all(c["sessions"] == 0 for c in mine)
    assert remote.forward(x).tobytes() == Model(sample_program()).forward(x).tobytes()
    local.map(None)


def test_without_akidad_in_process_and_logged(tmp_path, caplog):
    missing = str(tmp_path / "none.sock")
    with caplog.at_level(logging.INFO, logger="akida_rt"):
        found = akida_rt.devices(socket=missing)
    assert found and not isinstance(found[0], DaemonDevice) and found[0].simulated
    assert f"cannot reach akidad at {missing}" in caplog.text
    assert "devices in this process: sim://akd1000/0" in caplog.text
    with pytest.raises(DaemonError, match="cannot reach akidad"):
        akida_rt.devices(daemon=True, socket=missing)
