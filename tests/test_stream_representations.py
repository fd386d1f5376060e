"""Representations and filters against independent implementations: tonic's frames,
stacked frames, time surfaces, denoise and refractory filters, and per-event loops
written here from docs/streaming.md for the voxel grid, decay and hot pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from akida_rt.stream.events import make_events
from akida_rt.stream.filters import DenoiseFilter, HotPixelFilter, RefractoryFilter
from akida_rt.stream.representations import Kind, Representation, WindowFramer, Windows

tonic_fn = pytest.importorskip("tonic.functional")
W, H = 12, 9


def events(n=4000, seed=0, t0=20_000):
    rng = np.random.default_rng(seed)
    t = t0 + np.sort(rng.integers(0, 400_000, n))
    return make_events(t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n))


def tonic_events(ev):
    dt = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    out = np.zeros(len(ev), dt)
    for k in "xytp":
        out[k] = ev[k]
    return out


def frames(ev, rep, windows, chunks=7):
    framer = WindowFramer((H, W, rep.channels), (W, H), rep, windows)
    out = []
    for part in np.array_split(ev, chunks):
        out += [f for f, _ in framer.push(part)]
    return np.stack(out)


def test_overlapping_count_frames_equal_tonic():
    ev = events()
    rep = Representation(Kind.COUNT, split=True)
    got = frames(ev, rep, Windows(window_us=50_000, stride_us=20_000))
    ref = tonic_fn.to_frame_numpy(tonic_events(ev), (W, H, 2), time_window=50_000, overlap=30_000)
    assert got.shape[0] == ref.shape[0] > 10
    assert np.array_equal(got, np.clip(ref, 0, 255).transpose(0, 2, 3, 1))


def test_signed_frames_are_on_minus_off_of_tonic():
    ev = events(seed=1)
    got = frames(ev, Representation(Kind.SIGNED), Windows(window_us=40_000))
    ref = tonic_fn.to_frame_numpy(tonic_events(ev), (W, H, 2), time_window=40_000)
    signed = ref[:, 1].astype(int) - ref[:, 0]
    assert np.array_equal(got[..., 0].astype(int), np.clip(signed + 128, 0, 255))


def test_stacked_histogram_bins_are_tonic_frames_of_the_bin_length():
    ev, bins = events(seed=2), 5
    rep = Representation(Kind.HISTOGRAM, split=True, bins=bins)
    got = frames(ev, rep, Windows(window_us=50_000))
    ref = tonic_fn.to_frame_numpy(tonic_events(ev), (W, H, 2), time_window=10_000)
    ref = ref[: len(got) * bins].reshape(len(got), bins, 2, H, W)
    assert np.array_equal(got, ref.transpose(0, 3, 4, 1, 2).reshape(len(got), H, W, 2 * bins))


def test_time_surface_equals_tonic():
    ev, tau = events(seed=3), 30_000.0
    rep = Representation(Kind.SURFACE, split=True, tau_us=tau, gain=255)
    framer = WindowFramer((H, W, 2), (W, H), rep, Windows(window_us=25_000))
    from akida_rt.stream.representations import represent

    ref = tonic_fn.to_timesurface_numpy(tonic_events(ev), (W, H, 2), dt=25_000, tau=tau)
    got, mem = [], np.full((2, H * W), -np.inf)
    for k in range(len(ref)):  # the float surfaces, before uint8
        t0 = int(ev["t"][0]) + k * 25_000
        a, b = np.searchsorted(ev["t"], [t0, t0 + 25_000])
        part = ev[a:b]
        got.append(represent(part, rep, part["y"].astype(int) * W + part["x"], (H, W), t0,
                             t0 + 25_000, mem))  # fmt: skip
    assert np.allclose(np.stack(got).transpose(0, 3, 1, 2), ref, atol=1e-6)
    q = [f for part in np.array_split(ev, 5) for f, _ in framer.push(part)]
    assert np.array_equal(np.stack(q), np.clip(np.rint(np.stack(got)[: len(q)] * 255), 0, 255))


def test_voxel_grid_and_decay_equal_a_per_event_loop():
    ev, bins, tau = events(500, seed=4), 4, 20_000.0
    got = frames(ev, Representation(Kind.VOXEL, bins=bins, gain=10), Windows(events=100), 3)
    dec = frames(ev, Representation(Kind.DECAY, split=True, tau_us=tau, gain=40),
                 Windows(window_us=30_000), 3)  # fmt: skip
    for k in range(len(got)):
        part = ev[k * 100 : (k + 1) * 100]
        ref = np.zeros((H, W, bins))
        t0, t1 = int(part["t"][0]), int(part["t"][-1])
        for t, x, y, p in part[["t", "x", "y", "p"]].tolist():
            ts = (bins - 1) * (t - t0) / max(t1 - t0, 1)
            for b in range(bins):
                ref[y, x, b] += (1 if p else -1) * max(0.0, 1 - abs(b - ts))
        assert np.array_equal(got[k], np.clip(np.rint(ref * 10) + 128, 0, 255).astype(np.uint8))
    start = int(ev["t"][0])
    for k in range(len(dec)):
        ref = np.zeros((H, W, 2))
        t_end = start + (k + 1) * 30_000
        for t, x, y, p in ev[["t", "x", "y", "p"]].tolist():
            if t_end - 30_000 <= t < t_end:
                ref[y, x, p] += math.exp(-(t_end - t) / tau)
        assert np.array_equal(dec[k], np.clip(np.rint(ref * 40), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("chunks", [1, 9])
def test_denoise_and_refractory_equal_tonic(chunks):
    ev = events(3000, seed=5, t0=60_000)  # past tonic's start-up window
    for ours, ref in (
        (DenoiseFilter((W, H), 20_000), tonic_fn.denoise_numpy(tonic_events(ev), 20_000)),
        (
            RefractoryFilter((W, H), 15_000),
            tonic_fn.refractory_period_numpy(tonic_events(ev), 15_000),
        ),
    ):
        kept = np.concatenate([ours(part) for part in np.array_split(ev, chunks)])
        assert 0 < len(kept) < len(ev)
        assert np.array_equal(kept["t"], ref["t"]) and np.array_equal(kept["x"], ref["x"])


def test_hot_pixels_are_dropped_from_the_start():
    ev = events(2000, seed=6)
    hot = make_events(np.linspace(20_000, 400_000, 800).astype(np.int64), [3] * 800, [4] * 800,
                      [1] * 800)  # fmt: skip
    both = np.concatenate([ev, hot])
    both = both[np.argsort(both["t"], kind="stable")]
    f = HotPixelFilter((W, H), max_rate_hz=500, calibration_us=100_000)
    kept = np.concatenate([f(part) for part in np.array_split(both, 6)] + [f.flush()])
    counts = {}
    for _t, x, y, _ in both[both["t"] < both["t"][0] + 100_000].tolist():
        counts[(x, y)] = counts.get((x, y), 0) + 1
    hot_set = {k for k, v in counts.items() if v > 500 * 0.1}
    ref = [e for e in both.tolist() if (e[1], e[2]) not in hot_set]
    assert hot_set == {(3, 4)} and kept.tolist() == ref
