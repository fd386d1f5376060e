"""The mapper against BrainChip's on the virtual AKD1000: NP count and type per layer.

The oracle is `akida.AKD1000()` mapping the same v1 architecture (built with akida's
layer API); skips when the `akida` package is absent.
"""

from __future__ import annotations

import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402

from akida_rt import AKD1000  # noqa: E402
from akida_rt.errors import MappingError  # noqa: E402
from akida_rt.mapping.mapper import MapMode, map_layers  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.metatf_fixtures import FIXTURES, unpack  # noqa: E402
from tests.metatf_mapping_oracle import MODES  # noqa: E402
from tests.metatf_models import (  # noqa: E402
    N_MODELS,
    akida_allocation,
    build,
    from_zoo,
    our_allocation,
    random_spec,
)
from tests.metatf_probes import (  # noqa: E402
    chain,
    convs_then_classifier,
    registers_probe,
    separable,
)

MODELS = {
    "digits_cnn": zoo.digits_cnn,
    "ds_cnn_kws": zoo.ds_cnn_kws,
    "akidanet_05_224": zoo.akidanet,
}


@pytest.mark.parametrize("mode", ["AllNps", "Minimal", "HwPr"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_allocation_matches_brainchip(name: str, mode: str) -> None:
    theirs = from_zoo(MODELS[name]())
    ours = import_model(theirs)
    theirs.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode))
    ours.map(AKD1000(), mode=MapMode(mode))
    assert our_allocation(ours) == akida_allocation(theirs)


@pytest.mark.parametrize(
    ("inputs", "units", "bits"),
    [(1024, 10, 4), (1024, 32, 4), (1024, 64, 4), (1024, 128, 2), (1024, 256, 2),
     (1024, 256, 1), (1024, 512, 1), (4096, 10, 4), (64, 512, 4), (1024, 1000, 4)],
)  # fmt: skip
def test_fully_connected_goes_to_fnp3_or_fnp2_as_brainchip(inputs, units, bits) -> None:
    theirs = akida.Model()
    theirs.add(akida.InputData(input_shape=(1, 1, inputs), input_bits=4, name="in"))
    theirs.add(akida.FullyConnected(units=units, name="fc", weights_bits=bits, activation=False))
    layer = theirs.layers[-1]
    layer.set_variable("weights", (layer.get_variable("weights") * 0 + 1).astype("int8"))
    ours = import_model(theirs)
    theirs.map(akida.AKD1000(), hw_only=True)
    ours.map(AKD1000(), hw_only=True)
    assert our_allocation(ours)["fc"] == akida_allocation(theirs)["fc"]


@pytest.fixture(scope="module")
def brainchip_conformance_allocations():
    from tests.metatf_mapping_oracle import brainchip_allocations

    return brainchip_allocations(N_MODELS)


def test_conformance_models_allocate_as_brainchip(brainchip_conformance_allocations) -> None:
    """NP count and type per layer, in every mode, on the 60 random v1 models (layers that
    BrainChip runs in software, e.g. max pooling not followed by a convolution, take no
    NP in either)."""
    crashed = [s for s, theirs in brainchip_conformance_allocations.items() if theirs is None]
    assert not crashed, f"akida crashed mapping seeds {crashed}"
    mismatches, compared = [], 0
    for seed, theirs in sorted(brainchip_conformance_allocations.items()):
        ours_model = import_model(build(random_spec(seed)))
        for mode in MODES:
            ours_model.map(AKD1000(), mode=MapMode(mode))
            ours = {k: list(v) for k, v in our_allocation(ours_model).items()}
            compared += 1
            if ours != theirs[mode]:
                mismatches.append((seed, mode, theirs[mode], ours))
    assert not mismatches, mismatches
    assert compared == 3 * N_MODELS


