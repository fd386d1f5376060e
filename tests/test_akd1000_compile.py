"""akida_rt's own AKD1000 compiler against BrainChip's (akida 2.19.3 on `akida.AKD1000()`):
v1 layers and a placement compile to BrainChip's program binary byte for byte, the
ProgramInfo's host-side fields and a learning FNP3 under several optimizer settings
included. The placement is read from BrainChip's binary. Skips without akida.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import describe  # noqa: E402
from akida_rt.tools.metatf_export import program_binaries  # noqa: E402

from akida_rt import AKD1000  # noqa: E402
from akida_rt.akd1000.decode import DecodedProgram, V1Layer, decode_mesh, io_of  # noqa: E402
from akida_rt.akd1000.np_learning import learning_for, read_learning_registers  # noqa: E402
from akida_rt.akd1000.np_placement import NpSlot, Placement, placement_from  # noqa: E402
from akida_rt.akd1000.np_state import ProgramState  # noqa: E402
from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.akd1000.program_info import IoType  # noqa: E402
from akida_rt.akd1000.program_info_compile import program_info_for  # noqa: E402
from akida_rt.akd1000.sequence_compile import compile_sequence, sequence_layers  # noqa: E402
from akida_rt.errors import LearningError, MappingError, ModelError  # noqa: E402
from akida_rt.mapping.np_slots import placement_for  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.metatf_models import (  # noqa: E402
    N_MODELS,
    calibrate,
    random_model,
    random_weights,
    sample,
    v1_zoo,
)
from tests.test_akd1000_compile_state import _models, _our_plans  # noqa: E402
from tests.test_akd1000_encode import GROUPS, ZOO, programs  # noqa: E402

# Programs of the collected groups that compile_sequence does not give byte for byte,
# with the reason. None today: every conformance, zoo and learning program is exact.
KNOWN_GAPS: dict[str, str] = {}


def _kind(layer: Any) -> str:
    return str(layer.parameters.layer_type).rsplit(".", 1)[-1]


def _decoded(buf: bytes) -> tuple[ProgramBinary, ProgramState, DecodedProgram, Placement]:
    program = ProgramBinary.from_bytes(buf)
    state = ProgramState.from_program(program)
    decoded = decode_mesh(state.mesh, io_of(program))
    return program, state, decoded, placement_from(program, state.mesh, decoded.layers)


def _akida_sequences(model: Any, mode: str = "AllNps") -> list[tuple[list[V1Layer], bytes, bool]]:
    """(akida's own layers of each hardware sequence as compile_sequence takes them,
    BrainChip's binary) for `model` mapped in `mode`: tools.metatf.describe per layer,
    sequence_layers for the input layer and input bits; whether a convolution feeds it."""
    binaries = program_binaries(model, mode=mode)
    first = model.layers[0]
    bits = first.parameters.input_bits if _kind(first) == "InputData" else 8
    out = []
    after_cnp = False
    for seq, buf in zip(model.sequences, binaries, strict=True):
        layers = [layer for p in seq.passes for layer in p.layers if _kind(layer) != "InputData"]
        v1 = [describe(layer, _kind(layer), layer.name) for layer in layers]
        if buf is not None:
            out.append((sequence_layers(v1, bits), buf, after_cnp))
        bits = v1[-1].act_bits if v1 else bits
        after_cnp = bool(v1) and v1[-1].kind in ("Convolutional", "SeparableConvolutional")
    return out


def _compiles_from_akida_layers(model: Any, mode: str = "AllNps", learning=None) -> list[bool]:
    """Per hardware sequence: akida's layers, the placement read from BrainChip's binary,
    compile to that binary."""
    out = []
    for layers, buf, after_cnp in _akida_sequences(model, mode):
        *_, placement = _decoded(buf)
        out.append(compile_sequence(layers, placement, learning, after_cnp) == buf)
    return out


def _learning(state: ProgramState, decoded: DecodedProgram) -> dict[str, Any] | None:
    """decode's learning (classes, num_weights) with the values of BrainChip's learning
    registers."""
    if decoded.learning is None:
        return None
    (np_state,) = state.learning.nps.values()
    return {**decoded.learning, "registers": read_learning_registers(np_state.registers)}


@pytest.mark.parametrize("group", GROUPS)
def test_layers_and_placement_compile_to_brainchips_binary(group: str) -> None:
    """Every program decoded to layers, its placement read back: compile_sequence gives
    BrainChip's exact bytes, and program_info_for each host-side field of its
    ProgramInfo (all but the track tables, which the layout fills)."""
    failures: dict[str, str] = {}
    for name, buf in programs(group).items():
        program, state, decoded, placement = _decoded(buf)
        learning = _learning(state, decoded)
        # what feeds a program is not in it: taken from BrainChip's ProgramInfo here (the
        # tests from akida's layers and our own mapper work it out)
        after_cnp = program.info.input_type == IoType.CNP_SPARSE
        info = program_info_for(decoded.layers, placement, learning is not None,
                                after_cnp=after_cnp)  # fmt: skip
        theirs = dataclasses.replace(program.info, passes=None, learning_layer=None,
                                     dummy_header=None)  # fmt: skip
        if info != theirs:
            a, b = dataclasses.asdict(info), dataclasses.asdict(theirs)
            failures[name] = f"ProgramInfo {[k for k in a if a[k] != b[k]]}"
        elif compile_sequence(decoded.layers, placement, learning, after_cnp) != buf:
            failures[name] = "bytes"
    assert failures == {k: v for k, v in KNOWN_GAPS.items() if k in programs(group)}


@pytest.mark.parametrize("group", ["suite", *ZOO])
def test_akidas_own_layers_compile_to_brainchips_binary(group: str) -> None:
    """Each hardware sequence of the conformance models and the zoo (AllNps and Minimal)
    from akida's own layers (not decoded ones): BrainChip's exact program."""
    if group == "suite":
        results = [ok for seed in range(N_MODELS)
                   for ok in _compiles_from_akida_layers(random_model(seed, n=1)[0])]  # fmt: skip
        assert all(results) and len(results) == len(programs("suite"))
        return
    model = v1_zoo(getattr(zoo, group)(), n=1)[0]
    for mode in ("AllNps", "Minimal"):
        assert all(_compiles_from_akida_layers(model, mode)), mode


@pytest.mark.parametrize("kind", ["SeparableConvolutional", "Convolutional", "FullyConnected"])
@pytest.mark.parametrize(("act_bits", "act_step"), [(1, 0.37), (2, 0.3125), (4, 1.7)])
def test_a_last_layer_sending_potentials_compiles_exactly(kind, act_bits, act_step) -> None:
    """A last layer without activation whose act_step is not a sixteenth (the NPs hold it
    floored, the host its inverse as output_scales) or is one, whatever its act_bits:
    from akida's layers and from the decoded ones, BrainChip's exact program."""
    model = akida.Model()
    model.add(akida.InputData(input_shape=(4, 4, 64), input_bits=4, name="in"))
    layer = getattr(akida, kind)(activation=False, act_bits=act_bits, name="out", weights_bits=2,
                                 **({"units": 5} if kind == "FullyConnected" else
                                    {"kernel_size": (3, 3), "filters": 5}))  # fmt: skip
    model.add(layer)
    random_weights(model, np.random.default_rng(act_bits))
    last = model.layers[-1]
    last.set_variable("act_step", np.full(5, act_step, np.float32))
    assert _compiles_from_akida_layers(model) == [True]
    _, _, decoded, placement = _decoded(program_binaries(model)[0])
    assert compile_sequence(decoded.layers, placement) == program_binaries(model)[0]


def test_a_layer_too_large_for_one_track_compiles_exactly() -> None:
    """Six 3x3 convolutions of 256 filters (two sequences of three layers on 24 NPs
    each): a layer's packets pass a config descriptor's 65535 words, so its record holds
    several tracks, filled packet by packet, and max_num_desc counts them."""
    model = akida.Model()
    model.add(akida.InputData(input_shape=(8, 8, 16), input_bits=4, name="in"))
    for i in range(6):
        model.add(akida.Convolutional(kernel_size=(3, 3), filters=256, name=f"conv_{i}",
                                      weights_bits=4, act_bits=4))  # fmt: skip
    model.add(akida.FullyConnected(units=10, name="fc", weights_bits=2, activation=False))
    random_weights(model, np.random.default_rng(0))
    calibrate(model, sample(model, 2, 0), 0)
    sequences = _akida_sequences(model)
    assert len(sequences) == 2
    for layers, buf, after_cnp in sequences:
        *_, placement = _decoded(buf)
        assert compile_sequence(layers, placement, after_cnp=after_cnp) == buf
        records = ProgramBinary.from_bytes(buf).info.passes[0].records  # type: ignore[index]
        assert max(len(r.tracks or ()) for r in records or ()) == 4


@functools.cache
def _mapped_models() -> dict[str, tuple[Any, str]]:
    """test_akd1000_compile_state's models (conformance, zoo, learning, probes of wide and
    tall inputs), made once per session."""
    return _models()


def _chunk(name: str) -> str:
    if name.startswith("conformance"):
        return f"conformance {int(name.split()[1]) // 30}"
    return "zoo" if name.split()[-1] in ("AllNps", "Minimal") else "probes"


@pytest.mark.parametrize("chunk", ["conformance 0", "conformance 1", "zoo", "probes"])
def test_our_mapper_and_compiler_give_brainchips_binary(chunk: str) -> None:
    """Nothing of BrainChip's but the model: our mapper's placement
    (mapping.np_slots.placement_for) and akida's layers compile to the program binary
    BrainChip's compiler makes, for every hardware sequence (learning: from the settings)."""
    sequences = 0
    for name, (model, mode) in _mapped_models().items():
        if _chunk(name) != chunk:
            continue
        layers, plans = _our_plans(model, mode)
        learning = learning_for(20, 3, 6) if name == "learning FNP3" else None
        for i, ((v1, buf, after_cnp), plan) in enumerate(
            zip(_akida_sequences(model, mode), plans, strict=True)
        ):
            placement = placement_for(plan, layers, AKD1000())
            got = compile_sequence(v1, placement, learning, after_cnp)
            assert got == buf, f"{name} sequence {i}"
            sequences += 1
    assert sequences >= 5


