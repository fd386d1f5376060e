"""The simulated AKD1000 driven by BrainChip's own Akida Engine (built from the akida
wheel's source) and by our driver's AKD1000 host, with real program binaries from akida's
compiler: outputs and learning bit-exact with akida and the software backend. Skips
without akida, and the engine tests without g++/flatbuffers."""

from __future__ import annotations

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip  # noqa: E402

from tests.akd1000_test_host import digits_case, expected_state  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> tuple[bytes, np.ndarray, np.ndarray]:
    return digits_case()


@pytest.fixture
def chip() -> Akd1000Chip:
    return Akd1000Chip("TEST0002")


def _engine() -> None:
    from tests.brainchip_engine.harness import skip_reason

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


def test_brainchips_engine_programs_and_runs_the_chip(chip, digits) -> None:
    from tests.brainchip_engine.harness import EngineSession

    _engine()
    blob, x, y = digits
    with EngineSession(chip) as engine:
        assert engine.version == (0xBC, 0, 0, 2)
        engine.program(blob)
        for (ident, uid), words in expected_state(blob).items():
            assert np.array_equal(chip.mesh.nps[ident].words(uid, 0, words.size), words)
        assert engine.set_batch_size(4) == 4
        out = engine.forward(x)
    assert np.array_equal(out, y)
    assert engine.counts["program"].accesses < 200
    assert engine.counts["inference"].accesses <= 16 * 4


@pytest.mark.parametrize("seed", [3, 8, 19, 31, 37, 43])
def test_brainchips_engine_runs_conformance_models_bit_exact(seed) -> None:
    """Seed 3: event input, activations out; 8: three sequences (hardware, software,
    hardware with a first FNP on CNP events); 19 and 43: a separable first layer whose
    filter memory fits two channel counts; 31: FNP2 weights in DDR; 37: a flat input
    sent to an FNP as CNP events."""
    from akida_rt.tools.metatf import import_model

    from akida_rt.engine.integer import Engine
    from tests.brainchip_engine.harness import EngineSession
    from tests.metatf_models import random_model

    _engine()
    model, x = random_model(seed)
    y = model.forward(x)
    layers = {layer.name: layer for layer in import_model(model).layers}
    model.map(akida.AKD1000())
    chip = Akd1000Chip()
    with EngineSession(chip) as engine:
        out = x
        for seq in model.sequences:
            names = [layer.name for p in seq.passes for layer in p.layers]
            if seq.program is None:  # akida runs this part on the host: so do we
                out = Engine([layers[n] for n in names]).run(out).astype(np.uint8)
                continue
            engine.program(bytes(seq.program))
            engine.set_batch_size(len(out))
            out = engine.forward(out.astype(np.uint8))
    assert np.array_equal(out, y)


def _learner() -> object:
    """InputData 8x8x4 (1-bit) -> Convolutional (1-bit act, sparse spikes) ->
    FullyConnected(6, 1-bit) compiled for 3 classes of 20 weights each.

    The FNP3 holds plasticities in whole weights, and so does the software rule, with the
    compiler's floor ceil(0.1 x 20) = 2 (min_plasticity given: akida's default is the
    float32 0.1, whose floor on 20 weights is 3; docs/semantics.md, section 8).
    """
    model = akida.Model()
    model.add(akida.InputData(input_shape=(8, 8, 4), input_bits=1, name="in"))
    model.add(akida.Convolutional(kernel_size=(3, 3), filters=16, name="conv", act_bits=1,
                                  weights_bits=2))  # fmt: skip
    model.add(akida.FullyConnected(units=6, name="fc", activation=False, weights_bits=1))
    rng = np.random.default_rng(0)
    conv = model.layers[1]
    conv.set_variable(
        "weights", rng.integers(0, 2, conv.get_variable("weights").shape).astype(np.int8)
    )
    conv.set_variable("threshold", np.full(16, 8, np.int32))
    model.compile(
        optimizer=akida.AkidaUnsupervised(num_weights=20, num_classes=3, min_plasticity=0.1)
    )
    return model


