"""AKD1000 program binaries decoded and encoded back at every level, byte for byte, against
BrainChip's compiler (akida 2.19.3 mapping onto `akida.AKD1000()`): the ProgramInfo
flatbuffer, the program data, the config-DMA packets, the NP state, the register words
and the SRAM contents, for every conformance and zoo program. Then NP state edited by
value encodes to what akida compiles for the edited model. Skips without akida.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf_export import program_binaries  # noqa: E402

from akida_rt.akd1000 import np_registers, packet_plan  # noqa: E402
from akida_rt.akd1000.decode import (  # noqa: E402
    decode_mesh,
    decode_program,
    io_of,
)
from akida_rt.akd1000.np_compare import differences  # noqa: E402
from akida_rt.akd1000.np_compile import np_state_for  # noqa: E402
from akida_rt.akd1000.np_placement import placement_from  # noqa: E402
from akida_rt.akd1000.np_state import (  # noqa: E402
    NpState,
    ProgramPlan,
    ProgramState,
    RecordPlan,
)
from akida_rt.akd1000.packets import encode_track, parse_track  # noqa: E402
from akida_rt.akd1000.program_binary import SIZE_WORD, ProgramBinary  # noqa: E402
from akida_rt.akd1000.program_data import build_program_data  # noqa: E402
from akida_rt.akd1000.program_info import read_program_info  # noqa: E402
from akida_rt.akd1000.program_info_build import build as build_info  # noqa: E402
from akida_rt.akd1000.sequence_compile import compile_sequence  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.akd1000_programs import learning_model  # noqa: E402
from tests.metatf_models import N_MODELS, random_model, v1_zoo  # noqa: E402

ZOO = ("digits_cnn", "ds_cnn_kws", "akidanet", "mnist_cnn", "gxnor_mnist")
GROUPS = ("suite", *ZOO, "learning")


@functools.cache
def programs(group: str) -> dict[str, bytes]:
    """BrainChip's program binaries of a group of models, made once per test session:
    the 60 conformance models, each zoo model mapped AllNps and Minimal, a learning FNP3."""
    out: dict[str, bytes] = {}
    if group == "suite":
        models = {f"suite {seed}": (random_model(seed)[0], "AllNps") for seed in range(N_MODELS)}
    elif group == "learning":
        models = {"learning": (learning_model(), "AllNps")}
    else:
        model = v1_zoo(getattr(zoo, group)(), n=1)[0]  # mapped once per mode
        models = {f"{group} {m}": (model, m) for m in ("AllNps", "Minimal")}
    for name, (model, mode) in models.items():
        for i, p in enumerate(program_binaries(model, mode=mode)):
            if p is not None:
                out[f"{name} seq {i}"] = p
    return out


def _info_level(buf: bytes) -> bool:
    n = int.from_bytes(buf[:SIZE_WORD], "little")
    return build_info(read_program_info(buf[SIZE_WORD : SIZE_WORD + n])) == buf[: SIZE_WORD + n]


def _data_level(p: ProgramBinary) -> bool:
    return build_program_data(p.words())[0] == p.data


def _packet_level(p: ProgramBinary) -> bool:
    return all(
        np.array_equal(encode_track(parse_track(p.track_words(t))), p.track_words(t))
        for _, t in p.info.tracks()
    )


def _register_level(state: ProgramState) -> bool:
    for s in state.mesh.nps.values():
        kind = np_registers.kind_of(s.registers, s.is_hrc)
        words = np_registers.pack(np_registers.unpack(kind, s.registers))
        if words != [int(w) for w in s.registers]:
            return False
    return True


def _memory_level(state: ProgramState, buf: bytes) -> bool:
    """Every NP's memories as np_compile writes them from the program's decoded layers
    (values) and placement: the same words, the same memories (the compiler is the one
    SRAM encoder)."""
    program = ProgramBinary.from_bytes(buf)
    decoded = decode_mesh(state.mesh, io_of(program))
    placement = placement_from(program, state.mesh, decoded.layers)
    ours = np_state_for(decoded.layers, placement, decoded.learning)
    return not differences(ours, state.mesh)


@pytest.mark.parametrize("group", GROUPS)
def test_every_level_encodes_back_to_brainchips_bytes(group: str) -> None:
    failures: dict[str, list[str]] = {}
    for name, buf in programs(group).items():
        p = ProgramBinary.from_bytes(buf, name)
        state = ProgramState.from_program(p)
        levels = {
            "program info": _info_level(buf),
            "program data": _data_level(p),
            "packets": _packet_level(p),
            "NP state": state.to_bytes() == buf,
            "registers": _register_level(state),
            "SRAM": _memory_level(state, buf),
        }
        bad = [level for level, ok in levels.items() if not ok]
        if bad:
            failures[name] = bad
    assert not failures, failures
    assert len(programs(group)) >= {"suite": N_MODELS, "learning": 1}.get(group, 2)


def test_register_bits_no_field_names_are_in_the_raw_words() -> None:
    """Every register bit outside the named fields lies in a word np_registers.RAW_WORDS
    lists (docs/program-binary.md), and each listed word is seen with such bits."""
    seen: dict[str, set[int]] = {kind: set() for kind in np_registers.KINDS}
    for group in GROUPS:
        for buf in programs(group).values():
            for s in ProgramState.from_bytes(buf).mesh.nps.values():
                if s.registers.any():
                    kind = np_registers.kind_of(s.registers, s.is_hrc)
                    seen[kind] |= set(np_registers.unpack(kind, s.registers).raw)
    assert seen == np_registers.RAW_WORDS


def test_only_the_hrc_protocol_writes_are_carried_as_differences() -> None:
    """What the packet plan does not take from the NP state: the HRC's load flag (word 8
    bit 0 while its SRAM is written) and start pulse (word 0 = 1, then 0)."""
    diffs = set()
    for buf in {**programs("suite"), **programs("digits_cnn")}.values():
        plan = ProgramState.from_bytes(buf).plan
        for track, _ in plan.slots():
            diffs |= {(s.hrc, s.start, tuple(int(w) for w in s.diff)) for s in track
                      if s.diff is not None}  # fmt: skip
    assert diffs == {(True, 8, (1, 0, 0, 0, 0, 0, 0, 0)), (True, 0, (1,))}


# --- edits by value ---------------------------------------------------------------------


def _edited(base: bytes, edits: list[tuple[int, str, tuple, int]]) -> bytes:
    """The program `base` compiled again from its decoded layers with each edit (akida's
    layer index, variable name and index; act_step as act_step x 16) set by value."""
    program = ProgramBinary.from_bytes(base)
    state = ProgramState.from_program(program)
    decoded = decode_mesh(state.mesh, io_of(program))
    placement = placement_from(program, state.mesh, decoded.layers)
    for layer, name, index, value in edits:
        decoded.layers[layer].variables[name][index] = value / 16 if name == "act_step" else value
    return compile_sequence(decoded.layers, placement)


def _akida_edit(model: Any, layer: int, name: str, index: tuple, value: int) -> None:
    target = model.layers[layer]
    v = target.get_variable(name)
    v[index] = value / 16 if name == "act_step" else value
    target.set_variable(name, v)


EDITS = {  # (akida layer, variable, index, smallest value, largest value) of digits_cnn
    "HRC threshold": (0, "threshold", (5,), -300, 300),
    "HRC weight": (0, "weights", (1, 2, 0, 7), -127, 127),
    "CNP threshold": (2, "threshold", (40,), -500, 500),
    "CNP act_step": (3, "act_step", (9,), 16, 400),
    "CNP weight": (1, "weights", (2, 0, 5, 30), -7, 7),
    "FNP weight": (4, "weights", (0, 0, 700, 3), -7, 7),
}


@functools.cache
def _digits() -> tuple[bytes, np.ndarray]:
    model, x = v1_zoo(zoo.digits_cnn(), n=2)
    return program_binaries(model)[0], x  # type: ignore[return-value]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit=st.sampled_from(sorted(EDITS)), data=st.data())
def test_an_edit_by_value_encodes_as_akida_compiles_the_edited_model(edit, data) -> None:
    layer, name, index, lo, hi = EDITS[edit]
    value = data.draw(st.integers(lo, hi), label="value")
    base, _ = _digits()
    ours = _edited(base, [(layer, name, index, value)])

    model, _ = v1_zoo(zoo.digits_cnn(), n=2)
    _akida_edit(model, layer, name, index, value)
    assert ours == program_binaries(model)[0]
    got = decode_program([ours]).layers[layer].variables[name][index]
    assert got == (value / 16 if name == "act_step" else value)


def test_an_edited_program_runs_on_brainchips_engine_as_our_engine_runs_the_edited_model():
    """Several edits by value (an HRC weight, CNP thresholds and act_step, an FNP weight)
    encoded into a program: BrainChip's engine runs it on our simulated chip and gives
    the outputs akida_rt's software engine gives for the model edited the same way."""
    from akida_rt.tools.metatf import import_model

    from tests.brainchip_engine.harness import run_engine, skip_reason

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    chip = pytest.importorskip("akida_rt.firmware_sim.akd1000_chip")
    base, x = _digits()
    model, _ = v1_zoo(zoo.digits_cnn(), n=2)
    edits = [("HRC weight", -90), ("CNP threshold", -200), ("CNP act_step", 40),
             ("CNP weight", 7), ("FNP weight", -6)]  # fmt: skip
    changes = []
    for edit, value in edits:
        layer, name, index, _, _ = EDITS[edit]
        changes.append((layer, name, index, value))
        _akida_edit(model, layer, name, index, value)
    expected = import_model(model).forward(x)
    assert not np.array_equal(expected, import_model(v1_zoo(zoo.digits_cnn(), n=2)[0]).forward(x))
    np.testing.assert_array_equal(expected, model.forward(x))  # akida agrees
    run = run_engine(chip.Akd1000Chip(serial="EDITED1"), [_edited(base, changes)], x)
    np.testing.assert_array_equal(run.outputs.reshape(expected.shape), expected)