@pytest.mark.parametrize("hw_only", [False, True])
@pytest.mark.parametrize("mode", ["AllNps", "Minimal"])
@pytest.mark.parametrize(
    ("channels", "filters", "separable"),
    [(1, 16, False), (1, 17, False), (1, 24, False), (1, 28, False), (1, 32, False),
     (1, 40, False), (1, 41, False), (1, 57, False), (1, 63, False), (2, 24, False),
     (1, 24, True)],
)  # fmt: skip
def test_one_channel_conv_splits_as_brainchip(channels, filters, separable, mode, hw_only) -> None:
    """A Conv2D on one input channel: above 16 filters each NP needs an even number of
    8-filter blocks, else the layer runs in software (hw_only: is refused); AllNps bisects
    the filters per NP as akida does (np_memory.one_channel_split_ok,
    mapping._search_max_filters)."""
    cls = akida.SeparableConvolutional if separable else akida.Convolutional
    theirs = akida.Model()
    theirs.add(akida.InputData(input_shape=(15, 17, channels), input_bits=4, name="in"))
    theirs.add(cls(kernel_size=(3, 3), filters=filters, name="conv", kernel_stride=(2, 2),
                   weights_bits=2, act_bits=1))  # fmt: skip
    theirs.add(akida.FullyConnected(units=4, name="fc", weights_bits=2, activation=False))
    for layer in theirs.layers[1:]:
        for key in ("weights", "weights_pw"):
            if key in layer.get_variable_names():
                w = layer.get_variable(key)
                layer.set_variable(key, (w * 0 + 1).astype("int8"))
    ours = import_model(theirs)
    try:
        theirs.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode), hw_only=hw_only)
    except RuntimeError:
        with pytest.raises(MappingError):
            ours.map(AKD1000(), mode=MapMode(mode), hw_only=hw_only)
        return
    ours.map(AKD1000(), mode=MapMode(mode), hw_only=hw_only)
    expected = {k: v for k, v in akida_allocation(theirs).items() if v[0]}
    assert our_allocation(ours) == expected


def _same_mapping(theirs, mode: str = "AllNps", hw_only: bool = False) -> None:
    """Map the akida.Model and its import: the same NPs per layer, or both refuse (naming
    the same layer)."""
    ours = import_model(theirs)
    try:
        theirs.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode), hw_only=hw_only)
    except RuntimeError as exc:
        layer = str(exc).split("'")[1] if "'" in str(exc) else ""
        with pytest.raises(MappingError, match=layer):
            ours.map(AKD1000(), mode=MapMode(mode), hw_only=hw_only)
        return
    ours.map(AKD1000(), mode=MapMode(mode), hw_only=hw_only)
    expected = {k: v for k, v in akida_allocation(theirs).items() if v[0]}
    assert our_allocation(ours) == expected
    assert len(ours.sequences) == len(theirs.sequences)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FIXTURES)
def test_toolchain_models_map_as_brainchip(name: str, mode: str, tmp_path) -> None:
    """The cnn2snn / quantizeml / akida_models fixtures: NP count and type per layer in
    every mode, or the same refusal (a threshold outside 20 bits)."""
    _same_mapping(akida.Model(str(unpack(name, tmp_path))), mode)


@pytest.mark.parametrize("hw_only", [False, True])
@pytest.mark.parametrize(
    ("kind", "threshold", "act_step", "act"),
    [("conv", 524287, 1.0, True), ("conv", 524288, 1.0, True), ("conv", -524288, 1.0, True),
     ("conv", -524289, 1.0, True), ("conv", 0, 65535.9, True), ("conv", 0, 65536.0, True),
     ("conv", 600000, 1.0, False), ("conv", 0, 70000.0, False), ("separable", 600000, 1.0, True),
     ("separable", 0, 70000.0, True), ("fc", 600000, 1.0, True), ("fc", 0, 70000.0, True),
     ("fc", 600000, 70000.0, False), ("input_conv", 600000, 70000.0, True),
     ("input_conv", 2**23 - 1, 1.0, True), ("input_conv", 2**23, 1.0, True),
     ("input_conv", -(2**23) - 1, 1.0, True), ("input_conv", 0, 1048575.9375, True),
     ("input_conv", 0, 1048576.0, True), ("input_conv", 2**23, 2.0**21, True),
     ("pooled_conv", 600000, 70000.0, True)],
)  # fmt: skip
def test_register_ranges_as_brainchip(kind, threshold, act_step, act, hw_only) -> None:
    """A threshold outside 20 signed bits or an act_step of 65536 or more on an NP is
    refused in every mode (a CNP checks the step without activation too), a threshold
    outside 24 signed bits on the HRC too; an HRC act_step of 1048576 or more runs in
    software (refused with hw_only), where nothing is checked
    (v1_rules.register_violation, hrc_step_violation)."""
    _same_mapping(registers_probe(kind, threshold, act_step, act), hw_only=hw_only)


