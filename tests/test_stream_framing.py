"""Event framing: by count and by time window, polarity merged or split, crop and
binning, uint8 clipping; checked against a per-event reference and dv-processing."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt.errors import StreamError
from akida_rt.stream.events import make_events
from akida_rt.stream.framing import EventFramer, Framing, frames_from_events
from akida_rt.stream.synthetic import SaccadeCamera, saccade_events


def random_events(n: int, w: int, h: int, seed: int = 0, span: int = 1_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span, n))
    return make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))


def reference(ev, framing: Framing, groups) -> np.ndarray:
    """Frames event by event, the slow obvious way."""
    h, w, c = framing.shape
    sw, sh = framing.sensor
    x0, y0, cw, ch = framing.crop or (0, 0, sw, sh)
    b = framing.binning or max(1, -(-cw // w), -(-ch // h))
    ox, oy = (w - -(-cw // b)) // 2, (h - -(-ch // b)) // 2
    out = np.zeros((len(groups), h, w, c), np.int64)
    for k, idx in enumerate(groups):
        for x, y, p in ev[idx][["x", "y", "p"]].tolist():
            if not (x0 <= x < x0 + cw and y0 <= y < y0 + ch):
                continue
            fx, fy = (x - x0) // b + ox, (y - y0) // b + oy
            if 0 <= fx < w and 0 <= fy < h:
                out[k, fy, fx, p if c == 2 else 0] += 1
    return np.minimum(out, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "crop", "binning"),
    [((34, 34, 1), None, None), ((16, 16, 2), None, None), ((8, 12, 1), (5, 3, 20, 25), None),
     ((10, 10, 2), (0, 0, 34, 34), 2)],
)  # fmt: skip
def test_count_framing_matches_the_reference(shape, crop, binning):
    ev = random_events(2600, 34, 34)
    framing = Framing(shape, (34, 34), events_per_frame=500, crop=crop, binning=binning)
    frames, ends = EventFramer(framing).push(ev)
    groups = [np.arange(k * 500, (k + 1) * 500) for k in range(5)]  # the last 100 wait
    assert np.array_equal(frames, reference(ev, framing, groups))
    assert ends.tolist() == ev["t"][499::500][:5].tolist()


def test_counts_clip_at_255_and_chunks_do_not_matter():
    ev = make_events(np.arange(3000), np.zeros(3000, int), np.zeros(3000, int), np.ones(3000))
    framing = Framing((4, 4, 1), (4, 4), events_per_frame=1000)
    whole = EventFramer(framing).push(ev)[0]
    assert whole[:, 0, 0, 0].tolist() == [255, 255, 255] and whole.sum() == 3 * 255
    framer = EventFramer(framing)
    pieces = [framer.push(part)[0] for part in np.array_split(ev, 7)]
    assert np.array_equal(np.concatenate(pieces), whole)


def test_time_windows_include_empty_ones_and_flush_the_last():
    ev = make_events([100, 150, 420, 430, 990], [0, 1, 2, 3, 0], [0, 0, 0, 0, 1], [1, 0, 1, 1, 0])
    framing = Framing((2, 4, 2), (4, 2), window_us=100)
    got = list(frames_from_events(np.array_split(ev, 3), framing))
    ends = [t for _, t in got]
    assert ends == [200, 300, 400, 500, 600, 700, 800, 900, 1000]
    counts = [int(f.sum()) for f, _ in got]
    assert counts == [2, 0, 0, 2, 0, 0, 0, 0, 1]
    assert got[0][0][0, 0, 1] == 1 and got[0][0][0, 1, 0] == 1  # ON at x=0, OFF at x=1


@pytest.mark.parametrize("chunks", [1, 3, 1000])
def test_frames_counted_across_chunks_match_the_reference(chunks):
    """Frames counted from the held events and a new chunk as one sequence: frames and
    events outside the crop stay apart at every chunking, windows empty or not, polarity
    split, counts clipped."""
    rng = np.random.default_rng(5)
    t = np.sort(np.concatenate([rng.integers(0, 4000, 1500), rng.integers(9000, 9500, 1500)]))
    x, y = rng.integers(0, 20, 3000), rng.integers(0, 16, 3000)
    ev = make_events(t, x, y, rng.integers(0, 2, 3000))
    ev[:400] = ev[0]  # 400 times the first event, inside the crop: its pixel clips at 255
    ev["x"][:400], ev["y"][:400] = 7, 6
    framing = Framing((5, 6, 2), (20, 16), window_us=500, crop=(2, 3, 14, 11), binning=2)
    framer = EventFramer(framing)
    pushed = [framer.push(part) for part in np.array_split(ev, chunks)]
    frames = np.concatenate([f for f, _ in pushed])
    ends = np.concatenate([e for _, e in pushed])
    t = ev["t"]
    groups = [np.flatnonzero((t >= e - 500) & (t < e)) for e in ends.tolist()]
    assert len(frames) == 18 and frames.max() == 255 and any(len(g) == 0 for g in groups)
    assert np.array_equal(frames, reference(ev, framing, groups))


def test_events_past_the_sensor_are_ignored():
    """Coordinates at or past the sensor's size (up to 65535) count nowhere, even when
    they would alias onto a real pixel of the next row or frame."""
    ev = make_events(np.arange(8), [0, 4, 65535, 3, 0, 3, 65535, 1], [0, 0, 0, 4, 65535, 1, 65535, 2],
                     [1, 1, 0, 1, 0, 1, 1, 0])  # fmt: skip
    frames = EventFramer(Framing((4, 4, 2), (4, 4), events_per_frame=4)).push(ev)[0]
    assert frames[0, 0, 0, 1] == 1 and frames[1, 1, 3, 1] == 1 and frames[1, 2, 1, 0] == 1
    assert frames.sum() == 3


def test_any_non_zero_polarity_counts_as_on():
    """An event array built by hand with polarity 255 (not 1) still lands in the ON
    channel of its own pixel, never in a neighbour's or the next frame's."""
    ev = make_events(np.arange(4), [3, 3, 0, 0], [3, 3, 0, 0], [1, 1, 0, 1])
    ev["p"][1] = 255
    frames = EventFramer(Framing((4, 4, 2), (4, 4), events_per_frame=2)).push(ev)[0]
    assert frames[0, 3, 3].tolist() == [0, 2] and frames[0].sum() == 2
    assert frames[1, 0, 0].tolist() == [1, 1] and frames[1].sum() == 2


def test_a_pixel_hit_past_the_count_width_still_clips_at_255():
    """70,000 events on one pixel in one window (more than a 16-bit count holds), with a
    few elsewhere, stay 255 and 1, not a wrapped count."""
    n = 70_000
    x = np.zeros(n + 2, int)
    x[-2:] = 1
    ev = make_events(np.arange(n + 2) // 100, x, np.zeros(n + 2, int), np.ones(n + 2))
    framer = EventFramer(Framing((2, 2, 1), (2, 2), window_us=10_000))
    frames = np.concatenate([framer.push(ev)[0], framer.flush()[0]])
    assert frames[:, 0, 0, 0].max() == 255 and frames[:, 0, 1, 0].sum() == 2


def test_arrays_in_other_layouts_frame_the_same():
    """A strided slice and an array with dv-processing's field names give the same frames
    as the plain event array."""
    ev = random_events(4000, 34, 34, seed=4)
    framing = Framing((34, 34, 2), (34, 34), events_per_frame=500)
    want = EventFramer(framing).push(ev[::2])[0]
    assert np.array_equal(EventFramer(framing).push(ev[::2].copy())[0], want)
    dv = np.zeros(2000, [("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "?")])
    for ours, theirs in (("t", "timestamp"), ("x", "x"), ("y", "y"), ("p", "polarity")):
        dv[theirs] = ev[::2][ours]
    assert np.array_equal(EventFramer(framing).push(dv)[0], want)


def test_a_corrupt_time_jump_is_refused():
    ev = make_events([0, 10**12], [0, 0], [0, 0], [1, 1])
    with pytest.raises(StreamError, match="windows in one step"):
        EventFramer(Framing((2, 2, 1), (2, 2), window_us=1)).push(ev)


def test_bad_framings_are_refused():
    with pytest.raises(StreamError, match="exactly one"):
        Framing((2, 2, 1), (2, 2))
    with pytest.raises(StreamError, match="1 or 2 channels"):
        Framing((2, 2, 3), (2, 2), events_per_frame=10)
    with pytest.raises(StreamError, match="sensor size"):
        Framing((2, 2, 1), (0, 0), events_per_frame=10)
    with pytest.raises(StreamError, match="over 4096 pixels a side"):
        Framing((2, 2, 1), (65535, 480), events_per_frame=10)


def test_same_frames_as_dv_processing_accumulator():
    dv = pytest.importorskip("dv_processing")
    ev = random_events(9000, 34, 34, seed=3)
    store = dv.EventStore()
    for t, x, y, p in ev[["t", "x", "y", "p"]].tolist():
        store.push_back(t, x, y, bool(p))
    acc = dv.Accumulator(
        (34, 34), dv.Accumulator.Decay.NONE, 0.0, False, 1.0, 255.0, 0.0, 0.0, True
    )
    theirs = []
    for i in range(3):
        acc.accept(store.slice(i * 3000, 3000))
        theirs.append(acc.generateFrame().image)
        acc.clear()
    ours = EventFramer(Framing((34, 34, 1), (34, 34), events_per_frame=3000)).push(ev)[0]
    assert np.array_equal(ours[..., 0], np.stack(theirs).reshape(3, 34, 34))


def test_synthetic_saccades_look_like_a_dvs():
    image = np.zeros((28, 28), np.uint8)
    image[8:20, 12:16] = 255  # a bar
    ev = saccade_events(image, SaccadeCamera(noise_hz=0.0), seed=1)
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"][-1] < 300_000
    assert 0.3 < ev["p"].mean() < 0.7  # edges bring both polarities
    xs, ys = ev["x"].astype(int), ev["y"].astype(int)
    assert xs.min() >= 14 and xs.max() <= 23 and ys.min() >= 10 and ys.max() <= 25  # near the bar
    noisy = saccade_events(image, SaccadeCamera(noise_hz=50.0), seed=1)
    assert len(noisy) > len(ev) + 1000