@st.composite
def _register_edit(draw: st.DrawFn) -> tuple[str, str, int]:
    kind = draw(st.sampled_from(np_registers.KINDS))
    name = draw(st.sampled_from(sorted(np_registers.table_of(kind))))
    f = np_registers.table_of(kind)[name]
    return kind, name, f.decode(draw(st.integers(0, (1 << f.width) - 1)))


@settings(max_examples=60, deadline=None)
@given(edit=_register_edit())
def test_a_register_field_set_by_value_packs_to_words_that_unpack_to_it(edit) -> None:
    """Any field of a real NP's registers set to any value it can hold: the packed words
    read back that value, every other field and every raw bit unchanged."""
    kind, name, value = edit
    s = _real_nps()[kind]
    before = np_registers.unpack(kind, s.registers)
    after = np_registers.unpack(kind, np_registers.pack(before.replace(**{name: value})))
    assert after.fields == {**before.fields, name: value}
    assert after.raw == before.raw


@functools.cache
def _real_nps() -> dict[str, NpState]:
    """One NP of each kind from the DS-CNN program (HRC, CNPs, an FNP)."""
    state = ProgramState.from_bytes(next(iter(programs("ds_cnn_kws").values())))
    out = {}
    for s in state.mesh.nps.values():
        if s.registers.any():
            out.setdefault(np_registers.kind_of(s.registers, s.is_hrc), s)
    return out


