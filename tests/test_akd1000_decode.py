"""AKD1000 program binaries decoded back into v1 layers, against BrainChip's own models.

The oracle is akida 2.19.3: a v1 model is mapped on `akida.AKD1000()`, each hardware
sequence's program binary is decoded by akida_rt.akd1000.decode, and every decoded layer
must equal akida's layer (type, shapes, kernel, stride, padding, pooling, bits, weights,
thresholds, act_step) and sit on the NPs akida's mapping names. Skips without `akida`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402
from akida_rt.tools.metatf_export import program_binaries  # noqa: E402

from akida_rt.akd1000 import np_registers, sram_layout, weight_maps  # noqa: E402
from akida_rt.akd1000.decode import V1Layer, decode_program, io_of  # noqa: E402
from akida_rt.akd1000.np_state import MeshState, from_program  # noqa: E402
from akida_rt.akd1000.packets import PacketType  # noqa: E402
from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.engine.integer import Engine  # noqa: E402
from akida_rt.format.v1_layers import layers_of, mesh_layers  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from akida_rt.model.model import Model  # noqa: E402
from tests.akd1000_programs import learning_model  # noqa: E402
from tests.metatf_models import (  # noqa: E402
    N_MODELS,
    calibrate,
    random_model,
    random_weights,
    sample,
    v1_zoo,
)
from tests.metatf_probes import input_conv_probe  # noqa: E402

POOLS = {0: "none", 1: "max", 2: "average"}
HRC = (0, 0, -1)


def _hardware_layers(model: Any) -> list[Any]:
    out = []
    for seq in model.sequences:
        if str(seq.backend).endswith("Hardware"):
            out += [layer for p in seq.passes for layer in p.layers]
    return out


def _idents(layer: Any) -> list[tuple[int, int, int]]:
    nps = layer.mapping.nps if layer.mapping else []
    return [HRC if str(n.type).endswith("HRC") else (n.ident.col, n.ident.row, n.ident.id)
            for n in nps]  # fmt: skip


def _mismatches(theirs: Any, ours: V1Layer) -> list[str]:
    """Where decoded layer `ours` differs from akida's `theirs` (act_step at v1's 4
    fractional bits; a 1x1 max pooling is no pooling on the chip)."""
    p = theirs.parameters
    kind = str(p.layer_type).rsplit(".", 1)[-1]
    want: dict[str, Any] = {"kind": kind, "input_shape": tuple(theirs.input_dims)}
    want["filters"] = p.units if kind == "FullyConnected" else p.filters
    want["weights_bits"] = p.weights_bits
    want["activation"] = bool(p.activation)
    if p.activation:
        want["act_bits"] = p.act_bits
    if kind != "FullyConnected":
        pool = POOLS[int(p.pool_type)]
        size, stride = (p.pooling_width, p.pooling_stride_x) if pool == "max" else (1, 1)
        if (pool, size, stride) == ("max", 1, 1):
            pool = "none"
        want.update(kernel=p.kernel_width, stride=p.stride_x, pool=pool, pool_size=size,
                    pool_stride=stride, padding="same" if int(p.padding) else "valid")  # fmt: skip
        if kind == "InputConvolutional":
            want["padding_value"] = p.padding_value
    errors = [
        f"{k}: {getattr(ours, k)!r} != {v!r}" for k, v in want.items() if getattr(ours, k) != v
    ]
    for name in theirs.get_variable_names():
        expected, got = theirs.get_variable(name), ours.variables.get(name)
        if name == "act_step" and p.activation:
            expected = np.floor(expected * 16) / 16
        if got is None or got.shape != expected.shape:
            errors.append(f"{name}: missing or shaped {None if got is None else got.shape}")
        elif name == "act_step" and not p.activation:
            if not np.allclose(got, expected, rtol=1e-6):
                errors.append(f"{name}: differs")
        elif not np.array_equal(got, expected):
            errors.append(f"{name}: {int(np.sum(got != expected))} of {got.size} differ")
    if ours.nps != _idents(theirs):
        errors.append(f"NPs {ours.nps} != {_idents(theirs)}")
    return [f"{theirs.name}: {e}" for e in errors]


def _decode_and_compare(model: Any, mode: str = "AllNps") -> tuple[list[str], int]:
    programs = [p for p in program_binaries(model, mode=mode) if p is not None]
    decoded = decode_program(programs)
    theirs = _hardware_layers(model)
    ours = decoded.layers if theirs[0].parameters.layer_type == akida.LayerType.InputConvolutional \
        else decoded.layers[1:]  # fmt: skip
    if len(ours) != len(theirs):
        return [f"{len(ours)} layers decoded, {len(theirs)} on hardware"], len(programs)
    return [e for t, o in zip(theirs, ours, strict=True) for e in _mismatches(t, o)], len(programs)


def test_conformance_models_decode_exactly() -> None:
    """All 60 conformance models (every layer type, bit width, pooling, stride, padding),
    several of which map as two or three sequences (one program each)."""
    failures, multi = {}, 0
    for seed in range(N_MODELS):
        model, _ = random_model(seed)
        errors, n_programs = _decode_and_compare(model)
        multi += n_programs > 1
        if errors:
            failures[seed] = errors[:3]
    assert not failures, failures
    assert multi >= 5


@pytest.mark.parametrize("mode", ["AllNps", "Minimal"])
@pytest.mark.parametrize("name", ["digits_cnn", "ds_cnn_kws", "akidanet"])
def test_zoo_models_decode_exactly(name: str, mode: str) -> None:
    model, _ = v1_zoo(getattr(zoo, name)(), n=1)
    errors, _ = _decode_and_compare(model, mode)
    assert not errors, errors


def test_decoded_layers_are_the_imported_layers() -> None:
    """The decoded program, as akida_rt layers, is the model `akida import` gives (the
    last layer's output scale to float32 precision: the program keeps 1/act_step as a
    float32, so act_step comes back within one rounding)."""
    model, x = v1_zoo(zoo.digits_cnn(), n=2)
    expected = model.forward(x)  # before mapping: a mapped akida.Model needs a board
    decoded = decode_program(program_binaries(model))
    imported = import_model(model)
    names = [layer.name for layer in imported.layers]
    for ours, theirs in zip(layers_of(decoded, names), imported.layers, strict=True):
        if ours is not imported.layers[-1] and ours.name != names[-1]:
            assert ours.same_as(theirs), ours.name
            continue
        assert ours.describe() == theirs.describe()
        for key in set(ours.variables) | set(theirs.variables):
            a, b = ours.get_variable(key), theirs.get_variable(key)
            assert (
                np.allclose(a, b, rtol=1e-6) if key.startswith("output") else np.array_equal(a, b)
            )
    np.testing.assert_array_equal(Model(layers=layers_of(decoded, names)).forward(x), expected)


@pytest.mark.parametrize("threshold", [2**23 - 1, 4_000_000, 2**20, 2**19, -(2**23)])
def test_hrc_thresholds_are_24_bit(threshold: int) -> None:
    """The HRC's threshold SRAM holds 24-bit two's complement (akida refuses 2^23 and
    -2^23 - 1 on it, 2^19 on a CNP or FNP)."""
    model, _ = input_conv_probe("none")
    model.layers[0].set_variable("threshold", np.full(2, threshold, np.int32))
    errors, _ = _decode_and_compare(model)
    assert not errors, errors


@pytest.mark.parametrize("act_bits", [1, 2, 4])
def test_a_cnp_without_activation_keeps_its_act_bits(act_bits: int) -> None:
    """A last layer without activation: ACTIVATION (w3 bit 15) clear, thresholds -2^19,
    ACT_BITS the layer's own; it decodes as no activation whatever its act_bits."""
    model = akida.Model()
    model.add(akida.InputData(input_shape=(4, 4, 1024), input_bits=4, name="in"))
    model.add(akida.SeparableConvolutional(kernel_size=(3, 3), filters=2, name="sep",
                                           weights_bits=4, act_bits=act_bits, activation=False))  # fmt: skip
    random_weights(model, np.random.default_rng(act_bits))
    errors, _ = _decode_and_compare(model)
    assert not errors, errors
    state = from_program(ProgramBinary.from_bytes(program_binaries(model)[0]))
    cnps = [s for s in state.nps.values() if not s.is_hrc and s.registers.any()]
    assert {np_registers.CNP["ACT_BITS"].get(s.registers) for s in cnps} == {act_bits}
    assert {np_registers.CNP["ACTIVATION"].get(s.registers) for s in cnps} == {0}


