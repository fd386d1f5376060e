"""`akida export` and tools/metatf_export.py against BrainChip's `akida` 2.19.3 (the oracle):
every conformance model and the zoo's architectures export to v1 models whose `forward`
equals akida_rt's exactly, and import(export(m)) gives m back. Skips without `akida`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402
from akida_rt.tools.metatf_export import export_model, program_binaries  # noqa: E402

from akida_rt import Model  # noqa: E402
from akida_rt.data import sample_program  # noqa: E402
from akida_rt.errors import ConversionError  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.metatf_models import N_MODELS, random_model, v1_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ZOO = {"digits_cnn": zoo.digits_cnn, "ds_cnn_kws": zoo.ds_cnn_kws, "akidanet_05": zoo.akidanet}


def _roundtrip(theirs, x: np.ndarray) -> None:
    ours = import_model(theirs)
    back = export_model(ours)
    expected = theirs.forward(x)
    np.testing.assert_array_equal(ours.forward(x), expected)
    np.testing.assert_array_equal(back.forward(x), expected)
    assert import_model(back).same_as(ours)


def test_conformance_models_export_bit_exact() -> None:
    for seed in range(N_MODELS):
        theirs, x = random_model(seed)
        _roundtrip(theirs, x)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_architectures_export_bit_exact(name: str) -> None:
    theirs, x = v1_zoo(ZOO[name](), n=2)
    _roundtrip(theirs, x)


def test_activation_solved_from_a_non_v1_form() -> None:
    """A layer whose (act_scale, act_offset, act_shift) was not made by the importer but
    has a v1 equivalent: the exporter solves threshold and act_step from its levels."""
    theirs, x = random_model(3)
    ours = import_model(theirs)
    layer = next(layer for layer in ours.layers if layer.activation)
    scale, offset = layer.get_variable("act_scale"), layer.get_variable("act_offset")
    layer.set_variable("act_scale", scale * 4)
    layer.set_variable("act_offset", offset * 4)
    layer.act_shift += 2
    np.testing.assert_array_equal(export_model(ours).forward(x), ours.forward(x))


def _not_v1(path: Path) -> Path:
    """The sample program with conv_0 stepping every 32/7 of a potential: an exact fold
    (convert(v1=False)) may do that, v1 (integer thresholds, steps of 1/16) cannot."""
    model = Model(sample_program())
    layer = model.layers[0]
    layer.act_shift = 5
    layer.set_variable("act_scale", np.full(layer.filters, 7, np.int64))
    layer.set_variable("act_offset", np.zeros(layer.filters, np.int64))
    model.save(path)
    return path


def test_a_model_without_v1_activations_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"layer 'conv_0' .* channel 0's activation"):
        export_model(Model(_not_v1(tmp_path / "fine.akp")))


def test_the_sample_program_is_v1_and_exports_bit_exact() -> None:
    """The toolchain's programs carry v1's form (convert(v1=True)): akida computes them."""
    ours = Model(sample_program())
    x = np.random.default_rng(0).integers(0, 256, (16, *ours.input_shape), dtype=np.uint8)
    np.testing.assert_array_equal(export_model(ours).forward(x), ours.forward(x))


def test_learning_config_is_exported() -> None:
    theirs = akida.Model()
    theirs.add(akida.InputData(input_shape=(4, 4, 8), input_bits=1, name="in"))
    theirs.add(akida.FullyConnected(units=6, name="learn", weights_bits=1, activation=False))
    theirs.compile(akida.AkidaUnsupervised(num_weights=20, num_classes=3, initial_plasticity=0.5))
    ours = import_model(theirs)
    back = export_model(ours)
    for key in ("num_weights", "num_classes", "initial_plasticity", "learning_competition",
                "min_plasticity", "plasticity_decay"):  # fmt: skip
        assert getattr(back.learning, key) == pytest.approx(getattr(theirs.learning, key))
    assert import_model(back).learning == ours.learning


def test_program_binaries_are_brainchips_per_sequence() -> None:
    theirs, _ = v1_zoo(zoo.digits_cnn(), n=1)
    ours = import_model(theirs)
    programs = program_binaries(ours)
    theirs.map(akida.AKD1000())
    assert programs == [bytes(s.program) for s in theirs.sequences]
    assert all(p for p in programs)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "akida_rt", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_cli_export_writes_a_model_akida_reads(tmp_path: Path) -> None:
    theirs, x = random_model(4)
    akp, fbz = tmp_path / "m.akp", tmp_path / "m.fbz"
    import_model(theirs).save(akp)
    out = _cli("export", str(akp), "-o", str(fbz), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["layers"] == len(theirs.layers)
    np.testing.assert_array_equal(akida.Model(str(fbz)).forward(x), theirs.forward(x))
    out = _cli("export", str(_not_v1(tmp_path / "fine.akp")), "-o", str(tmp_path / "s.fbz"))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "no v1 equivalent" in out.stderr and "Traceback" not in out.stderr


def test_cli_export_without_metatf_says_how_to_install(tmp_path: Path) -> None:
    """With `akida` not importable (a package of that name that raises as if absent)."""
    fake = tmp_path / "site" / "akida"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'akida'\", name='akida')\n"
    )
    env = {"PYTHONPATH": str(fake.parent), "PATH": "/usr/bin:/bin"}
    out = _cli("export", str(sample_program()), "-o", str(tmp_path / "s.fbz"), env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "akida export: error: exporting to MetaTF needs BrainChip's akida package: "
        "pip install 'akida-rt[metatf]'"
    ]


def test_learned_state_exports_back_to_akida(tmp_path: Path) -> None:
    """akida's learned model -> import -> export: the same connections, thswap and
    predictions (docs/semantics.md, section 8)."""
    from tests.metatf_fixtures import inputs, unpack

    theirs = akida.Model(str(unpack("edge_learned_cnn", tmp_path)))
    back = export_model(import_model(theirs))
    for key in ("weights", "thswap"):
        np.testing.assert_array_equal(
            back.layers[-1].get_variable(key), theirs.layers[-1].get_variable(key)
        )
    x = inputs(theirs, n=8)
    np.testing.assert_array_equal(back.forward(x), theirs.forward(x))


def test_saturation_that_v1_does_not_have_is_refused() -> None:
    """A layer saturating where akida does not (or the reverse) exports only while its
    potentials stay inside 20 bits."""
    from tests.metatf_probes import SATURATION

    theirs, x = SATURATION["conv_unpooled_not_clamped"]()
    ours = import_model(theirs)
    np.testing.assert_array_equal(export_model(ours).forward(x), theirs.forward(x))
    ours.layers[-1].potential_bits = 20
    with pytest.raises(ConversionError, match=r"layer 'conv' .* 20-bit potentials up to"):
        export_model(ours)


def test_further_akida_learning_after_import_and_export_is_akidas(tmp_path: Path) -> None:
    """import then export carries akida's whole learning state (connections, thswap,
    threshold_learning): akida then learns on the exported model exactly as on the
    original. A fit in akida_rt drops the carried threshold_learning."""
    from tests.metatf_fixtures import inputs, unpack

    path = unpack("edge_learned_cnn", tmp_path)
    original = akida.Model(str(path))
    ours = import_model(path)
    ours.save(tmp_path / "learned.akp")
    back = export_model(Model(tmp_path / "learned.akp"))
    x = inputs(original, n=12, seed=5)
    y = np.random.default_rng(1).integers(0, 3, 12)
    original.fit(x, y)
    back.fit(x, y)
    for key in ("weights", "thswap", "threshold_learning"):
        np.testing.assert_array_equal(
            back.layers[-1].get_variable(key), original.layers[-1].get_variable(key)
        )
    assert ours.learning.HasField("v1_learning_gate")
    ours.fit(x[:1], y[:1])
    assert not ours.learning.HasField("v1_learning_gate")
