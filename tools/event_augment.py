"""Event-rate and sensor-noise augmentation for the event-model example: each digit seen
by a simulated DVS whose contrast threshold, event rate and noise are drawn per sample.

A `Variation` gives the ranges; `varied_frames` draws one camera per image (threshold,
saccade amplitude, background rate, hot pixels) and keeps a random fraction of its events
(the event-rate spread), then frames the presentation as `akida stream --window-us` does.
The held-out set uses another Variation (other ranges, other seeds), never trained on.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from akida_rt.stream.events import empty
from akida_rt.stream.framing import Framing, frames_from_events
from akida_rt.stream.synthetic import SaccadeCamera, saccade_events

SENSOR = (34, 34)
FRAME_SHAPE = (34, 34, 1)
PRESENTATION_US = 3 * SaccadeCamera().saccade_us + 10_000


@dataclass(frozen=True)
class Variation:
    """Per-sample ranges (low, high) of the simulated camera and of the event rate."""

    threshold: tuple[float, float] = (0.18, 0.40)  # log-contrast per event
    amplitude: tuple[float, float] = (2.0, 4.0)  # saccade amplitude, pixels
    keep: tuple[float, float] = (0.2, 1.0)  # fraction of the events kept (log-uniform)
    noise_hz: tuple[float, float] = (0.0, 5.0)  # background events per pixel per second
    hot_pixels: tuple[int, int] = (0, 3)  # pixels firing at hot_hz
    hot_hz: tuple[float, float] = (100.0, 600.0)


TRAIN = Variation()
# Held out: other ranges of every setting (sparse: about 2,500 events a digit; dense-noisy:
# about 17,000, with more noise and hot pixels than any training sample)
HELD_OUT = {
    "sparse": Variation(
        threshold=(0.42, 0.5),
        amplitude=(2.5, 3.5),
        keep=(0.35, 0.45),
        noise_hz=(1.0, 2.0),
        hot_pixels=(1, 1),
        hot_hz=(200.0, 300.0),
    ),
    "dense-noisy": Variation(
        threshold=(0.15, 0.17),
        amplitude=(3.5, 4.5),
        keep=(0.7, 0.8),
        noise_hz=(6.0, 10.0),
        hot_pixels=(2, 4),
        hot_hz=(300.0, 800.0),
    ),
}


def varied_events(image: np.ndarray, var: Variation, seed: int) -> np.ndarray:
    """The events of one digit under a camera drawn from `var` with `seed`."""
    rng = np.random.default_rng(seed)
    cam = replace(SaccadeCamera(), threshold=float(rng.uniform(*var.threshold)),
                  amplitude=float(rng.uniform(*var.amplitude)),
                  noise_hz=float(rng.uniform(*var.noise_hz)))  # fmt: skip
    ev = saccade_events(np.asarray(image).reshape(image.shape[:2]), cam, seed=seed)
    lo, hi = np.log(var.keep[0]), np.log(var.keep[1])
    ev = ev[rng.random(len(ev)) < np.exp(rng.uniform(lo, hi))]
    duration = 3 * cam.saccade_us
    parts = [ev]
    for _ in range(int(rng.integers(var.hot_pixels[0], var.hot_pixels[1] + 1))):
        n = rng.poisson(rng.uniform(*var.hot_hz) * duration / 1e6)
        hot = empty(n)
        hot["t"] = rng.integers(0, duration, n)
        hot["x"], hot["y"] = rng.integers(0, SENSOR[0]), rng.integers(0, SENSOR[1])
        hot["p"] = rng.integers(0, 2, n)
        parts.append(hot)
    out = np.concatenate(parts)
    return out[np.argsort(out["t"], kind="stable")]


def _frames(images: np.ndarray, seeds: np.ndarray, var: Variation) -> tuple[np.ndarray, np.ndarray]:
    framing = Framing(FRAME_SHAPE, SENSOR, window_us=PRESENTATION_US)
    frames, counts = [], []
    for img, s in zip(images, seeds.tolist(), strict=True):
        ev = varied_events(img, var, s)
        got = [f for f, _ in frames_from_events([ev], framing)]
        frames.append(got[0] if got else np.zeros(FRAME_SHAPE, np.uint8))
        counts.append(len(ev))
    return np.stack(frames), np.asarray(counts)


def varied_frames(
    images: np.ndarray, var: Variation, seed: int, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, 34, 34, 1) uint8, events per sample (N,)) of `images` under `var`;
    image i uses seed `seed + i`."""
    seeds = seed + np.arange(len(images))
    workers = workers or min(2, os.cpu_count() or 1)
    parts = np.array_split(np.arange(len(images)), workers * 4)
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(_frames, [images[p] for p in parts], [seeds[p] for p in parts],
                             [var] * len(parts)))  # fmt: skip
    return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])
