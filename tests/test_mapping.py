"""The mapper: NP budgets, sequences, modes and hw_only errors on described devices."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt import (
    AKD1000,
    Backend,
    Conv2D,
    FullyConnected,
    InputConv2D,
    MapMode,
    MappingError,
    Model,
    NpType,
    TwoNodesIP,
)
from akida_rt.mapping.mapper import SequencePlan, map_layers
from akida_rt.mapping.np_slots import placement_for
from akida_rt.model import zoo


def test_akd1000_description() -> None:
    spec = AKD1000()
    assert spec.nodes == 20 and len(spec.nps) == 78
    counts = {t: spec.count(t) for t in (NpType.CNP1, NpType.CNP2, NpType.FNP3, NpType.FNP2)}
    assert counts == {NpType.CNP1: 78, NpType.CNP2: 54, NpType.FNP3: 18, NpType.FNP2: 4}
    assert (spec.hrc.col, spec.hrc.row, spec.hrc.id) == (0, 0, 0)
    assert spec.input_sram_per_pair == 43_008 and spec.weight_sram_per_pair == 44_800
    assert len({n.ident for n in spec.nps}) == 78


def test_two_nodes_description() -> None:
    spec = TwoNodesIP()
    assert spec.nodes == 2 and len(spec.nps) == 8


def test_ds_cnn_fits_one_sequence_with_published_np_count() -> None:
    model = zoo.ds_cnn_kws()
    model.map(AKD1000(), hw_only=True)
    (seq,) = model.sequences
    assert seq.backend is Backend.Hardware and seq.passes == 1
    assert seq.np_count == 65  # the user guide's figure for this model
    assert seq.nps_of("conv_0") == "N/A"
    assert len(seq.program) > 0


def test_placements_respect_memories_and_capabilities() -> None:
    spec = AKD1000()
    caps = {np_.ident: np_.types for np_ in spec.nps}
    model = zoo.akidanet(alpha=0.5, size=64, classes=10)
    for mode in MapMode:
        plans = map_layers(model.layers, spec, mode=mode)
        assert [n for p in plans for n in p.layers] == [layer.name for layer in model.layers]
        for plan in plans:
            for pass_index in range(plan.passes):
                used = [
                    n
                    for p in plan.placements
                    if p.pass_index == pass_index and p.np_type not in ("HRC", "none")
                    for n in p.nps
                ]
                assert len(used) == len(set(used)), f"{mode}: an NP is used twice in one pass"
            for p in plan.placements:
                if p.np_type in ("CNP1", "CNP2"):
                    assert all(NpType(p.np_type) in caps[n] for n in p.nps)
                    assert p.weight_bytes <= len(p.nps) * spec.np_weight_bytes, p.layer
                    assert p.input_bytes <= len(p.nps) * spec.np_input_bytes, p.layer


def _wide_model(layers: int = 9, filters: int = 128) -> Model:
    # Each 128-filter conv takes 2 NPs (its weights need two filter groups): 9 of them
    # fill three sequences (or passes) of the 8-NP TwoNodesIP.
    model = Model(name="wide")
    model.add(InputConv2D("conv_0", (16, 16, 3), 64, 3))
    for i in range(1, layers + 1):
        model.add(Conv2D(f"conv_{i}", filters, 3, weight_bits=4))
    model.add(FullyConnected("dense", 10, activation=False))
    return zoo.randomize(model, seed=0)


def test_split_into_sequences_and_chain_results_identical() -> None:
    model = _wide_model()
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    expected = model.forward(x)
    model.map(TwoNodesIP())
    assert len(model.sequences) >= 3
    assert all(s.backend is Backend.Hardware for s in model.sequences)
    names = [n for s in model.sequences for n in s.layer_names]
    assert names == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(model.forward(x), expected)


def test_hw_only_names_layer_and_resource() -> None:
    model = _wide_model()
    with pytest.raises(MappingError, match=r"conv_\d+ needs \d+ CNP1, \d+ available"):
        model.map(TwoNodesIP(), hw_only=True)


def test_hwpr_uses_passes_instead_of_sequences() -> None:
    model = _wide_model()
    model.map(TwoNodesIP(), mode=MapMode.HwPr)
    (seq,) = model.sequences
    assert seq.passes >= 3


def test_minimal_uses_fewer_nps_than_allnps() -> None:
    model = zoo.ds_cnn_kws()
    model.map(AKD1000(), mode=MapMode.Minimal)
    minimal = model.sequences[0].np_count
    model.map(AKD1000(), mode=MapMode.AllNps)
    assert minimal < model.sequences[0].np_count


def test_layer_too_big_for_hardware_becomes_software_sequence() -> None:
    model = Model(name="k9")
    model.add(InputConv2D("conv_0", (12, 12, 1), 8, 3))
    model.add(Conv2D("huge_kernel", 8, 9))
    model.add(Conv2D("conv_2", 8, 3))
    model.add(FullyConnected("dense", 4, activation=False))
    zoo.randomize(model)
    model.map(AKD1000())
    backends = [(s.backend, s.layer_names) for s in model.sequences]
    assert backends[1] == (Backend.Software, ["huge_kernel"])
    assert model.sequences[1].program == b""
    with pytest.raises(
        MappingError,
        match=r"huge_kernel cannot run on AKD1000: Conv2D kernel size is 9x9; Akida 1\.0 hardware "
        r"constraints allow 1x1, 3x3, 5x5, 7x7",
    ):
        model.map(AKD1000(), hw_only=True)


def test_mapping_is_pure_and_deterministic() -> None:
    model = zoo.digits_cnn()
    before = model.to_bytes()
    a = map_layers(model.layers, AKD1000())
    b = map_layers(model.layers, AKD1000())
    assert a == b
    assert model.to_bytes() == before


def test_summary_after_mapping_shows_sequences_and_nps(capsys) -> None:
    model = zoo.ds_cnn_kws()
    model.map(AKD1000())
    model.summary()
    out = capsys.readouterr().out
    assert "[49, 10, 1]  [1, 1, 33]    1          6       65" in out
    assert "HW/conv_0-dense_5 (Hardware plan, runs in Software: no device) - size:" in out
    assert "(1, 1, 64, 64)" in out


def test_placement_for_refuses_software_and_passes() -> None:
    """Per-NP slots exist only for a hardware sequence of one pass."""
    for plan in (SequencePlan(Backend.Software, ["a"]), SequencePlan(Backend.Hardware, ["a"], 2)):
        with pytest.raises(MappingError, match="one pass"):
            placement_for(plan, [], AKD1000())
