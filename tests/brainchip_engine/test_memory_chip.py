"""BrainChip's own Akida Engine programs and runs a memory-backed stand-in AKD1000.

Proves the harness (build, bridge, per-phase counts) before the simulated chip exists,
and pins the host-interface facts the simulated chip must answer, against akida's own
mapping of the same models.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.brainchip_engine import build
from tests.brainchip_engine.harness import EngineError, EngineSession, run_engine, skip_reason
from tests.brainchip_engine.memory_chip import MemoryChip

akida = pytest.importorskip("akida")

_reason = skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

REGISTERS, FILTERS, THRESHOLDS, FNP_WEIGHTS = 8, 0, 4, 6


@pytest.fixture(scope="module")
def digits() -> object:
    """akida's own digits CNN (random weights), mapped on its virtual AKD1000."""
    from akida_rt.model import zoo
    from tests.metatf_models import from_zoo

    model = from_zoo(zoo.digits_cnn(seed=0))
    model.map(akida.AKD1000(), hw_only=True)
    assert len(model.sequences) == 1
    return model


@pytest.fixture(scope="module")
def learner() -> object:
    """A 64-input, 1-bit FullyConnected compiled for labelled learning (one FNP3)."""
    model = akida.Model()
    model.add(akida.InputData(input_shape=(1, 1, 64), input_bits=1, name="in"))
    model.add(akida.FullyConnected(units=6, weights_bits=1, activation=False, name="fc"))
    model.compile(optimizer=akida.AkidaUnsupervised(num_weights=8, num_classes=3))
    model.map(akida.AKD1000(), hw_only=True)
    return model


def _nps(model: object) -> set[tuple[int, int, int]]:
    return {
        (n.ident.col, n.ident.row, n.ident.id)
        for layer in model.layers  # type: ignore[attr-defined]
        if layer.mapping is not None
        for n in layer.mapping.nps
    }


def test_engine_programs_digits_on_the_memory_chip(digits) -> None:
    chip = MemoryChip()
    with EngineSession(chip) as engine:
        assert engine.version == (0xBC, 0, 0, 2)  # NSoC_v2, from the driver's desc
        info = engine.program(digits.sequences[0].program)
    assert (info.input_shape, info.output_shape) == ((32, 32, 1), (1, 1, 10))
    assert info.input_dense and info.passes == 1
    writes = [job for job in chip.config_jobs if job.direction == 1]
    packets = [p for job in writes for p in chip.packets(job)]  # raises unless whole
    # One register packet per NP akida placed (the HRC's come with HRC enable set).
    np_registers = {
        (p.key[0], p.key[1], p.key[2].bit_length() - 1)
        for p in packets
        if p.kind == REGISTERS and p.key[3] == 0
    }
    assert np_registers == _nps(digits) - {(0, 0, 0)}
    assert {p.kind for p in packets} == {REGISTERS, FILTERS, THRESHOLDS, FNP_WEIGHTS}
    assert engine.counts["program"].bytes_written >= sum(4 * j.words for j in writes)


def test_engine_infers_through_the_hrc_dma(digits) -> None:
    chip = MemoryChip()
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 1), dtype=np.uint8)
    run = run_engine(chip, [digits.sequences[0].program], images, batch_size=4)
    # The chip answered every job with an empty output: the engine decodes zeros.
    assert run.outputs.shape == (5, 1, 1, 10) and not run.outputs.any()
    jobs = chip.input_jobs
    assert [j.dma for j in jobs] == ["hrc"] * 5
    assert [j.job_id for j in jobs] == [1, 2, 3, 4, 5]
    for job, image in zip(jobs, images, strict=True):
        assert job.data == image.tobytes()
        assert job.words[2] == 32 << 16 | 32  # col height, row bytes
        assert job.label_field == 0
    assert len({j.target for j in jobs[:4]}) == 4  # one output slot per batch entry
    assert run.counts["batch"].accesses < 30
    assert run.counts["inference"].writes >= 3 * 5  # input, descriptor, DESC_CONT


def test_engine_learns_reads_and_restores_learning_memory(learner) -> None:
    chip = MemoryChip()
    spikes = np.random.default_rng(1).integers(0, 2, (3, 1, 1, 64), dtype=np.uint8)
    (fnp3,) = _nps(learner)
    key = (fnp3[0], fnp3[1], 1 << fnp3[2], 0, FNP_WEIGHTS)
    with EngineSession(chip) as engine:
        info = engine.program(learner.sequences[0].program)
        assert info.can_learn and not info.input_dense
        programmed = dict(chip.np_memory[key])  # the weight packet the program wrote
        engine.toggle_learn(True)
        engine.set_batch_size(1)
        outputs = engine.fit(spikes, [0, 1, 2])
        memory = engine.learn_mem()
        changed = memory.copy()
        changed[-1] ^= 1
        engine.update_learn_mem(changed)
        again = engine.learn_mem()
    assert outputs.shape == (3, 1, 1, 6)
    labels = [(j.dma, j.label_field >> 16) for j in chip.input_jobs]
    assert labels == [("event", 1), ("event", 2), ("event", 3)]  # label + 1, bits 25:16
    # The read-back is a config read of the FNP3's weight SRAM: header, then its words.
    assert info.learn_mem_words == len(memory) == 2 + len(programmed)
    assert [int(w) for w in memory[2:]] == [programmed[i] for i in range(len(programmed))]
    assert np.array_equal(again, changed)  # update_learn_mem is one config write


def test_engine_panics_reach_python_and_the_session_survives(digits) -> None:
    with EngineSession(MemoryChip()) as engine:
        with pytest.raises(EngineError, match="set batch size"):
            engine.set_batch_size(1)
        engine.program(digits.sequences[0].program)
        with pytest.raises(EngineError, match="input has 100 elements"):
            engine.set_batch_size(1)
            engine.forward(np.zeros((1, 10, 10, 1), np.uint8))


def test_engine_refuses_a_chip_that_is_not_an_akd1000() -> None:
    with pytest.raises(EngineError, match="NSoC_v1 is not supported"):
        EngineSession(MemoryChip(), desc="bench/NSoC_v1")


def test_missing_flatbuffers_headers_is_a_skip_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(build, "FLATBUFFERS_HEADER", tmp_path / "flatbuffers.h")
    with pytest.raises(build.EngineUnavailable, match="libflatbuffers-dev"):
        build.bridge_path()


def test_the_build_is_cached() -> None:
    exe = build.bridge_path()
    stamp = exe.stat().st_mtime_ns
    assert build.bridge_path() == exe and exe.stat().st_mtime_ns == stamp
    assert exe.is_relative_to(build.REPO / "build" / "brainchip_engine")
