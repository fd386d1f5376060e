"""Injected faults surface as clear errors within their timeouts; a reset device recovers."""

from __future__ import annotations

import time

import numpy as np
import pytest
from akida_rt.driver.device import Timeouts

from akida_rt.errors import DeviceLost, DeviceResetError, TransportTimeout
from tests.device_urls import FACTORIES
from tests.v1_forms import v1_model

pytest.importorskip("akida")  # a device runs BrainChip's program binaries ([metatf])

SHORT = Timeouts(command_s=0.4, reset_s=2.0, load_s=0.6, load_per_mib_s=0.0, run_s=0.6)


@pytest.fixture(params=sorted(FACTORIES))
def factory(request):
    made = []

    def make(**kw):
        made.append(FACTORIES[request.param](**kw))
        return made[-1]

    yield make
    for m in made:
        m.close()


@pytest.fixture(scope="module")
def model():
    return v1_model("digits_cnn", seed=5)


def _x(model, n=2):
    return np.random.default_rng(n).integers(0, 256, (n, *model.input_shape), dtype=np.uint8)


def _works(dev, model) -> None:
    x = _x(model)
    expected = model.engine().run(x)
    (seq,) = [s for s in model.sequences if s.program]
    dev.load_sequence(seq.program)
    y, clk = dev.infer(x)
    np.testing.assert_array_equal(y, expected)
    assert clk > 0


def test_dma_timeout_is_retried_then_surfaces(factory, model) -> None:
    made = factory(timeouts=SHORT, retries=1)
    dev = made.device
    model.map(dev)
    made.inject("dma_timeout", 1)
    _works(dev, model)  # one stalled transfer is retried
    assert dev.stats().host.retries == 1
    made.inject("dma_timeout", 2)
    start = time.monotonic()
    with pytest.raises(TransportTimeout, match="timed out"):
        dev.infer(_x(model))
    dev.reset()
    assert time.monotonic() - start < 2.0
    _works(dev, model)


def test_hang_times_out_and_reset_recovers(factory, model) -> None:
    made = factory(timeouts=SHORT)
    dev = made.device
    model.map(dev)
    _works(dev, model)
    made.inject("hang")
    start = time.monotonic()
    with pytest.raises(TransportTimeout, match=r"no output for 0\.6 s.*reset"):
        dev.infer(_x(model))
    assert time.monotonic() - start < 2.0
    assert dev.resident is None  # the host unprogrammed the chip, as BrainChip's engine does
    dev.reset()
    _works(dev, model)


def test_spontaneous_reset_is_reported_and_device_recovers(factory, model) -> None:
    made = factory(timeouts=SHORT)
    dev = made.device
    model.map(dev)
    _works(dev, model)
    assert dev.resident is not None
    made.inject("reset")
    with pytest.raises(DeviceResetError, match="reset itself"):
        dev.infer(_x(model))
    assert dev.resident is None  # the chip lost its sequence; the next load is real
    _works(dev, model)
    assert dev.stats().host.loads == 2


def test_unplug_surfaces_as_device_lost(factory, model) -> None:
    made = factory(timeouts=SHORT)
    dev = made.device
    made.inject("unplug")
    start = time.monotonic()
    with pytest.raises(DeviceLost, match=r"unplugged|gone|lost"):
        dev.identify()
    assert time.monotonic() - start < 1.0
    with pytest.raises(DeviceLost, match="rediscover"):
        dev.stats()


def test_child_process_crash_is_isolated() -> None:
    made = FACTORIES["sim-process"](timeouts=SHORT)
    try:
        made.inject("crash")
        with pytest.raises(DeviceLost, match="simulator process is gone"):
            made.device.identify()
    finally:
        made.close()
