"""The device-memory program image: per-NP packed weights and config blocks, sized as
BrainChip's program (within 25%, against akida 2.19.3's mapper when it is installed)."""

from __future__ import annotations

import numpy as np
import pytest
from akida_rt.firmware_sim.clock_model import ClockModel
from akida_rt.firmware_sim.mesh import NpMesh

from akida_rt import AKD1000
from akida_rt.errors import MeshError
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.mapper import MapMode
from akida_rt.model import zoo
from akida_rt.wire import device_protocol as dp

MODELS = {
    "digits_cnn": zoo.digits_cnn,
    "ds_cnn_kws": zoo.ds_cnn_kws,
    "akidanet_05_224": zoo.akidanet,
}


def test_image_rebuilds_the_kernels_and_grows_with_nps() -> None:
    sizes = {}
    for mode in (MapMode.Minimal, MapMode.AllNps):
        model = zoo.digits_cnn()
        model.map(AKD1000(), mode=mode)
        (seq,) = model.sequences
        mesh = NpMesh(AKD1000(), ClockModel())
        mesh.load(seq.program)
        assert mesh.loaded is not None
        for got, want in zip(mesh.loaded.layers, seq.layers, strict=True):
            for key, arr in want.variables.items():
                assert np.array_equal(got.variables[key], arr), (got.name, key)
        sizes[mode] = len(seq.program)
    assert sizes[MapMode.AllNps] > 4 * sizes[MapMode.Minimal]  # 56 NPs against 4


@pytest.mark.parametrize(
    ("change", "error"),
    [("flip", "different depthwise kernels"), ("drop", "NP images do not match its NPs")],
)
def test_np_images_that_disagree_are_refused(change: str, error: str) -> None:
    model = zoo.ds_cnn_kws()
    model.map(AKD1000(), mode=MapMode.AllNps)
    msg = pb.SequenceProgram()
    msg.ParseFromString(model.sequences[0].program)
    # Every NP of a separable layer holds the whole depthwise kernel, at the image's start.
    img = next(i for i in msg.images if i.layer == "separable_1" and i.first_filter > 0)
    if change == "flip":
        img.weights = bytes([img.weights[0] ^ 1]) + img.weights[1:]
    else:
        msg.images.remove(img)
    with pytest.raises(MeshError, match=error) as info:
        NpMesh(AKD1000(), ClockModel()).load(msg.SerializeToString())
    assert info.value.code is dp.ErrorCode.BAD_PROGRAM


@pytest.mark.parametrize("mode", ["AllNps", "Minimal", "HwPr"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_image_size_within_25_percent_of_brainchip(name: str, mode: str) -> None:
    akida = pytest.importorskip("akida")
    from akida_rt.tools.metatf import import_model

    from tests.metatf_models import from_zoo

    theirs = from_zoo(MODELS[name]())
    ours = import_model(theirs)
    theirs.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode))
    ours.map(AKD1000(), mode=MapMode(mode))
    brainchip = sum(len(s.program) for s in theirs.sequences if s.program is not None)
    image = sum(len(s.program) for s in ours.sequences)
    assert 0.8 <= image / brainchip <= 1.25, (image, brainchip)