def test_learning_layer_decodes_with_its_learning_state() -> None:
    model = learning_model()
    errors, _ = _decode_and_compare(model)
    assert not errors, errors
    decoded = decode_program(program_binaries(learning_model()))
    assert decoded.learning == {"num_weights": 20, "classes": [0, 0, 1, 1, 2, 2]}


def test_layouts_encode_brainchips_bytes() -> None:
    """Every weight layout is one mapping used both ways: scattering the decoded weights
    writes back exactly the words BrainChip's compiler wrote, for every NP memory of the
    zoo's DS-CNN (HRC, separable, FullyConnected) and digits CNN (Conv2D)."""
    checked = 0
    for build in (zoo.ds_cnn_kws, zoo.digits_cnn):
        model, _ = v1_zoo(build(), n=1)
        (binary,) = program_binaries(model)
        decoded = decode_program([binary])
        state = from_program(ProgramBinary.from_bytes(binary))
        for layer in decoded.layers[1:]:
            for ident in layer.nps:
                checked += _check_np(state.nps[ident], layer)
    assert checked > 10


def _check_np(np_state: Any, layer: V1Layer) -> int:
    regs = np_state.registers
    if layer.kind == "FullyConnected":
        units = np_registers.FNP["UNITS"].get(regs)
        inputs = int(np.prod(layer.input_shape))
        layout = weight_maps.fnp(inputs, units, layer.weights_bits)
        mem = np_state.memory(PacketType.FNP_WEIGHTS)
        words = mem.copy()
        per = weight_maps.fnp_neuron_words(inputs, layer.weights_bits)
        keep = np.zeros_like(words)
        keep.reshape(units, per)[:, :4] = words.reshape(units, per)[:, :4]  # metadata
        again = sram_layout.scatter(sram_layout.gather(mem, layout), layout, keep)
        assert np.array_equal(again, mem)
        return 1
    if layer.kind == "InputConvolutional":
        return 0
    first = np_registers.CNP["FIRST_FILTER"].get(regs)
    n = np_registers.CNP["NP_FILTERS"].get(regs)
    if layer.kind == "SeparableConvolutional":
        c, wb = layer.input_shape[2], layer.weights_bits
        dw_mem = np_state.memory(PacketType.CNP_FILTER, 0)
        dw = weight_maps.depthwise(layer.kernel, c, wb)
        assert np.array_equal(sram_layout.scatter(layer.variables["weights"], dw), dw_mem)
        (start,) = [a for a in np_state.starts(PacketType.CNP_FILTER) if a]
        pw_mem = np_state.memory(PacketType.CNP_FILTER, start)
        pw = weight_maps.pointwise(c, n, wb, pw_mem.size // (2 * c))
        kernel = layer.variables["weights_pw"][..., first : first + n]
        assert np.array_equal(sram_layout.scatter(kernel, pw), pw_mem)
        return 1
    blocks = np_registers.CNP["CHANNEL_BLOCKS"].get(regs)
    c = layer.input_shape[2]
    layout = weight_maps.conv(layer.kernel, c, n, layer.weights_bits, blocks)
    assert blocks == weight_maps.conv_channel_blocks(layer.kernel, c, n, layer.weights_bits)
    kernel = layer.variables["weights"][..., first : first + n]
    mem = np_state.memory(PacketType.CNP_FILTER, 0)
    assert np.array_equal(sram_layout.scatter(kernel, layout)[: mem.size], mem)
    return 1


def test_register_fields_encode_what_they_decode() -> None:
    """Each register field put back into a zeroed word set gives the same bits."""
    model, _ = random_model(26)
    for binary in filter(None, program_binaries(model)):
        state = from_program(ProgramBinary.from_bytes(binary))
        for s in state.nps.values():
            if s.is_hrc:
                continue
            cnp = np_registers.KIND.get(s.registers) == np_registers.CNP_KIND
            table = np_registers.CNP if cnp else np_registers.FNP
            for f in table.values():
                words = [0] * 64
                f.put(words, f.get(s.registers))
                assert words[f.word] == int(s.registers[f.word]) & f.mask, f.name


@pytest.mark.parametrize("build", [zoo.digits_cnn, zoo.ds_cnn_kws])
def test_packets_played_one_at_a_time_compute_akidas_forward(build) -> None:
    """The simulated chip's path: each config-DMA packet into MeshState.write as it
    arrives, then format.v1_layers.mesh_layers, then akida_rt's engine."""
    model, x = v1_zoo(build(), n=2)
    expected = model.forward(x)
    (binary,) = program_binaries(model)
    program = ProgramBinary.from_bytes(binary)
    state = MeshState()
    for label, track in program.info.tracks():
        for p in program.packets(track, label):
            state.write(p.col, p.row, p.np_mask, p.hrc, p.type_id, p.start, p.data)
    mesh = mesh_layers(state, io_of(program))
    assert mesh.input_kind == "dense" and mesh.output_kind == "fnp"
    assert mesh.np_counts["layer_0"] == ("HRC", 1)
    np.testing.assert_array_equal(Engine(mesh.layers).run(x.astype(np.float32)), expected)


def test_a_model_too_big_for_one_program_decodes_across_its_programs() -> None:
    """Six 3x3 convolutions of 256 filters fill more than the mesh: akida maps them as two
    hardware sequences, each its own program (chain-loaded); decoded together they are
    the model, and compute its forward."""
    model = akida.Model()
    model.add(akida.InputData(input_shape=(8, 8, 16), input_bits=4, name="in"))
    for i in range(6):
        model.add(akida.Convolutional(kernel_size=(3, 3), filters=256, name=f"conv_{i}",
                                      weights_bits=4, act_bits=4))  # fmt: skip
    model.add(akida.FullyConnected(units=10, name="fc", weights_bits=2, activation=False))
    random_weights(model, np.random.default_rng(0))
    x = sample(model, 2, 0)
    calibrate(model, x, 0)
    expected = model.forward(x)
    programs = program_binaries(model)
    assert len(programs) == 2 and all(programs)
    errors, _ = _decode_and_compare(model)
    assert not errors, errors
    decoded = decode_program(programs)
    assert [layer.sequence for layer in decoded.layers] == [0, 0, 0, 0, 1, 1, 1, 1]
    ours = Model(layers=layers_of(decoded))
    np.testing.assert_array_equal(ours.forward(x), expected)
