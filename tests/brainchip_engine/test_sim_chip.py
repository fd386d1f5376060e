"""BrainChip's own Akida Engine on our simulated AKD1000: bit-identical to akida's forward.

The engine programs the simulated chip (firmware_sim/akd1000_chip.py) with akida's own
program binaries and reads its outputs; the oracle is akida's software `forward` of the
same model. Software sequences between hardware ones (layers the chip cannot hold) run
on akida_rt's integer engine, as the host does when it chain-loads a split model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.brainchip_engine.harness import EngineSession, forward_mapped, skip_reason

akida = pytest.importorskip("akida")
chip_module = pytest.importorskip(
    "akida_rt.firmware_sim.akd1000_chip",
    reason="no simulated AKD1000 at the real interface in this tree (firmware_sim/akd1000_chip.py)",
)

from akida_rt.tools.metatf import import_model  # noqa: E402

from akida_rt.akd1000 import np_registers as regs  # noqa: E402
from akida_rt.akd1000.np_state import from_program  # noqa: E402
from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.metatf_models import (  # noqa: E402
    N_MODELS,
    calibrate,
    from_zoo,
    random_model,
    random_weights,
    sample,
)
from tests.metatf_probes import SATURATION  # noqa: E402

_reason = skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


def check(theirs: Any, x: np.ndarray) -> dict:
    expected = theirs.forward(x)
    theirs.map(akida.AKD1000())
    run = forward_mapped(theirs, x, chip_module.Akd1000Chip(serial="ENGINE1"))
    assert run.outputs.shape == expected.shape
    np.testing.assert_array_equal(run.outputs, expected)
    return run.counts


@pytest.mark.parametrize("seed", range(N_MODELS))
def test_suite_model_on_the_simulated_chip_matches_akida(seed: int) -> None:
    theirs, x = random_model(seed)
    check(theirs, x)


@pytest.mark.parametrize("name", ["digits_cnn", "ds_cnn_kws"])
def test_zoo_model_on_the_simulated_chip_matches_akida(name: str) -> None:
    theirs = from_zoo(getattr(zoo, name)())
    shape = tuple(theirs.input_shape)
    x = np.random.default_rng(0).integers(0, 256, (4, *shape), dtype=np.uint8)
    counts = check(theirs, x)
    assert len(theirs.sequences) == 1
    assert counts["inference"].accesses <= 16 * len(x)  # about 14 accesses per input


def test_akidanet_on_the_simulated_chip_matches_akida() -> None:
    theirs = from_zoo(zoo.akidanet(alpha=0.5))
    x = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    check(theirs, x)


def test_a_model_of_several_hardware_sequences_chain_loads() -> None:
    seeds = [s for s in range(N_MODELS) if _hardware_sequences(s) > 1]
    assert seeds, "the suite should hold a model that akida splits into sequences"
    theirs, x = random_model(seeds[0])
    check(theirs, x)
    assert sum(str(s.backend).endswith("Hardware") for s in theirs.sequences) > 1


def _hardware_sequences(seed: int) -> int:
    theirs, _ = random_model(seed)
    theirs.map(akida.AKD1000())
    return sum(str(s.backend).endswith("Hardware") for s in theirs.sequences)


def test_a_fit_triggered_by_the_engine_learns_what_our_software_fit_learns() -> None:
    theirs = akida.Model()
    theirs.add(akida.InputData(input_shape=(1, 1, 64), input_bits=1, name="in"))
    theirs.add(akida.FullyConnected(units=6, weights_bits=1, activation=False, name="fc"))
    theirs.compile(optimizer=akida.AkidaUnsupervised(num_weights=8, num_classes=3))
    ours = import_model(theirs)
    rng = np.random.default_rng(3)
    x = (rng.random((12, 1, 1, 64)) < 0.3).astype(np.uint8)
    labels = rng.integers(0, 3, 12)
    expected = ours.fit(x, labels)  # akida_rt's software backend
    learned = ours.layers[-1].get_variable("weights").reshape(64, 6)
    assert not np.array_equal(learned, theirs.layers[-1].get_variable("weights").reshape(64, 6))

    theirs.map(akida.AKD1000(), hw_only=True)
    with EngineSession(chip_module.Akd1000Chip(serial="LEARN1")) as engine:
        engine.program(theirs.sequences[0].program)
        engine.toggle_learn(True)
        engine.set_batch_size(1)
        potentials = engine.fit(x, labels)
        memory = engine.learn_mem()
    np.testing.assert_array_equal(potentials.reshape(12, 6), expected)
    neurons = memory[2:].reshape(6, 6)  # FNP3 SRAM: 6 words a neuron, w4-w5 the weights
    bits = (neurons[:, 4 + np.arange(64) // 32] >> (np.arange(64) % 32)) & 1
    np.testing.assert_array_equal(bits.T, learned)
    # w3 low half: each neuron's plasticity in whole weights, as the software holds it
    np.testing.assert_array_equal(neurons[:, 3] & 0xFFFF, _swaps(ours))


def _swaps(model: Any) -> np.ndarray:
    from akida_rt.engine.learning_rule import swaps_of
    from akida_rt.learning.edge import plasticity_of

    cfg = model.learning
    return swaps_of(plasticity_of(cfg, model.layers[-1].filters), cfg.num_weights)


def test_learning_restored_after_a_power_cycle_goes_on_as_if_uninterrupted() -> None:
    """BrainChip's documented restore (README: program, toggle_learn, update_learn_mem
    after a power cycle) on a fresh chip: fits after it learn exactly what fits without
    the power cycle learn, and what akida_rt's software backend learns. 20 weights, so
    the floor (ceil(0.1 x 20) = 2) and the step are whole weights the chip's registers
    hold, and plasticity reaches the floor. (min_plasticity is given: akida's default is
    the float32 0.1, whose ceil(0.1 x 20) is 3; akida_rt exports the decimal it stands
    for, v1_rules.learning_fraction.)"""
    theirs = akida.Model()
    theirs.add(akida.InputData(input_shape=(1, 1, 64), input_bits=1, name="in"))
    theirs.add(akida.FullyConnected(units=4, weights_bits=1, activation=False, name="fc"))
    theirs.compile(optimizer=akida.AkidaUnsupervised(num_weights=20, num_classes=2,
                                                     min_plasticity=0.1, plasticity_decay=0.3,
                                                     learning_competition=0.35))  # fmt: skip
    ours = import_model(theirs)
    rng = np.random.default_rng(5)
    x = (rng.random((24, 1, 1, 64)) < 0.4).astype(np.uint8)
    labels = rng.integers(0, 2, 24)
    expected = ours.fit(x, labels)
    theirs.map(akida.AKD1000(), hw_only=True)
    program = theirs.sequences[0].program

    def session(serial: str) -> EngineSession:
        return EngineSession(chip_module.Akd1000Chip(serial=serial))

    with session("PC1") as engine:  # uninterrupted
        engine.program(program)
        engine.toggle_learn(True)
        engine.set_batch_size(1)
        straight = engine.fit(x, labels).reshape(24, 4)
        final = engine.learn_mem()
    with session("PC2") as engine:
        engine.program(program)
        engine.toggle_learn(True)
        engine.set_batch_size(1)
        first = engine.fit(x[:10], labels[:10]).reshape(10, 4)
        saved = engine.learn_mem()
    with session("PC3") as engine:  # powered on again: the program, then the saved memory
        engine.program(program)
        engine.toggle_learn(True)
        engine.set_batch_size(1)
        engine.update_learn_mem(saved)
        rest = engine.fit(x[10:], labels[10:]).reshape(14, 4)
        resumed = engine.learn_mem()
    np.testing.assert_array_equal(np.concatenate([first, rest]), straight)
    np.testing.assert_array_equal(resumed, final)
    np.testing.assert_array_equal(straight, expected)
    neurons = final[2:].reshape(4, 6)
    bits = (neurons[:, 4 + np.arange(64) // 32] >> (np.arange(64) % 32)) & 1
    np.testing.assert_array_equal(bits.T, ours.layers[-1].get_variable("weights").reshape(64, 4))
    np.testing.assert_array_equal(neurons[:, 3] & 0xFFFF, _swaps(ours))
    assert (neurons[:, 3] & 0xFFFF).min() == 2  # some neuron decayed to the floor


def _small(shape: tuple[int, int, int], *layers: Any) -> tuple[Any, np.ndarray]:
    """InputData (4-bit events) then `layers`, random weights, calibrated thresholds."""
    model = akida.Model()
    model.add(akida.InputData(input_shape=shape, input_bits=4, name="in"))
    for layer in layers:
        model.add(layer)
    random_weights(model, np.random.default_rng(0))
    x = sample(model, 2, 0)
    calibrate(model, x, 0)
    return model, x


def _potentials_models() -> dict[str, tuple[tuple[int, int, int], list[Any]]]:
    conv = dict(kernel_size=(3, 3), weights_bits=4)
    return {
        "conv": ((8, 8, 8), [akida.Convolutional(filters=8, activation=False, **conv)]),
        "conv-after-conv": (
            (8, 8, 4),
            [
                akida.Convolutional(filters=16, act_bits=2, **conv),
                akida.Convolutional(filters=8, activation=False, **conv),
            ],
        ),
        "separable-strided": (
            (10, 10, 16),
            [
                akida.SeparableConvolutional(
                    filters=24, activation=False, kernel_stride=(2, 2), **conv
                )
            ],
        ),
        "conv-1x1": (
            (6, 6, 32),
            [akida.Convolutional(filters=40, kernel_size=(1, 1), weights_bits=2, activation=False)],
        ),
        # akida keeps act_bits 4 in the registers; the ACTIVATION bit is what is clear
        "separable-act-bits-4": (
            (8, 8, 16),
            [akida.SeparableConvolutional(filters=8, activation=False, act_bits=4, **conv)],
        ),
    }


@pytest.mark.parametrize("name", list(_potentials_models()))
def test_convolution_potentials_as_the_last_output(name: str) -> None:
    # akida maps the layer with the ACTIVATION bit (w3 bit 15) clear and every threshold
    # -2**19: the program's form of "output the potentials" (CNP events, w2 [31:12]).
    shape, layers = _potentials_models()[name]
    theirs, x = _small(shape, *layers)
    check(theirs, x)
    assert [str(s.backend) for s in theirs.sequences] == ["BackendType.Hardware"]


def test_saturation_probes_through_the_engine() -> None:
    """An HRC threshold of 4,000,000 (24-bit on the HRC) computes as akida; potentials of
    up to 5.2 M as the output reach BrainChip's engine saturated to the 20 bits of a CNP
    potential event (docs/program-binary.md, "Output potentials")."""
    theirs, x = SATURATION["input_conv_unpooled"]()
    assert int(theirs.layers[0].get_variable("threshold")[0]) >= 1 << 20
    check(theirs, x)
    theirs, x = SATURATION["separable_unpooled"]()
    expected = theirs.forward(x)
    assert np.abs(expected).max() >= 1 << 22
    theirs.map(akida.AKD1000())
    assert [str(s.backend) for s in theirs.sequences] == ["BackendType.Hardware"]
    run = forward_mapped(theirs, x, chip_module.Akd1000Chip(serial="ENGINE2"))
    np.testing.assert_array_equal(run.outputs, np.clip(expected, -(1 << 19), (1 << 19) - 1))


def _split_models() -> dict[str, tuple[tuple[int, int, int], list[Any]]]:
    sep = dict(kernel_size=(3, 3), weights_bits=4, act_bits=4)
    return {
        # two x halves of 7x14 (AkidaNet 1.0's second sequence starts with this layer)
        "separable-2-stripes": ((14, 14, 512), [akida.SeparableConvolutional(filters=512, **sep)]),
        "separable-4-stripes": ((30, 30, 256), [akida.SeparableConvolutional(filters=64, **sep)]),
        "separable-stride-2-odd": (
            (29, 29, 256),
            [akida.SeparableConvolutional(filters=64, kernel_stride=(2, 2), **sep)],
        ),
        "conv-3-stripes": ((40, 40, 128), [akida.Convolutional(filters=32, **sep)]),
        "split-then-conv": (
            (30, 30, 256),
            [
                akida.SeparableConvolutional(filters=64, **sep),
                akida.Convolutional(filters=16, **sep),
            ],
        ),
    }


@pytest.mark.parametrize("name", list(_split_models()))
def test_a_layer_split_spatially_over_nps(name: str) -> None:
    # akida gives each NP a stripe of the input's first dimension (with the kernel's
    # halo); the chip must take the whole input from the stripes of the first layer.
    shape, layers = _split_models()[name]
    theirs, x = _small(shape, *layers)
    check(theirs, x)
    assert [str(s.backend) for s in theirs.sequences] == ["BackendType.Hardware"]
    assert _stripes(theirs.sequences[0].program) > 1


def _stripes(program: bytes) -> int:
    """NPs of the first layer holding its first filter: one per stripe of the input."""
    state = from_program(ProgramBinary.from_bytes(program, "sequence 0"))
    firsts = [
        regs.read(regs.CNP, [int(v) for v in s.registers])
        for s in state.nps.values()
        if not s.is_hrc and s.registers.any()
    ]
    first_layer = min(r["LAYER"] for r in firsts)
    return sum(r["LAYER"] == first_layer and r["FIRST_FILTER"] == 0 for r in firsts)


def test_akidanet_1_0_in_two_hardware_sequences_matches_akida(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # akida maps AkidaNet 1.0 (224) as two programs; the second starts with a 14x14x512
    # separable layer in two stripes. from_zoo replaces the zoo's weights, so the zoo's
    # calibration runs on one image only (it is most of the model's build time).
    randomize = zoo.randomize

    def one_image(model: Any, seed: int = 0, sample: Any = None, v1: bool = False) -> Any:
        return randomize(model, seed, np.zeros((1, *model.input_shape), np.uint8), v1=v1)

    monkeypatch.setattr(zoo, "randomize", one_image)
    theirs = from_zoo(zoo.akidanet(alpha=1.0, size=224))
    x = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    check(theirs, x)
    programs = [s.program for s in theirs.sequences]
    assert [str(s.backend) for s in theirs.sequences] == ["BackendType.Hardware"] * 2
    assert _stripes(programs[1]) == 2