def _learning_model(units: int, **optimizer: Any) -> Any:
    """InputData 8x8x4 -> Convolutional(16) -> FullyConnected(units, 1-bit weights)
    compiled with AkidaUnsupervised(**optimizer)."""
    m = akida.Model()
    m.add(akida.InputData(input_shape=(8, 8, 4), input_bits=1, name="in"))
    m.add(akida.Convolutional(kernel_size=(3, 3), filters=16, name="conv", act_bits=1,
                              weights_bits=2))  # fmt: skip
    m.add(akida.FullyConnected(units=units, name="fc", activation=False, weights_bits=1))
    rng = np.random.default_rng(units)
    for layer in m.layers[1:]:
        w = layer.get_variable("weights")
        layer.set_variable("weights", rng.integers(0, 2, size=w.shape).astype(np.int8))
    m.compile(optimizer=akida.AkidaUnsupervised(**optimizer))
    return m


SETTINGS = [  # (units, AkidaUnsupervised arguments)
    (6, dict(num_weights=20, num_classes=3)),
    (6, dict(num_weights=7, num_classes=6)),
    (6, dict(num_weights=50, num_classes=1)),
    (6, dict(num_weights=13, num_classes=3, learning_competition=0.33)),
    (6, dict(num_weights=20, num_classes=2, learning_competition=1.0)),
    (6, dict(num_weights=20, num_classes=3, initial_plasticity=0.7)),
    (6, dict(num_weights=13, num_classes=3, min_plasticity=0.35)),
    (6, dict(num_weights=1000, num_classes=3, plasticity_decay=0.9, min_plasticity=0.5)),
    (10, dict(num_weights=20, num_classes=2)),
    (40, dict(num_weights=37, num_classes=4, initial_plasticity=0.3, plasticity_decay=0.6)),
]


