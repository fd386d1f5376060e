"""Edge learning on the simulated AKD1000: the rule runs in the firmware through the
driver's LEARN commands, the learned weights live in device memory, and everything read
back equals the software backend bit for bit (every transport in tests/device_urls.py)."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt.engine.learning_rule import LearnedWeights
from akida_rt.errors import DeviceCommandError
from akida_rt.model import zoo
from akida_rt.wire import device_protocol as dp
from tests.device_urls import CONTRACT_FACTORIES, CONTRACT_PARAMS, DeviceUnderTest
from tests.learning_models import images, learnable_cnn


@pytest.fixture(params=CONTRACT_PARAMS)
def dut(request):
    made = CONTRACT_FACTORIES[request.param]()
    yield made
    made.close()


def _weights(model) -> np.ndarray:
    return model.layers[-1].get_variable("weights")[0, 0]


def test_learning_on_the_chip_equals_the_software_backend(dut: DeviceUnderTest) -> None:
    x, labels = images(7, 24), np.arange(24) % 4
    software, device = learnable_cnn(seed=5), learnable_cnn(seed=5)
    device.map(dut.device)
    assert device.sequences[-1].plan.placements[-1].np_type == "FNP3"
    region = dp.learned_bytes(64, 12)
    before = dut.device.bus.read(dp.LEARN_BASE, region)
    for i in range(0, 24, 8):  # three fits: the state carries over between them
        pots_hw = device.fit(x[i : i + 8], labels[i : i + 8])
        pots_sw = software.fit(x[i : i + 8], labels[i : i + 8])
        assert np.array_equal(pots_hw, pots_sw)
    assert np.array_equal(_weights(device), _weights(software)) and _weights(device).any()
    assert device.learning.SerializeToString() == software.learning.SerializeToString()
    read = dut.device.read_learned()
    assert read.samples == 24 and np.array_equal(read.weights, _weights(software))
    # the weights are in device memory, packed, after the plasticities
    raw = dut.device.bus.read(dp.LEARN_BASE, region)
    assert raw != before
    packed = np.packbits(_weights(software).reshape(-1).astype(bool)).tobytes()
    assert raw[4 * 12 :] == packed
    assert np.array_equal(device.forward(x), software.forward(x))
    assert np.array_equal(device.predict_classes(x), software.predict_classes(x))


def test_a_fit_leaves_the_learned_program_resident(dut: DeviceUnderTest) -> None:
    """One hardware sequence: after the first load, fits and runs send no program again
    (the learned weights are in device memory), and still equal the software backend."""
    x, labels = images(9, 12), np.arange(12) % 4
    software = learnable_cnn(seed=4, pooled_spikes=False)
    device = learnable_cnn(seed=4, pooled_spikes=False)
    device.map(dut.device)
    assert [s.backend.value for s in device.sequences] == ["Hardware"]
    device.fit(x[:1], labels[:1])
    software.fit(x[:1], labels[:1])
    loads = dut.device.stats().host.loads
    for i in range(1, 12):
        assert np.array_equal(
            device.fit(x[i : i + 1], labels[i]), software.fit(x[i : i + 1], labels[i])
        )
        assert np.array_equal(device.forward(x), software.forward(x))
    assert dut.device.stats().host.loads == loads
    assert np.array_equal(_weights(device), _weights(software)) and _weights(device).any()
    # another program evicts it: the next fit loads the host's copy of the learned state
    other = learnable_cnn(seed=9)
    other.map(dut.device)
    other.forward(x[:1])
    assert np.array_equal(device.fit(x[:2], labels[:2]), software.fit(x[:2], labels[:2]))
    assert np.array_equal(device.forward(x), software.forward(x))


def test_learned_weights_written_to_the_chip_are_what_it_computes_with(
    dut: DeviceUnderTest,
) -> None:
    model = learnable_cnn(seed=6)
    model.map(dut.device)
    x = images(8, 6)
    model.fit(x[:1], 0)  # configures learning on the chip
    rng = np.random.default_rng(0)
    weights = (rng.random((64, 12)) < 0.2).astype(np.uint8)
    plasticity = rng.random(12).astype(np.float32)
    dut.device.write_learned(LearnedWeights(weights, plasticity, 1))
    back = dut.device.read_learned()
    assert np.array_equal(back.weights, weights) and np.array_equal(back.plasticity, plasticity)
    # the resident (last) sequence, fed its own input; weights from device memory
    last = model.sequences[-1]
    first = [layer.name for layer in model.layers].index(last.layers[0].name)
    y, _ = dut.device.infer(model.engine().run(x, stop=first) if first else x)
    model.map(None)
    model.layers[-1].set_variable("weights", weights.reshape(1, 1, 64, 12))
    assert np.array_equal(y[:, 0, 0].astype(np.int64), model.forward(x)[:, 0, 0])


def test_learning_commands_refuse_what_cannot_learn(dut: DeviceUnderTest) -> None:
    with pytest.raises(DeviceCommandError, match="NOT_LEARNING"):
        dut.device.read_learned()
    digits = zoo.digits_cnn(seed=1)
    digits.map(dut.device)
    digits.forward(images(1, 1).repeat(2, axis=1).repeat(2, axis=2))  # resident now
    with pytest.raises(DeviceCommandError, match="dense_4' cannot learn"):
        dut.device.command(dp.Opcode.LEARN_CONFIG, addr0=dp.DATA_BASE, len0=64)
