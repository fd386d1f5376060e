"""The sample event model as shipped: in the v1 form AKD1000 binaries carry (MetaTF's
exporter takes it), trained on event rates spread at least 4x, and accurate on digits
simulated under held-out camera settings it never saw."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt.data import sample_program
from akida_rt.model.model import Model

EVENT_MODEL = sample_program().with_name("dvs_digits_cnn.akp")


def test_the_event_model_exports_to_metatf():
    pytest.importorskip("akida")
    from akida_rt.tools.metatf_export import export_model

    export_model(Model(EVENT_MODEL))  # raises for programs not in the v1 form


def test_training_cameras_spread_events_at_least_4x():
    from akida_rt.tools.datasets import load_digits_32
    from akida_rt.tools.event_augment import TRAIN, varied_frames

    images = load_digits_32().x_train[:24]
    _, counts = varied_frames(images, TRAIN, seed=0, workers=2)
    assert counts.max() / counts.min() >= 4


@pytest.mark.parametrize("setting", ["sparse", "dense-noisy"])
def test_held_out_camera_settings(setting):
    from akida_rt.tools.datasets import load_digits_32
    from akida_rt.tools.event_augment import HELD_OUT, varied_frames

    data = load_digits_32()
    x, _ = varied_frames(data.x_test[:50], HELD_OUT[setting], seed=7 * 10**6, workers=2)
    pred = Model(EVENT_MODEL).predict(x).reshape(len(x), -1).argmax(axis=1)
    assert np.mean(pred == data.y_test[:50]) >= 0.85