def test_brainchips_engine_learns_on_the_chip_as_the_software_backend(chip) -> None:
    from akida_rt.tools.metatf import import_model

    from akida_rt.akd1000 import sram_layout, weight_maps
    from akida_rt.format import v1_rules
    from akida_rt.learning import edge
    from tests.brainchip_engine.harness import EngineSession

    _engine()
    model = _learner()
    ours = import_model(model)
    model.map(akida.AKD1000())
    rng = np.random.default_rng(1)
    x = (rng.random((12, 8, 8, 4)) < 0.4).astype(np.uint8)
    labels = rng.integers(0, 3, 12)
    fc = edge.learning_layer(ours.layers)
    before = fc.get_variable("weights").copy()
    software = ours.fit(x, labels)
    assert not np.array_equal(before, fc.get_variable("weights"))  # it did learn
    with EngineSession(chip) as engine:
        engine.program(bytes(model.sequences[0].program))
        engine.toggle_learn(True)
        engine.set_batch_size(1)
        potentials = engine.fit(x, labels)
        memory = engine.learn_mem()
    assert np.array_equal(potentials.reshape(12, -1), software.reshape(12, -1))
    akida_order = sram_layout.gather(memory[2:], weight_maps.fnp(fc.fan_in, fc.filters, 1))
    learned = v1_rules.fc_weights(akida_order, fc.input_shape).reshape(fc.fan_in, fc.filters)
    assert np.array_equal(learned, fc.get_variable("weights").reshape(fc.fan_in, fc.filters))


def test_our_driver_programs_and_runs_the_chip_bit_exact(chip, digits) -> None:
    from akida_rt.driver.akd1000_host import Akd1000Host

    blob, x, y = digits
    host = Akd1000Host(chip, desc="sim/NSoC_v2")  # type: ignore[arg-type]
    host.program(blob)
    host.set_batch_size(4)
    assert np.array_equal(host.forward(x), y)
    assert host.counts["program"].accesses < 200


def test_our_driver_chain_loads_sequences_on_the_chip(chip) -> None:
    from akida_rt.driver.akd1000_host import Akd1000Host

    from tests.akd1000_programs import programs, split_models

    first, second = split_models()
    x = np.random.default_rng(0).integers(0, 256, (6, 12, 12, 1)).astype(np.uint8)
    y = second.forward(first.forward(x).astype(np.uint8))
    blobs = programs(first) + programs(second)
    host = Akd1000Host(chip, desc="sim/NSoC_v2")  # type: ignore[arg-type]
    assert np.array_equal(host.run_sequences(blobs, x, batch_size=6), y)


def test_our_driver_learns_on_the_chip_and_writes_the_memory_back(chip) -> None:
    from akida_rt.driver.akd1000_host import Akd1000Host
    from akida_rt.tools.metatf import import_model

    from akida_rt.learning import edge
    from akida_rt.model.placement import spikes_of

    model = _learner()
    ours = import_model(model)
    model.map(akida.AKD1000())
    rng = np.random.default_rng(2)
    x = (rng.random((8, 8, 8, 4)) < 0.4).astype(np.uint8)
    labels = rng.integers(0, 3, 8)
    software = ours.fit(x, labels)
    host = Akd1000Host(chip, desc="sim/NSoC_v2")  # type: ignore[arg-type]
    host.program(bytes(model.sequences[0].program))
    host.toggle_learn(True)
    host.set_batch_size(1)
    assert np.array_equal(host.fit(x, labels).reshape(8, -1), software.reshape(8, -1))
    learned = host.learn_mem()
    host.update_learn_mem(learned)  # written back as one config write: the same state
    assert np.array_equal(host.learn_mem(), learned)
    host.toggle_learn(False)
    after = host.forward(x[:2])  # inference with the learned weights
    fc = edge.learning_layer(ours.layers)
    spikes = spikes_of(ours, x[:2]).astype(np.int64)
    weights = fc.get_variable("weights").reshape(fc.fan_in, fc.filters).astype(np.int64)
    assert np.array_equal(after.reshape(2, -1), spikes @ weights)
