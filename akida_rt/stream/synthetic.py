"""Synthetic DVS recordings in the style of N-MNIST: a real image moved through small
saccades in front of a simulated event camera.

Each pixel keeps the log intensity at which it last fired; when the current log
intensity differs from it by at least the pixel's contrast threshold (the nominal
threshold with per-pixel Gaussian noise), it emits one event per threshold crossed (ON
when brighter, OFF when darker), unless it fired within the refractory period. Background
noise adds uniformly random events. No real DVS recordings can be downloaded here, so
demos and tests use these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from akida_rt.stream.events import EVENT_DTYPE, empty


@dataclass(frozen=True)
class SaccadeCamera:
    """The simulated sensor and the saccade path (N-MNIST: 34x34, three 100 ms saccades)."""

    sensor: tuple[int, int] = (34, 34)
    saccade_us: int = 100_000
    amplitude: float = 3.0  # pixels along each saccade
    step_us: int = 1_000  # simulation step
    threshold: float = 0.25  # log-intensity contrast per event
    threshold_sigma: float = 0.03  # per-pixel threshold noise
    refractory_us: int = 1_000
    noise_hz: float = 0.2  # background events per pixel per second

    def path(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offset (dx, dy) in pixels at times `t` (us): a triangle of three saccades."""
        corners = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]]) * self.amplitude / 2
        phase = np.clip(t / self.saccade_us, 0, 3 - 1e-9)
        k = phase.astype(int)
        f = (phase - k)[:, None]
        pos = corners[k] * (1 - f) + corners[k + 1] * f
        return pos[:, 0], pos[:, 1]


def _render(image: np.ndarray, sensor: tuple[int, int], dx: float, dy: float) -> np.ndarray:
    """`image` (uint8 HxW) centred on the sensor, shifted by (dx, dy) with bilinear
    interpolation, as float intensities."""
    w, h = sensor
    ih, iw = image.shape
    canvas = np.zeros((h + 2, w + 2))
    oy, ox = (h - ih) // 2 + 1, (w - iw) // 2 + 1
    canvas[oy : oy + ih, ox : ox + iw] = image
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    shifted = np.roll(canvas, (iy, ix), axis=(0, 1))
    out = (1 - fx) * (1 - fy) * shifted
    out += fx * (1 - fy) * np.roll(shifted, 1, axis=1)
    out += (1 - fx) * fy * np.roll(shifted, 1, axis=0)
    out += fx * fy * np.roll(shifted, (1, 1), axis=(0, 1))
    return out[1 : h + 1, 1 : w + 1]


def saccade_events(
    image: np.ndarray, camera: SaccadeCamera | None = None, seed: int = 0, t0: int = 0
) -> np.ndarray:
    """The events (EVENT_DTYPE, time-ordered) a DVS sees while `image` (uint8, 2-D, at
    most the sensor's size) goes through the camera's saccades, starting at `t0` us."""
    cam = camera or SaccadeCamera()
    rng = np.random.default_rng(seed)
    w, h = cam.sensor
    thresh = np.maximum(cam.threshold + cam.threshold_sigma * rng.standard_normal((h, w)), 0.05)
    steps = np.arange(0, 3 * cam.saccade_us + cam.step_us, cam.step_us)
    dxs, dys = cam.path(steps.astype(float))
    ref = np.log1p(_render(image, cam.sensor, dxs[0], dys[0]))
    last_fire = np.full((h, w), -(10**12), np.int64)
    parts = []
    for t, dx, dy in zip(steps[1:].tolist(), dxs[1:].tolist(), dys[1:].tolist(), strict=True):
        level = np.log1p(_render(image, cam.sensor, dx, dy))
        diff = level - ref
        n = np.floor(np.abs(diff) / thresh).astype(np.int64)
        ready = (n > 0) & (t - last_fire >= cam.refractory_us)
        ys, xs = np.nonzero(ready)
        if len(ys):
            k = n[ys, xs]
            on = diff[ys, xs] > 0
            ref[ys, xs] += np.where(on, 1, -1) * k * thresh[ys, xs]
            last_fire[ys, xs] = t
            k = np.minimum(k, 4)  # a pixel emits a short burst, not dozens
            rep = np.repeat(np.arange(len(ys)), k)
            ev = empty(len(rep))
            ev["t"] = t0 + t - cam.step_us + rng.integers(0, cam.step_us, len(rep))
            ev["x"], ev["y"], ev["p"] = xs[rep], ys[rep], on[rep]
            parts.append(ev)
    duration = int(steps[-1])
    noise = rng.poisson(cam.noise_hz * w * h * duration / 1e6)
    ev = empty(noise)
    ev["t"] = t0 + rng.integers(0, duration, noise)
    ev["x"], ev["y"], ev["p"] = (
        rng.integers(0, w, noise),
        rng.integers(0, h, noise),
        rng.integers(0, 2, noise),
    )
    parts.append(ev)
    out = np.concatenate(parts) if parts else empty()
    return out[np.argsort(out["t"], kind="stable")]


def saccade_recording(
    images: np.ndarray, camera: SaccadeCamera | None = None, seed: int = 0, gap_us: int = 10_000
) -> tuple[np.ndarray, np.ndarray]:
    """One recording of several images in turn: (events, start time of each image in us)."""
    cam = camera or SaccadeCamera()
    starts = np.arange(len(images), dtype=np.int64) * (3 * cam.saccade_us + gap_us)
    parts = [
        saccade_events(img, cam, seed=seed + i, t0=int(s))
        for i, (img, s) in enumerate(zip(images, starts, strict=True))
    ]
    ev = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
    return ev, starts
