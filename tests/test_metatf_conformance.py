"""Conformance with BrainChip's `akida` 2.19.3 (the oracle) on randomized v1 models.

Each model is built with akida's own layer API (tests/metatf_models.py), imported with
`akida_rt.tools.metatf`, and run by both on the same inputs: `forward` bit-identical,
`predict` within 1e-6, and the simulated AKD1000 identical to the software backend.
Skips when the `akida` package (the [metatf] extra) is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.driver.bus import open_bus  # noqa: E402
from akida_rt.driver.device import Device  # noqa: E402
from akida_rt.driver.sim_transport import drop_chip  # noqa: E402
from akida_rt.tools.metatf import import_model  # noqa: E402

from akida_rt.errors import ConversionError, MappingError  # noqa: E402
from akida_rt.format import v1_rules  # noqa: E402
from tests.metatf_fixtures import FIXTURES, inputs, unpack  # noqa: E402
from tests.metatf_models import N_MODELS, random_model, random_spec, random_weights  # noqa: E402
from tests.metatf_probes import SATURATION, float_input_quantizer, gap_order_probe  # noqa: E402


@pytest.fixture(scope="module")
def sim_device():
    url = "sim://akd1000/0?serial=CONF1&mem=33554432&mode=inproc"
    bus = open_bus(url)
    device = Device(bus, url=url, kind="sim")
    yield device
    device.close()
    drop_chip(getattr(bus, "chip", None))


@pytest.mark.parametrize("seed", range(N_MODELS))
def test_random_v1_model_matches_akida(seed: int, sim_device) -> None:
    theirs, x = random_model(seed)
    ours = import_model(theirs)
    expected = theirs.forward(x)
    got = ours.forward(x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    if not random_spec(seed)["last_activation"]:
        p_theirs = theirs.predict(x)
        p_ours = ours.predict(x)
        scale = max(1.0, float(np.abs(p_theirs).max()))
        np.testing.assert_allclose(p_ours, p_theirs, rtol=1e-6, atol=1e-6 * scale)
    ours.map(sim_device)
    np.testing.assert_array_equal(ours.forward(x), got)


def test_the_suite_covers_every_v1_feature() -> None:
    specs = [random_spec(s) for s in range(N_MODELS)]
    inputs = [s["input"] for s in specs if s["image"]]
    hidden = [h for s in specs for h in s["hidden"]]
    assert {i["weights_bits"] for i in inputs} >= {1, 2, 4, 8}
    assert {h["weights_bits"] for h in hidden} >= {1, 2, 4}
    assert {h["act_bits"] for h in hidden} >= {1, 2, 4}
    assert {h["pool"] for h in hidden} >= {"none", "max", "gap"}
    assert {h["stride"] for h in hidden} >= {1, 2} and {i["stride"] for i in inputs} >= {1, 2, 3}
    assert {h["padding"] for h in hidden} >= {"same", "valid"}
    assert {i["padding"] for i in inputs} >= {"same", "valid"}
    assert {i["padding_value"] for i in inputs} >= {0, 128}
    assert any(h["separable"] for h in hidden) and any(not h["separable"] for h in hidden)
    assert any(s["dense"] for s in specs) and any(not s["image"] for s in specs)
    assert {s["last_activation"] for s in specs} == {True, False}


def test_v2_models_and_non_v1_layers_are_refused(tmp_path) -> None:
    v2 = akida.Model()
    v2.add(akida.InputConv2D(input_shape=(8, 8, 3), filters=4, kernel_size=3, name="in_v2"))
    with pytest.raises(ConversionError, match=r"Akida 1\.0"):
        import_model(v2)
    with pytest.raises(ConversionError, match="no such MetaTF model file"):
        import_model(tmp_path / "missing.fbz")
    junk = tmp_path / "junk.fbz"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConversionError, match="not a readable MetaTF model"):
        import_model(junk)


@pytest.mark.parametrize("probe", sorted(SATURATION))
def test_potentials_saturate_as_akida(probe: str, sim_device) -> None:
    """FullyConnected and pooled potentials saturate to signed 20 bits, plain
    convolutions do not (v1_rules.saturates); the simulated device agrees, within what
    its output events carry (_as_sent)."""
    theirs, x = SATURATION[probe]()
    ours = import_model(theirs)
    expected = theirs.forward(x)
    np.testing.assert_array_equal(ours.forward(x), expected)
    if not ours.layers[-1].activation:
        np.testing.assert_allclose(ours.predict(x), theirs.predict(x), rtol=1e-6)
    try:
        ours.map(sim_device)
    except MappingError:
        return
    on_chip = ours.sequences[-1].backend.value == "Hardware"
    sent = _as_sent(expected, theirs.layers[-1]) if on_chip and not ours.layers[-1].activation \
        else expected  # fmt: skip
    assert (probe == "separable_unpooled") is not np.array_equal(sent, expected), probe
    np.testing.assert_array_equal(ours.forward(x), sent)


# The signed width of the potential an AKD1000 output event carries, by the kind of NP
# of the last layer: BrainChip's engine reads CNP potentials from w2 [31:12] as 20 bits,
# HRC ones with 4 more bits from w1 [31:28], FNP ones from w2 [25:0] (akida/engine
# src/dma_events_ops.cpp, format_output_potentials; src/dma_events_format.h).
EVENT_POTENTIAL_BITS = {"InputConvolutional": 24, "FullyConnected": 26}
CNP_EVENT_POTENTIAL_BITS = 20


def _as_sent(expected: np.ndarray, last) -> np.ndarray:
    """akida's forward potentials as the chip sends them when `last` (akida's layer) ends
    a hardware sequence: past the event's signed field they saturate (docs/
    program-binary.md, "Output potentials"). Only separable_unpooled's (up to 5.2 M) do
    not fit."""
    kind = str(last.parameters.layer_type).rsplit(".", 1)[-1]
    bits = EVENT_POTENTIAL_BITS.get(kind, CNP_EVENT_POTENTIAL_BITS)
    return np.clip(expected, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def test_every_saturation_probe_tells_the_rules_apart() -> None:
    """Each probe's output changes when its layer's saturation is toggled: a probe that
    agrees with akida agrees on whether that layer saturates."""
    for name, make in SATURATION.items():
        theirs, x = make()
        ours = import_model(theirs)
        layer = next(layer for layer in ours.layers if layer.name == "conv" or layer.name == "fc")
        before = ours.forward(x)[..., 0]
        layer.potential_bits = 0 if layer.potential_bits else v1_rules.POTENTIAL_BITS
        changed = not np.array_equal(ours.forward(x)[..., 0], before)
        # In these the first unit's sum ends in range (a running FullyConnected sum or a
        # clamp of each part would not: 630,000 - 230,160 would give 294,127).
        order = name in ("fc_sum_then_clamp", "conv_gap_running_sum_reversed", "fc_partial_sums")
        assert changed is not order, name


@pytest.mark.parametrize("hw", [(5, 7), (7, 5)])
def test_global_average_saturates_in_row_major_order(hw) -> None:
    """Random maps on which akida's running sum saturates in some samples: the order of
    the additions (first axis outer) decides the result."""
    theirs, x = gap_order_probe(hw, n=24, seed=hw[0])
    expected = theirs.forward(x)
    assert 0 < np.count_nonzero(np.abs(expected) >= 2**19 - 1) < len(x)
    np.testing.assert_array_equal(import_model(theirs).forward(x), expected)


def test_float_input_quantizer_is_akidas_arithmetic() -> None:
    """cnn2snn's input Quantizer: uint8 inputs pass unchanged (the import drops it);
    on float32 inputs v1_rules.quantize_input is akida's rounding, bit for bit."""
    rng = np.random.default_rng(3)
    for scales, zps in (([1, 1, 1], [0, 0, 0]), ([0.3, 0.7, 1 / 3], [0, 5, 128])):
        q = float_input_quantizer(scales, zps)
        u8 = rng.integers(0, 256, (4, 4, 4, 3)).astype(np.uint8)
        np.testing.assert_array_equal(q.forward(u8), u8)
        s = np.float32(scales)
        x = rng.uniform(-50, 300, (16, 4, 4, 3)).astype(np.float32)
        x[:4] = np.round(x[:4] * 2) / 2  # exact halves
        near = rng.integers(0, 256, (4, 4, 4, 3)) / s + rng.choice([0.5, -0.5], (4, 4, 4, 3)) / s
        x[4:8] = near.astype(np.float32)
        got = v1_rules.quantize_input(x, s, np.array(zps))
        np.testing.assert_array_equal(got, q.forward(x))


