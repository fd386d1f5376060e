"""Our AKD1000 host protocol (driver/akd1000_*.py) against BrainChip's own Akida Engine:
on the same memory-backed chip, with the same real programs from akida, our driver makes
exactly the engine's accesses (address, size, value, order) in every phase: program,
batch set-up, inference, chain-loading and learning. Skips when the engine cannot be
built here (g++ and libflatbuffers-dev) or akida is absent."""

from __future__ import annotations

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.driver.akd1000_host import Akd1000Host, desc_for_pci  # noqa: E402
from akida_rt.driver.bus import Bus  # noqa: E402

from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.errors import DeviceError, TransportTimeout  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.akd1000_programs import cnp_model, learning_model, programs, split_models  # noqa: E402
from tests.brainchip_engine.harness import EngineSession, run_engine, skip_reason  # noqa: E402
from tests.brainchip_engine.memory_chip import MemoryChip  # noqa: E402
from tests.metatf_models import from_zoo, random_model  # noqa: E402

REASON = skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


class ByteBus(Bus):
    """A chip that answers byte reads and writes, as the engine's bridge reaches it."""

    def __init__(self, chip: MemoryChip) -> None:
        self.chip = chip

    def read32(self, addr: int) -> int:
        return int.from_bytes(self.chip.read(addr, 4), "little")

    def write32(self, addr: int, value: int) -> None:
        self.chip.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def read(self, addr: int, n: int) -> bytes:
        return self.chip.read(addr, n)

    def write(self, addr: int, data: bytes) -> None:
        self.chip.write(addr, bytes(data))

    def close(self) -> None:
        pass


def _trace(accesses) -> list[tuple]:
    return [(a.phase, a.op, a.addr, a.size, a.value) for a in accesses]


def _inputs(program: bytes, n: int, seed: int = 0) -> np.ndarray:
    dims = ProgramBinary.from_bytes(program).info.input_dims
    return np.random.default_rng(seed).integers(0, 16, size=(n, *dims)).astype(np.uint8)


def _host(trace: bool = True) -> Akd1000Host:
    return Akd1000Host(ByteBus(MemoryChip()), desc=desc_for_pci(0x1E7C, 0xBCA1), trace=trace)


@pytest.fixture(scope="module")
def sample_programs() -> dict[str, list[bytes]]:
    return {
        "image (HRC) input": programs(random_model(0)[0]),
        "event (CNP) input": programs(cnp_model()),
        "digits": programs(from_zoo(zoo.digits_cnn(seed=0))),
    }


@pytest.mark.parametrize("name", ["image (HRC) input", "event (CNP) input", "digits"])
@pytest.mark.parametrize("batch", [1, 2, 16])
def test_same_accesses_as_brainchip_engine(sample_programs, name: str, batch: int) -> None:
    progs = sample_programs[name]
    x = _inputs(progs[0], 5)
    theirs = run_engine(MemoryChip(), progs, x, batch_size=batch, trace=True)
    host = _host()
    ours = host.run_sequences(progs, x, batch_size=batch)
    assert _trace(host.log.trace) == _trace(theirs.trace)
    assert np.array_equal(ours, theirs.outputs)
    for phase, c in theirs.counts.items():
        mine = host.counts[phase]
        assert (mine.reads, mine.writes, mine.bytes_read, mine.bytes_written) == (
            c.reads, c.writes, c.bytes_read, c.bytes_written)  # fmt: skip


def test_chain_loaded_sequences_same_accesses() -> None:
    # two sequences loaded one after the other, the first one's outputs feeding the second
    first, second = (programs(m)[0] for m in split_models())
    x = _inputs(first, 3)
    theirs = run_engine(MemoryChip(), [first, second], x, batch_size=2, trace=True)
    host = _host()
    host.run_sequences([first, second], x, batch_size=2)
    assert _trace(host.log.trace) == _trace(theirs.trace)


def test_learning_same_accesses_as_brainchip_engine() -> None:
    prog = programs(learning_model())[0]
    x = (_inputs(prog, 4, seed=3) > 7).astype(np.uint8)
    labels = [0, 2, 1, 2]
    with EngineSession(MemoryChip(), desc="bridge/NSoC_v2", trace=True) as engine:
        engine.program(prog)
        engine.set_batch_size(4)
        engine.toggle_learn(True)
        engine.fit(x, labels)
        theirs_mem = engine.learn_mem()
        engine.update_learn_mem(theirs_mem)
        engine.toggle_learn(False)
        engine.forward(x)
        theirs = _trace(engine.trace)
    host = _host()
    host.program(prog)
    host.set_batch_size(4)
    host.toggle_learn(True)
    host.fit(x, labels)
    mem = host.learn_mem()
    host.update_learn_mem(mem)
    host.toggle_learn(False)
    host.forward(x)
    # the bridge names learning calls 'learning' and fit 'inference', as we do
    assert _trace(host.log.trace) == theirs
    assert np.array_equal(mem, theirs_mem)
    # the learning memory is the program's weight track as the memory chip holds it
    info = ProgramBinary.from_bytes(prog)
    track = info.info.learning_layer.ram.tracks[0]
    assert np.array_equal(mem, info.track_words(track))


def test_refusals_are_one_line(sample_programs) -> None:
    host = _host(trace=False)
    with pytest.raises(DeviceError, match="no program"):
        host.set_batch_size(4)
    host.program(sample_programs["event (CNP) input"][0])
    with pytest.raises(DeviceError, match="learning is disabled"):
        host.fit(_inputs(sample_programs["event (CNP) input"][0], 1), [0])
    with pytest.raises(DeviceError, match="no learning layer"):
        host.toggle_learn(True)
    unknown = Akd1000Host(ByteBus(MemoryChip()), desc="")
    with pytest.raises(DeviceError) as e:
        unknown.program(sample_programs["digits"][0])
    assert "NSoC_v2" in str(e.value) and "\n" not in str(e.value)


class _SilentChip(MemoryChip):
    """A chip whose input DMAs never finish a job, and whose config DMA never answers
    once `config_dead` is set."""

    config_dead = False

    def _run_inputs(self, base: int) -> None:
        pass

    def _run_config(self) -> None:
        if not self.config_dead:
            super()._run_config()


def test_a_chip_that_never_answers_times_out_in_one_line(sample_programs) -> None:
    chip = _SilentChip()
    host = Akd1000Host(ByteBus(chip), desc="NSoC_v2", timeout_s=0.2)
    prog = sample_programs["event (CNP) input"][0]
    host.program(prog)
    host.set_batch_size(2)
    with pytest.raises(TransportTimeout) as e:
        host.forward(_inputs(prog, 3))
    assert "0/3" not in str(e.value) and "2/3 inputs queued" in str(e.value)
    assert "\n" not in str(e.value) and host.info is None  # reset, as the engine does
    chip.config_dead = True
    with pytest.raises(TransportTimeout, match="config_dma did not finish record 0 track 0"):
        host.program(prog)


class _LyingChip(MemoryChip):
    """A chip whose output headers announce far more words than an output slot holds."""

    def _run_inputs(self, base: int) -> None:
        super()._run_inputs(base)
        for job in self.input_jobs:
            self.write32(job.target, 0x0FFFFFFF)


def test_an_output_header_past_its_slot_is_refused(sample_programs) -> None:
    prog = sample_programs["digits"][0]
    host = Akd1000Host(ByteBus(_LyingChip()), desc="NSoC_v2")
    host.program(prog)
    with pytest.raises(DeviceError, match="announces 268435455 words but the output slot"):
        host.forward(_inputs(prog, 1))
