"""The event-model example's data (tools/event_datasets.py): event-count frames of real
digits, the same frames `akida stream --window-us` makes from a recording of them."""

from __future__ import annotations

import numpy as np
from akida_rt.tools.datasets import load_digits_32
from akida_rt.tools.event_datasets import (
    FRAME_SHAPE,
    PRESENTATION_US,
    SENSOR,
    event_frames,
    load_event_digits,
)

from akida_rt.stream.evt3 import write_evt3
from akida_rt.stream.sources import event_frames as file_frames
from akida_rt.stream.synthetic import saccade_recording


def test_frames_and_labels_follow_the_digits_split():
    data = load_event_digits("digits", limit=6)
    digits = load_digits_32()
    assert data.x_train.shape == (6, *FRAME_SHAPE) and data.x_test.shape == (6, *FRAME_SHAPE)
    assert data.x_train.dtype == np.uint8
    assert data.y_train.tolist() == digits.y_train[:6].tolist()
    assert data.y_test.tolist() == digits.y_test[:6].tolist()
    # the digit's strokes make the events: far more per pixel on its ink than off it
    ink = digits.x_train[0, :, :, 0] > 0
    frame = data.x_train[0, 1:33, 1:33, 0]
    assert frame[ink].mean() > 1.5 * frame[~ink].mean() > 0


def test_training_frames_are_what_akida_stream_frames_from_a_recording(tmp_path):
    images = load_digits_32().x_test[:4, :, :, 0]
    events, _ = saccade_recording(images, seed=7)
    write_evt3(tmp_path / "rec.raw", events, *SENSOR)
    streamed = [f.data for f in file_frames(tmp_path / "rec.raw", FRAME_SHAPE,
                                         window_us=PRESENTATION_US)]  # fmt: skip
    trained = event_frames(images, seed=7, workers=1)
    assert len(streamed) == len(images)
    for a, b in zip(streamed, trained, strict=True):
        # the recording's window grid starts at its first event, a digit's at its own:
        # a few events at a presentation's edge may fall in the neighbouring window
        assert np.abs(a.astype(int) - b.astype(int)).sum() <= 0.01 * b.sum()