def test_quantizer_in_front_of_an_input_layer_is_imported() -> None:
    """akida builds a Quantizer only in front of an input layer of its width (8-bit
    InputConvolutional, n-bit InputData); both import and match akida's forward."""
    rng = np.random.default_rng(5)
    for bits, first in ((8, "InputConvolutional"), (4, "InputData")):
        m = akida.Model()
        m.add(
            akida.Quantizer(input_shape=(8, 8, 3), output_bits=bits, output_signed=False, name="q")
        )
        if first == "InputData":
            m.add(akida.InputData(input_shape=(8, 8, 3), input_bits=4, name="in"))
            m.add(akida.Convolutional(kernel_size=(3, 3), filters=4, name="c", activation=False))
        else:
            m.add(akida.InputConvolutional(input_shape=(8, 8, 3), kernel_size=(3, 3), filters=4,
                                           name="c", activation=False))  # fmt: skip
        random_weights(m, rng, first_at_top=True)
        x = rng.integers(0, 2**bits, (3, 8, 8, 3)).astype(np.uint8)
        ours = import_model(m)
        assert [layer.name for layer in ours.layers][-1] == "c"
        np.testing.assert_array_equal(ours.forward(x), m.forward(x))


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metatf_fixtures")


def test_the_toolchain_fixtures_are_there() -> None:
    """Regenerated by tests/make_metatf_fixtures.py; a float-input (Quantizer) model and
    the legacy cnn2snn flow among them."""
    assert {"float_input_cnn", "legacy_float_input_cnn", "ds_cnn_kws", "akidanet_025_64"} <= set(
        FIXTURES
    )