@pytest.mark.parametrize(("units", "optimizer"), SETTINGS)
def test_a_learning_program_compiles_from_the_optimizer_settings(units, optimizer) -> None:
    """akida's own layers (their threshold_learning and thswap too) and the learning
    layer's classes and registers from the optimizer settings (learning_for), not from
    the binary: BrainChip's exact program."""
    model = _learning_model(units, **optimizer)
    settings = {k: v for k, v in optimizer.items() if k not in ("num_weights", "num_classes")}
    learning = learning_for(optimizer["num_weights"], optimizer.get("num_classes", 1), units,
                            **settings)  # fmt: skip
    assert _compiles_from_akida_layers(model, learning=learning) == [True]


def test_learning_on_a_layer_that_cannot_learn_is_a_mapping_error() -> None:
    layers = [V1Layer("InputData", (4, 4, 1), input_bits=1),
              V1Layer("Convolutional", (4, 4, 1), filters=8, kernel=3, weights_bits=1,
                      input_bits=1, act_bits=1,
                      variables={"weights": np.zeros((3, 3, 1, 8), np.int8),
                                 "threshold": np.zeros(8, np.int32),
                                 "act_step": np.ones(8, np.float32)})]  # fmt: skip
    placement = {1: [NpSlot((1, 3, 0), 0, 8)]}
    with pytest.raises(MappingError, match=r"learning layer 1 \(Convolutional\)"):
        compile_sequence(layers, placement, learning_for(10, 1, 8))


def test_unknown_learning_settings_are_named() -> None:
    with pytest.raises(LearningError, match="learning_rate"):
        learning_for(10, 1, 8, learning_rate=0.1)


def test_potentials_out_without_output_registers_are_named() -> None:
    layers = [V1Layer("InputData", (1, 1, 32), input_bits=1),
              V1Layer("FullyConnected", (1, 1, 32), filters=4, weights_bits=1, input_bits=1,
                      activation=False, variables={"weights": np.zeros((1, 1, 32, 4))})]  # fmt: skip
    with pytest.raises(ModelError, match=r"last layer 1 \(FullyConnected\).*act_step or threshold"):
        program_info_for(layers, {1: [NpSlot((1, 3, 0), 0, 4)]})
