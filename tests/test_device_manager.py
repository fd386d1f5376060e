"""The daemon's device manager over the Device protocol: a simulated board behind the real
PCIe transport, as the daemon would hold a board."""

from __future__ import annotations

import numpy as np
import pytest
from akida_rt.daemon.devices import DeviceManager, ProgramKey

from akida_rt.errors import DeviceLost
from akida_rt.model import zoo
from akida_rt.model.device_api import Device
from tests.device_urls import FACTORIES, DeviceUnderTest


@pytest.fixture
def board():
    made = FACTORIES["pcie-sim"]()
    yield made
    made.close()


def test_slot_takes_kind_and_simulated_from_the_device(board: DeviceUnderTest) -> None:
    device: Device = board.device
    manager = DeviceManager(0, discover=lambda *_: [device])
    appeared, vanished = manager.rescan()
    (slot,) = appeared
    assert not vanished and manager.ready() == [slot]
    # kind is the transport; simulated is what the chip reports, not what "pcie" suggests
    assert (slot.id, slot.kind, slot.simulated) == (device.url, "pcie", True)
    desc = slot.describe()
    assert desc["device"] == device.describe() and desc["name"] == "AKD1000"
    assert manager.rescan() == ([], [])  # the same device again: nothing changes


def test_slot_runs_a_model_reports_stats_and_resets(board: DeviceUnderTest) -> None:
    manager = DeviceManager(0, discover=lambda *_: [board.device])
    (slot,) = manager.rescan()[0]
    model = zoo.digits_cnn(seed=2)
    x = np.random.default_rng(2).integers(0, 256, (2, *model.input_shape), dtype=np.uint8)
    key = ProgramKey("digits")
    mapped = slot.model_for(key, model.to_bytes())
    np.testing.assert_array_equal(mapped.forward(x), model.forward(x))
    summary = slot.device_summary()
    assert summary["reloads"] == 1 and summary["device_frames"] == 2
    assert summary["resident"] == mapped.sequences[0].program_hash
    assert manager.reset(slot) and slot.device_summary()["device_frames"] == 0
    slot.release(key)
    assert not slot.models


def test_a_lost_device_vanishes_and_its_stats_stop(board: DeviceUnderTest) -> None:
    manager = DeviceManager(0, discover=lambda *_: [board.device])
    (slot,) = manager.rescan()[0]
    board.inject("unplug")
    with pytest.raises(DeviceLost):
        board.device.identify()
    assert board.device.lost
    appeared, vanished = manager.rescan()
    assert not appeared and vanished == [slot] and slot.state == "lost"
    assert slot.driver_stats() == {}