@pytest.mark.parametrize("name", FIXTURES)
def test_toolchain_model_matches_akida(name: str, fixture_dir, sim_device) -> None:
    """A model made with cnn2snn / quantizeml / akida_models: `akida import` of the file,
    forward bit-identical, predict within 1e-6, every layer firing, and the simulated
    device identical to software where the model maps."""
    path = unpack(name, fixture_dir)
    theirs = akida.Model(str(path))
    ours = import_model(path)
    x = inputs(theirs, n=8)
    expected = theirs.forward(x)
    got = ours.forward(x)
    np.testing.assert_array_equal(got, expected)
    if not ours.layers[-1].activation:
        p = theirs.predict(x)
        np.testing.assert_allclose(ours.predict(x), p, rtol=1e-6, atol=1e-6 * np.abs(p).max())
    _every_layer_fires(ours, x)
    try:
        ours.map(sim_device)
    except MappingError:
        return  # akida refuses it too (test_metatf_mapping)
    np.testing.assert_array_equal(ours.forward(x), expected)


def _every_layer_fires(model, x) -> None:
    from akida_rt.engine.integer import Engine

    engine = Engine(model.layers)
    engine.run(x)
    for layer, stats in zip(model.layers, engine.stats(), strict=True):
        assert stats.output_events > 0, f"{layer.name} never fires"
