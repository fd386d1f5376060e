"""The user-facing path on the real interface: Model.map onto a sim:// AKD1000 compiles
akida_rt's program binaries (BrainChip's, byte for byte), our Device programs and runs them over the bus, and the
outputs equal akida's own forward (the oracle), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("akida")

from akida_rt.driver.discovery import open_device
from akida_rt.tools import metatf

from akida_rt.mapping import akd1000_compiler
from akida_rt.model import zoo
from akida_rt.model.model import Model
from tests.akd1000_programs import cnp_model, programs, split_models
from tests.metatf_models import sample, v1_zoo


@pytest.fixture
def device(request):
    dev = open_device(f"sim://akd1000/{40 + hash(request.node.name) % 20}")
    yield dev
    dev.close()


@pytest.mark.parametrize("make", [zoo.digits_cnn, zoo.ds_cnn_kws])
def test_zoo_model_runs_bit_exact_through_the_host_protocol(make, device) -> None:
    src, x = v1_zoo(make(), n=4)
    model = metatf.import_model(src)
    model.map(device)
    assert model.sequences[0].program[:4] != b"\x0aAKP"  # a program binary, not ours
    np.testing.assert_array_equal(model.forward(x), src.forward(x))
    assert device.stats().host.loads == 1
    model.forward(x)  # resident: not programmed again
    assert device.stats().host.reloads_skipped >= 1
    assert device.stats().synops > 0  # the simulated chip's modelled figure


def test_placement_shown_is_the_binaries(device) -> None:
    src, _ = v1_zoo(zoo.digits_cnn())
    model = metatf.import_model(src)
    model.map(device)
    src.map(__import__("akida").AKD1000())
    theirs = {layer.name: len(layer.mapping.nps) for layer in src.layers if layer.mapping}
    ours = {p.layer: len(p.nps) for p in model.sequences[0].plan.placements}
    assert {k: v for k, v in ours.items() if k in theirs} == theirs


def test_binaries_are_stored_and_load_without_compiling(device, tmp_path, monkeypatch) -> None:
    src, x = v1_zoo(zoo.digits_cnn())
    model = metatf.import_model(src)
    model.map(device)
    path = tmp_path / "mapped.akp"
    model.save(path)
    again = Model(path)
    monkeypatch.setattr(akd1000_compiler, "compile_binaries", _no_compiler)
    again.map(device)
    assert again.sequences[0].program == model.sequences[0].program
    np.testing.assert_array_equal(again.forward(x), src.forward(x))


def _no_compiler(*args: object) -> None:
    raise AssertionError("the stored binaries should have been used")


def test_corrupt_stored_binary_is_refused(device, tmp_path) -> None:
    from akida_rt.format import program as fmt

    src, _ = v1_zoo(zoo.digits_cnn())
    model = metatf.import_model(src)
    model.map(device)
    msg = model.to_message()
    msg.mapping.sequences[0].binary = msg.mapping.sequences[0].binary[:-7]
    with pytest.raises(Exception, match="mapping sequence 0"):
        Model(fmt.pack(msg))


def test_chain_loaded_sequences_on_our_device(device) -> None:
    first, second = split_models()
    x = sample(first, 4, 0)
    expected = second.forward(first.forward(x))
    p0, p1 = programs(first)[0], programs(second)[0]
    device.load_sequence(p0)
    y, _ = device.infer(x)
    device.load_sequence(p1)
    got, _ = device.infer(y)
    np.testing.assert_array_equal(got.astype(np.int64), expected.astype(np.int64))
    assert device.stats().host.loads == 2


def test_event_input_model(device) -> None:
    src = cnp_model()
    x = sample(src, 4, 1)
    expected = src.forward(x)
    device.load_sequence(programs(src)[0])
    y, _ = device.infer(x)
    np.testing.assert_array_equal(y.astype(np.int64), expected.astype(np.int64))
