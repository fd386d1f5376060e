"""Model.map onto an AKD1000 compiles each hardware sequence's program binary with akida_rt's
own compiler: the binaries equal BrainChip's (akida 2.19.3 mapping the exported model, the
oracle) for the zoo, a learning model and conformance models; no akida needed to map.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402
from akida_rt.tools.metatf_export import program_binaries  # noqa: E402

from akida_rt import AKD1000  # noqa: E402
from akida_rt.errors import ConversionError, MappingError  # noqa: E402
from akida_rt.mapping.mapper import MapMode  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from akida_rt.model.model import Model  # noqa: E402
from tests.akd1000_programs import learning_model  # noqa: E402
from tests.metatf_models import calibrate, random_model, random_weights, sample, v1_zoo  # noqa: E402
from tests.metatf_probes import SATURATION  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _ours(model: Model, mode: str = "AllNps") -> list[bytes | None]:
    model.map(AKD1000(), mode=MapMode(mode))
    return model.binaries()


def _theirs(model: Model, mode: str = "AllNps") -> list[bytes | None]:
    """BrainChip's binaries of `model` exported to akida (metatf_export) and mapped."""
    return program_binaries(model, mode=mode)


@pytest.mark.parametrize("name", ["digits_cnn", "ds_cnn_kws", "akidanet", "mnist_cnn",
                                  "gxnor_mnist"])  # fmt: skip
def test_zoo_maps_to_brainchips_binaries(name: str) -> None:
    model = import_model(v1_zoo(getattr(zoo, name)(), n=1)[0])
    modes = ("AllNps", "Minimal") if name != "akidanet" else ("AllNps",)
    for mode in modes:
        ours = _ours(model, mode)
        assert any(b is not None for b in ours)
        assert ours == _theirs(model, mode), mode


def test_a_chain_of_sequences_maps_to_brainchips_binaries() -> None:
    """The MNIST CNN: its InputConv2D on the HRC, the next convolution in software (as
    akida splits it), the classifier on the mesh: two programs, the second's input bits
    those of the software layer's outputs."""
    model = import_model(v1_zoo(zoo.mnist_cnn(), n=1)[0])
    for mode in ("AllNps", "Minimal"):
        ours = _ours(model, mode)
        assert [b is not None for b in ours] == [True, False, True]
        assert ours == _theirs(model, mode), mode


def test_a_learning_model_maps_to_brainchips_binary() -> None:
    """The learning FNP3 (AkidaUnsupervised): its learning registers and thswap from the
    model's learning configuration. (akida's own binary of the original differs in
    MIN_PLASTICITY only: akida's default min_plasticity is the float32 0.1,
    docs/semantics.md section 8.)"""
    model = import_model(learning_model())
    assert _ours(model) == _theirs(model)


def _learnable_cnn(first: str, convs: int = 1, filters: int = 32) -> Model:
    """A CNN whose 1-bit FullyConnected classifier learns (AkidaUnsupervised): an HRC
    ("hrc") or event inputs ("events") first, `convs` convolutions of `filters`."""
    src = akida.Model()
    if first == "hrc":
        src.add(akida.InputConvolutional(input_shape=(28, 28, 1), kernel_size=(3, 3),
                                         filters=16, name="conv0", act_bits=2, weights_bits=4,
                                         pool_type=akida.PoolType.Max, pool_size=(2, 2),
                                         pool_stride=(2, 2)))  # fmt: skip
    else:
        src.add(akida.InputData(input_shape=(16, 16, 96), input_bits=4, name="in"))
    for i in range(convs):
        src.add(akida.Convolutional(kernel_size=(3, 3), filters=filters, name=f"conv{i + 1}",
                                    weights_bits=4, act_bits=1 if i == convs - 1 else 4))  # fmt: skip
    src.add(akida.FullyConnected(units=10, name="fc", weights_bits=1, activation=False))
    random_weights(src, np.random.default_rng(0))
    calibrate(src, sample(src, 2, 0), 0)
    src.compile(optimizer=akida.AkidaUnsupervised(num_weights=10, num_classes=10,
                                                  min_plasticity=0.1))  # fmt: skip
    return import_model(src)


def test_a_learnable_cnn_maps_to_brainchips_binary() -> None:
    """HRC, a convolution and the learning classifier in one program."""
    model = _learnable_cnn("hrc")
    ours = _ours(model)
    assert len(ours) == 1 and ours == _theirs(model)


def test_learning_on_an_fnp2_is_refused_in_one_line() -> None:
    """Seven convolutions fill the mesh in AllNps and leave the learning classifier an
    FNP2, which cannot learn: refused naming it; in Minimal it gets an FNP3 and compiles
    to BrainChip's binary."""
    model = _learnable_cnn("events", convs=7, filters=96)
    with pytest.raises(MappingError) as info:
        _ours(model, "AllNps")
    message = str(info.value)
    assert "'fc'" in message and "FNP2" in message and "Minimal" in message
    assert "\n" not in message
    assert _ours(model, "Minimal") == _theirs(model, "Minimal")


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_conformance_models_map_to_brainchips_binaries(seed: int) -> None:
    model = import_model(random_model(seed, n=1)[0])
    assert _ours(model) == _theirs(model)


@pytest.mark.parametrize("probe", sorted(SATURATION))
def test_saturation_probes_map_to_brainchips_binaries(probe: str) -> None:
    """Extremes of the register ranges, a FullyConnected taking one position of 8,192
    channels (its input events are FNP events) and an input convolution with global
    average pooling (akida runs it in software): the same split, the same bytes."""
    model = import_model(SATURATION[probe]()[0])
    try:
        theirs = _theirs(model)
    except ConversionError:
        with pytest.raises(MappingError):
            _ours(model)
        return
    assert _ours(model) == theirs


def _deep_model() -> Model:
    """Six 3x3 convolutions of 256 filters: more NPs than the mesh has, two passes in HwPr."""
    src = akida.Model()
    src.add(akida.InputData(input_shape=(8, 8, 16), input_bits=4, name="in"))
    for i in range(6):
        src.add(akida.Convolutional(kernel_size=(3, 3), filters=256, name=f"conv_{i}",
                                    weights_bits=4, act_bits=4))  # fmt: skip
    src.add(akida.FullyConnected(units=10, name="fc", weights_bits=2, activation=False))
    random_weights(src, np.random.default_rng(0))
    calibrate(src, sample(src, 2, 0), 0)
    return import_model(src)


def test_multi_pass_is_refused_in_one_line() -> None:
    model = _deep_model()
    with pytest.raises(MappingError) as info:
        _ours(model, "HwPr")
    message = str(info.value)
    assert "2 passes" in message and "'fc'" in message and "AllNps" in message
    assert "\n" not in message
    assert _ours(model, "AllNps") == _theirs(model, "AllNps")  # two sequences of one pass


def test_mapping_onto_akd1000_needs_no_akida(tmp_path: Path) -> None:
    """In a process where `import akida` fails, a program file maps onto an AKD1000 and
    its binaries are BrainChip's."""
    model = import_model(v1_zoo(zoo.digits_cnn(), n=1)[0])
    path = tmp_path / "digits.akp"
    model.save(path)
    code = (
        "import sys; sys.modules['akida'] = None\n"
        "import akida_rt\n"
        "from akida_rt.model.model import Model\n"
        f"m = Model({str(path)!r}); m.map(akida_rt.AKD1000())\n"
        "sys.stdout.buffer.write(m.binaries()[0])\n"
        "assert 'akida' not in sys.modules or sys.modules['akida'] is None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout == _theirs(model)[0]
