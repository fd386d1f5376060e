"""The mapper against BrainChip's on the virtual AKD1000: NP count and type per layer.

The oracle is `akida.AKD1000()` mapping the same v1 architecture (built with akida's
layer API); skips when the `akida` package is absent.
"""

from __future__ import annotations

import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402

from akida_rt import AKD1000, zoo  # noqa: E402
from akida_rt.mapping import MapMode  # noqa: E402
from tests.metatf_models import akida_allocation, from_zoo, our_allocation  # noqa: E402

MODELS = {"digits_cnn": zoo.digits_cnn, "ds_cnn_kws": zoo.ds_cnn_kws}


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
