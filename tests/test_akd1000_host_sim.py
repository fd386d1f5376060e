"""Our AKD1000 host over the PCIe transport, on the simulated AKD1000 behind a simulated
/dev/akidaN: the same accesses and outputs as BrainChip's engine on the same chip, and,
once the simulated chip decodes programs, outputs equal to akida's own forward."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.driver import fileio  # noqa: E402
from akida_rt.driver.akd1000_host import Akd1000Host, desc_for_pci  # noqa: E402
from akida_rt.driver.pcie import PcieBus  # noqa: E402
from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip  # noqa: E402
from akida_rt.firmware_sim.pcie_node import SimPcieHost  # noqa: E402

from akida_rt.model import zoo  # noqa: E402
from tests.akd1000_programs import programs, split_models  # noqa: E402
from tests.brainchip_engine.harness import run_engine, skip_reason  # noqa: E402
from tests.metatf_models import from_zoo, random_model  # noqa: E402


def _chip_decodes() -> bool:
    """Whether the simulated chip can compute: it decodes its NP state with
    akida_rt.akd1000.decode.mesh_layers (firmware_sim/mesh_program.py)."""
    if importlib.util.find_spec("akida_rt.akd1000.decode") is None:
        return False
    from akida_rt.akd1000 import decode

    return hasattr(decode, "decode_mesh")


DECODER = _chip_decodes()
NO_DECODER = (
    "the simulated chip computes once it decodes NP state (akida_rt.akd1000.decode."
    "mesh_layers, called by firmware_sim/mesh_program.py) in this tree"
)


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
    y = model.forward(x)  # before mapping: a mapped akida model needs a board to forward
    return model, programs(model), x, y


def test_digits_over_pcie_same_accesses_and_outputs_as_brainchip_engine(pcie_chip, digits) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    host, chip = pcie_chip
    _, progs, x, _ = digits
    ours = host.run_sequences(progs, x, batch_size=16)
    assert chip.hrc.jobs == len(x)
    theirs = run_engine(Akd1000Chip("PCIE0002"), progs, x, batch_size=16, trace=True)
    assert np.array_equal(ours, theirs.outputs)
    mine = [(a.phase, a.op, a.addr, a.size, a.value) for a in host.log.trace]
    assert mine == [(a.phase, a.op, a.addr, a.size, a.value) for a in theirs.trace]


@pytest.mark.skipif(not DECODER, reason=NO_DECODER)
def test_digits_over_pcie_equals_akida_forward(pcie_chip, digits) -> None:
    host, _ = pcie_chip
    _, progs, x, y = digits
    assert np.array_equal(host.run_sequences(progs, x, batch_size=16), y)


@pytest.mark.skipif(not DECODER, reason=NO_DECODER)
@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_conformance_models_equal_akida_forward(pcie_chip, seed: int) -> None:
    host, _ = pcie_chip
    model, x = random_model(seed)
    y = model.forward(x)
    progs = programs(model)
    if any(s.program is None for s in model.sequences):
        pytest.skip(f"conformance model {seed} keeps a sequence in software")
    assert np.array_equal(host.run_sequences(progs, x, batch_size=4), y)


@pytest.mark.skipif(not DECODER, reason=NO_DECODER)
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
