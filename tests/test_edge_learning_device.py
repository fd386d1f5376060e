"""Edge learning on the simulated AKD1000 through the host protocol: the learning register
track, labelled descriptors, the FNP3 memory read back and written; the chip's results
equal the software backend bit for bit (every transport in tests/device_urls.py)."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt.engine.learning_rule import LearnedWeights
from akida_rt.errors import DeviceError, LearningError
from akida_rt.mapping import akd1000_compiler
from tests.device_urls import CONTRACT_FACTORIES, CONTRACT_PARAMS, DeviceUnderTest
from tests.v1_forms import v1_model

pytest.importorskip("akida")


@pytest.fixture(params=CONTRACT_PARAMS)
def dut(request):
    made = CONTRACT_FACTORIES[request.param]()
    yield made
    made.close()


def _learners(seed: int = 0):
    """Two identical akida_rt Models with a learning FNP3 in v1 form (one for the chip, one
    for the software backend), and inputs. One akida source: its compile draws the
    learning weights at random."""
    from akida_rt.tools import metatf

    from tests.akd1000_programs import learning_model
    from tests.metatf_models import sample

    src = learning_model(seed=seed)
    return metatf.import_model(src), metatf.import_model(src), sample(src, 12, seed)


def _weights(model) -> np.ndarray:
    return model.layers[-1].get_variable("weights")[0, 0]


def test_learning_on_the_chip_equals_the_software_backend(dut: DeviceUnderTest) -> None:
    device, software, x = _learners(1)
    labels = np.arange(12) % 3
    device.map(dut.device)
    assert device.sequences[-1].plan.placements[-1].np_type == "FNP3"
    for i in range(0, 12, 4):  # three fits: the state carries over between them
        pots_hw = device.fit(x[i : i + 4], labels[i : i + 4])
        pots_sw = software.fit(x[i : i + 4], labels[i : i + 4])
        assert np.array_equal(pots_hw, pots_sw)
    assert np.array_equal(_weights(device), _weights(software))
    hw_cfg, sw_cfg = device.learning, software.learning
    assert hw_cfg.samples == sw_cfg.samples == 12
    # the chip holds each neuron's plasticity in whole weights, as the software does
    assert hw_cfg.plasticity.data == sw_cfg.plasticity.data
    read = dut.device.read_learned()
    assert read.samples == 12 and np.array_equal(read.weights, _weights(software))
    assert np.array_equal(device.forward(x), software.forward(x))
    assert np.array_equal(device.predict_classes(x), software.predict_classes(x))


def test_a_fit_leaves_the_learned_program_resident(dut: DeviceUnderTest, monkeypatch) -> None:
    """After the first load, fits and runs send no program again (the learned weights are
    in the chip's FNP3 memory), and a program that evicts it is followed by the learned
    binary (the program with the learned weight track), not a recompiled one. (Fits after
    such a reload learn on as the software backend does: the chip's learning memory is
    its whole learning state.)"""
    device, software, x = _learners(2)
    labels = np.arange(12) % 3
    device.map(dut.device)
    device.fit(x[:1], labels[:1])
    software.fit(x[:1], labels[:1])
    loads = dut.device.stats().host.loads
    for i in range(1, 6):
        assert np.array_equal(
            device.fit(x[i : i + 1], labels[i]), software.fit(x[i : i + 1], labels[i])
        )
        assert np.array_equal(device.forward(x), software.forward(x))
    assert dut.device.stats().host.loads == loads
    other = v1_model("digits_cnn", seed=1)
    other.map(dut.device)
    other.forward(np.zeros((1, *other.input_shape), np.uint8))
    # back on the chip: the learned binary (BrainChip's program with the learned weight
    # track), not a recompiled one; it computes what the software backend does
    monkeypatch.setattr(akd1000_compiler, "compile_binaries", _no_compiler)
    assert np.array_equal(device.forward(x), software.forward(x))
    assert dut.device.stats().host.loads == loads + 2
    assert np.array_equal(_weights(device), _weights(software))
    monkeypatch.undo()
    for i in range(6, 12, 2):  # learning on after the reload
        assert np.array_equal(
            device.fit(x[i : i + 2], labels[i : i + 2]),
            software.fit(x[i : i + 2], labels[i : i + 2]),
        )
    assert np.array_equal(_weights(device), _weights(software))
    assert device.learning.plasticity.data == software.learning.plasticity.data


def _no_compiler(*args: object) -> None:
    raise AssertionError("the learned binary should have been reused")


def test_learned_weights_written_to_the_chip_are_what_it_computes_with(
    dut: DeviceUnderTest,
) -> None:
    model, _, x = _learners(3)
    model.map(dut.device)
    model.fit(x[:1], 0)
    k, u = _weights(model).shape
    rng = np.random.default_rng(0)
    weights = (rng.random((k, u)) < 0.2).astype(np.uint8)
    plasticity = (rng.integers(1, 20, u) / 20).astype(np.float32)  # whole weights of 20
    dut.device.write_learned(LearnedWeights(weights, plasticity, 1))
    back = dut.device.read_learned()
    assert np.array_equal(back.weights, weights) and np.array_equal(back.plasticity, plasticity)
    y, _ = dut.device.infer(x)
    model.map(None)
    model.layers[-1].set_variable("weights", weights.reshape(1, 1, k, u).astype(np.int8))
    assert np.array_equal(y.astype(np.int64), model.forward(x).astype(np.int64))


def test_learning_refuses_what_cannot_learn(dut: DeviceUnderTest) -> None:
    with pytest.raises(LearningError, match="no learning program"):
        dut.device.read_learned()
    digits = v1_model("digits_cnn", seed=1)
    digits.map(dut.device)
    digits.forward(np.zeros((1, *digits.input_shape), np.uint8))  # resident now
    with pytest.raises(DeviceError, match="no learning layer"):
        dut.device.host.toggle_learn(True)