@pytest.mark.parametrize("hw_only", [False, True])
@pytest.mark.parametrize(
    "spec",
    [["cp", "cv"], ["cp", "cp", "fc"], ["cp", "cp"], ["cp", "c", "cp"], ["cp", "cv", "c"],
     ["cp", "cp", "cv", "c"], ["c", "cv", "cp", "c"], ["cp", "c", "cv"], ["cp", "cp", "c", "fc"]],
    ids="-".join,
)  # fmt: skip
def test_max_pool_cascade_as_brainchip(spec: list[str], hw_only: bool) -> None:
    """A max-pooled convolution runs in software when the next layer does (and when it
    ends the model or feeds a FullyConnected layer)."""
    _same_mapping(chain(spec, shape=(32, 32, 8)), hw_only=hw_only)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("n", "filters", "hw", "channels"),
    [(7, 96, 16, 96), (7, 96, 8, 96), (7, 128, 16, 64), (8, 96, 16, 96), (6, 96, 16, 96),
     (7, 96, 32, 96)],
)  # fmt: skip
def test_classifier_takes_the_leftover_fnp2(n, filters, hw, channels, mode) -> None:
    """Convolutions filling the mesh leave the small classifier an FNP2 (AllNps, HwPr);
    with an FNP3 left it takes the FNP3. The last case also has a globally pooled layer
    whose input needs two tiles: in software."""
    _same_mapping(convs_then_classifier(n, filters, hw, channels), mode)


@pytest.mark.parametrize("mode", ["Minimal", "AllNps"])
@pytest.mark.parametrize(
    ("channels", "filters", "bits"),
    [(1024, 1024, 4), (1024, 960, 4), (1024, 768, 4), (1024, 69, 4), (1024, 72, 4),
     (1024, 137, 4), (512, 1024, 4), (1024, 135, 2), (1024, 136, 2), (1024, 143, 2)],
)  # fmt: skip
def test_separable_np_count_as_brainchip(channels, filters, bits, mode) -> None:
    """A partial block of 8 filters takes a pointwise word of its own (np_memory)."""
    _same_mapping(separable(channels, filters, bits), mode)


@pytest.mark.parametrize(("hw", "channels"), [(32, 96), (32, 84), (30, 96), (16, 336)], ids=str)
def test_global_average_pooling_over_tiles_runs_in_software(hw, channels) -> None:
    _same_mapping(separable(channels, 32, hw=hw, gap=True), "Minimal")
    _same_mapping(convs_then_classifier(1, 32, hw, channels), "Minimal")


@pytest.mark.parametrize("mode", ["AllNps", "Minimal"])
@pytest.mark.parametrize(
    "make",
    [lambda: from_zoo(zoo.digits_cnn()), lambda: from_zoo(zoo.ds_cnn_kws()),
     lambda: convs_then_classifier(7, 96, 16, 96), lambda: convs_then_classifier(6, 96, 16, 96),
     lambda: build(random_spec(9))],
    ids=["digits_cnn", "ds_cnn_kws", "7convs", "6convs", "seed9"],
)  # fmt: skip
def test_np_ids_as_brainchip(make, mode: str) -> None:
    """Our mapper alone (no program binary) hands out akida's NP ids, in akida's order, on
    the real AKD1000 mesh: CNP1-only NPs, then CNP2, FNP3 and FNP2 NPs in mesh order."""
    theirs = make()
    layers = import_model(theirs).layers
    theirs.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode))
    expected = {
        layer.name: [(n.ident.col, n.ident.row, n.ident.id) for n in layer.mapping.nps]
        for layer in theirs.layers
        if layer.mapping and layer.mapping.nps
    }
    plans = map_layers(layers, AKD1000(), mode=MapMode(mode))
    ours = {p.layer: [(n.col, n.row, n.id) for n in p.nps] for s in plans for p in s.placements}
    assert {k: v for k, v in ours.items() if v} == expected
