"""Our AKD1000 host over the PCIe transport, on the simulated AKD1000 behind a simulated
/dev/akidaN: the same accesses and outputs as BrainChip's engine on the same chip, and
outputs equal to akida's own forward (digits, conformance models, chain-loading)."""

from __future__ import annotations

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.driver import fileio  # noqa: E402
from akida_rt.driver.akd1000_host import Akd1000Host, desc_for_pci  # noqa: E402
from akida_rt.driver.pcie import PcieBus  # noqa: E402
from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip  # noqa: E402
from akida_rt.firmware_sim.pcie_node import SimPcieHost  # noqa: E402

from akida_rt.model import zoo  # noqa: E402
from tests.akd1000_programs import io_models, learning_model, programs, split_models  # noqa: E402
from tests.brainchip_engine.harness import EngineSession, run_engine, skip_reason  # noqa: E402
from tests.metatf_models import from_zoo, random_model  # noqa: E402


@pytest.fixture
def pcie_chip(tmp_path):
    """(host over PcieBus, chip) for a fresh simulated AKD1000 behind a simulated node."""
    chip = Akd1000Chip("PCIE0001")
    slot = SimPcieHost(tmp_path).add(chip)
    fileio.mount(str(slot.node_path), slot.provider)
    bus = PcieBus(str(slot.node_path))
    host = Akd1000Host(bus, desc=desc_for_pci(chip.vendor_id, chip.device_id), trace=True)
    yield host, chip
    host.close()
    fileio.unmount(str(slot.node_path))


@pytest.fixture(scope="module")
def digits():
    model = from_zoo(zoo.digits_cnn(seed=0))
    x = np.random.default_rng(5).integers(0, 256, size=(20, *model.input_shape), dtype=np.uint8)
    expected = model.forward(x)  # akida's software forward, before mapping on its AKD1000
    return expected, programs(model), x


def test_digits_over_pcie_same_accesses_and_outputs_as_brainchip_engine(pcie_chip, digits) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    host, chip = pcie_chip
    _, progs, x = digits
    ours = host.run_sequences(progs, x, batch_size=16)
    assert chip.hrc.jobs == len(x)
    theirs = run_engine(Akd1000Chip("PCIE0002"), progs, x, batch_size=16, trace=True)
    assert np.array_equal(ours, theirs.outputs)
    mine = [(a.phase, a.op, a.addr, a.size, a.value) for a in host.log.trace]
    assert mine == [(a.phase, a.op, a.addr, a.size, a.value) for a in theirs.trace]


def test_digits_over_pcie_equals_akida_forward(pcie_chip, digits) -> None:
    host, _ = pcie_chip
    expected, progs, x = digits
    assert np.array_equal(host.run_sequences(progs, x, batch_size=16), expected)


# all-hardware conformance models: images and events, every layer kind across them
@pytest.mark.parametrize("seed", [0, 2, 3, 5, 6, 7, 9, 11])
def test_conformance_models_equal_akida_forward(pcie_chip, seed: int) -> None:
    host, _ = pcie_chip
    model, x = random_model(seed)
    expected = model.forward(x)
    progs = programs(model)
    assert all(s.program is not None for s in model.sequences)
    assert np.array_equal(host.run_sequences(progs, x, batch_size=4), expected)


def test_chain_loaded_sequences_equal_akida_forward(pcie_chip) -> None:
    host, _ = pcie_chip
    first, second = split_models()
    x = np.random.default_rng(2).integers(0, 256, size=(6, 12, 12, 1), dtype=np.uint8)
    expected = second.forward(first.forward(x))
    got = host.run_sequences([programs(first)[0], programs(second)[0]], x, batch_size=4)
    assert np.array_equal(got, expected)


def test_identifies_from_chip_info_without_a_description(tmp_path) -> None:
    # IP_VERSION reads 0 on an AKD1000: with no driver description, the SoC's CHIP_INFO
    # names it, as BrainChip's bare-metal driver does
    chip = Akd1000Chip("PCIE0003")
    slot = SimPcieHost(tmp_path).add(chip)
    fileio.mount(str(slot.node_path), slot.provider)
    try:
        host = Akd1000Host(PcieBus(str(slot.node_path)))
        assert host.version is not None and host.version.name == "NSoC_v2"
        assert host.state.desc == "Embedded/NSoC_v2"
        host.close()
    finally:
        fileio.unmount(str(slot.node_path))


def test_learning_on_the_chip_same_as_brainchip_engine(pcie_chip) -> None:
    """Our host and BrainChip's engine fit the same labelled inputs on two simulated
    chips: identical accesses, and the learned weights they read back are identical."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    host, _ = pcie_chip
    prog = programs(learning_model())[0]
    rng = np.random.default_rng(4)
    x = (rng.random((12, 8, 8, 4)) < 0.3).astype(np.uint8)
    labels = [int(v) for v in rng.integers(0, 3, size=12)]
    before = None
    with EngineSession(Akd1000Chip("PCIE0004"), trace=True) as engine:
        engine.program(prog)
        engine.set_batch_size(4)
        engine.toggle_learn(True)
        before = engine.learn_mem()
        engine.fit(x, labels)
        theirs = engine.learn_mem()
        trace = [(a.phase, a.op, a.addr, a.size, a.value) for a in engine.trace]
    host.program(prog)
    host.set_batch_size(4)
    host.toggle_learn(True)
    assert np.array_equal(host.learn_mem(), before)
    host.fit(x, labels)
    ours = host.learn_mem()
    assert not np.array_equal(ours, before)  # the chip learned
    assert np.array_equal(ours, theirs)
    assert [(a.phase, a.op, a.addr, a.size, a.value) for a in host.log.trace] == trace


@pytest.mark.parametrize("name", list(io_models()))
def test_every_input_and_output_path_equals_akida_forward(pcie_chip, name: str) -> None:
    host, _ = pcie_chip
    model = io_models()[name]
    bits = 8 if name.startswith("image") else 4
    x = np.random.default_rng(1).integers(0, 2**bits, size=(5, *model.input_shape))
    x = x.astype(np.uint8)
    expected = model.forward(x)
    got = host.run_sequences(programs(model), x, batch_size=4)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