def _standard_plan(state: ProgramState) -> ProgramPlan:
    """The plan packet_plan builds from the NP state alone, given each track's NP order."""
    hrc = state.mesh.hrc
    passes = []
    for records in state.plan.passes:
        out = []
        for r in records:
            (track,) = r.tracks
            if track and track[0].hrc and hrc is not None:
                if track[0].start == 4:
                    t = packet_plan.hrc_setup_slots(hrc)
                else:
                    t = packet_plan.hrc_layer_slots(hrc)
            else:
                order = list(dict.fromkeys(s.idents[0] for s in track))
                nps = [state.mesh.nps[i] for i in order]
                t = packet_plan.layer_slots(nps, ddr_weights=r.fnp2 is not None)
            out.append(RecordPlan((t,), r.fnp2))
        passes.append(tuple(out))
    return ProgramPlan(tuple(passes), state.plan.learn)


@pytest.mark.parametrize("group", GROUPS)
def test_the_standard_packet_plan_encodes_brainchips_bytes(group: str) -> None:
    """packet_plan's packets for every NP, HRC setup and HRC layer, in each track's NP
    order, give BrainChip's exact program: the plan a compiler can build."""
    for name, buf in programs(group).items():
        state = ProgramState.from_bytes(buf)
        state.plan = _standard_plan(state)
        assert state.to_bytes() == buf, name


@pytest.mark.parametrize("group", [g for g in GROUPS if g != "learning"])
def test_np_state_compiled_from_layers_encodes_brainchips_binary(group: str) -> None:
    """The whole way from v1 layers: each program decoded to layers and a placement,
    np_compile's NP state for them, packet_plan's plan for that placement, encoded with
    BrainChip's ProgramInfo (host side: track offsets are laid out anew): BrainChip's
    exact bytes."""
    for name, buf in programs(group).items():
        program = ProgramBinary.from_bytes(buf, name)
        theirs = ProgramState.from_program(program)
        decoded = decode_mesh(theirs.mesh, io_of(program))
        placement = placement_from(program, theirs.mesh, decoded.layers)
        mesh = np_state_for(decoded.layers, placement, decoded.learning)
        plan = packet_plan.program_plan(mesh, placement)
        assert ProgramState(program.info, mesh, plan).to_bytes() == buf, name
