"""Each kernel of akida_rt.native._kernels equals, bit for bit, the numpy form it replaced
(tests/native_reference.py): EVT2/EVT3 decoding and the reader's checks, framing, the
engine's activation, pooling and counting, the edge-learning step; bad arguments are
refused with a Python exception."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt.engine import integer
from akida_rt.engine.learning_rule import RuleParams, learn
from akida_rt.errors import EventFileError
from akida_rt.format.layer_params import Padding, pooled_size, same_padding
from akida_rt.model import zoo
from akida_rt.native import _kernels
from akida_rt.stream.events import EVENT_DTYPE, make_events
from akida_rt.stream.evt2 import Evt2Decoder, encode_evt2
from akida_rt.stream.evt3 import Evt3Decoder, encode_evt3
from akida_rt.stream.framing import EventFramer, Framing
from akida_rt.stream.prophesee import RawReader, raw_header
from tests import native_reference as ref


class Recorder:
    """Stands for the reader: records what a decoder reports."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def bad(self, *args) -> None:
        self.calls.append(args)


def _evt3_words(rng: np.random.Generator, n: int) -> np.ndarray:
    kinds = rng.choice([0, 2, 3, 4, 5, 6, 8, 7, 10, 14, 15, 1, 9, 11, 12, 13], n,
                       p=[0.15, 0.15, 0.08, 0.1, 0.08, 0.15, 0.1] + [0.19 / 9] * 9)  # fmt: skip
    payload = rng.integers(0, 1 << 12, n)
    return ((kinds << 12) | payload).astype(np.uint16)


@pytest.mark.parametrize("seed", range(6))
def test_decoders_equal_the_numpy_decoders(seed):
    """Random word streams (every word type, wraps, unknown words) in random chunks."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 20_000))
    streams = [
        (_evt3_words(rng, n), Evt3Decoder, ref.NumpyEvt3Decoder),
        (rng.integers(0, 1 << 32, n, dtype=np.uint32), Evt2Decoder, ref.NumpyEvt2Decoder),
    ]
    for words, ours, theirs in streams:
        a_rep, b_rep = Recorder(), Recorder()
        a, b = ours(a_rep), theirs(b_rep)  # type: ignore[arg-type]
        offset = int(rng.integers(0, 1 << 40))
        for part in np.array_split(words, int(rng.integers(1, 9))):
            ea, oa = a(part, offset)
            eb, ob = b(part, offset)
            assert ea.dtype == eb.dtype == EVENT_DTYPE
            assert np.array_equal(ea, eb) and np.array_equal(oa, ob)
            offset += part.nbytes
        assert a_rep.calls == b_rep.calls


def _reference_reader(path, on_error: str) -> list[np.ndarray]:
    """The reader with the numpy decoders and its per-event checks on every chunk."""

    def numpy_decoder(cls):
        def make(reader):
            decoder = cls(reader)
            decoder.clean = lambda *args: None  # the checks on every chunk
            return decoder

        return make

    fmt = path.read_bytes()[:20]
    cls = ref.NumpyEvt3Decoder if b"3.0" in fmt else ref.NumpyEvt2Decoder
    word = np.dtype("<u2") if cls is ref.NumpyEvt3Decoder else np.dtype("<u4")
    with RawReader(path, numpy_decoder(cls), word, chunk_events=999, on_error=on_error) as r:
        return list(r.chunks())


def _read(path, on_error: str) -> list[np.ndarray]:
    fmt = path.read_bytes()[:20]
    cls, word = (Evt3Decoder, "<u2") if b"3.0" in fmt else (Evt2Decoder, "<u4")
    with RawReader(path, cls, np.dtype(word), chunk_events=999, on_error=on_error) as r:
        return list(r.chunks())


@pytest.mark.parametrize("fmt", ["EVT2", "EVT3"])
@pytest.mark.parametrize("seed", range(4))
def test_the_reader_equals_the_per_event_checks(tmp_path, fmt, seed):
    """Files with events outside the sensor, times going back and unknown words: the same
    chunks (or the same error, at the same offset) as the numpy decoder with the reader's
    checks on every chunk."""
    rng = np.random.default_rng(seed)
    n = 5000
    t = np.sort(rng.integers(0, 1 << 26, n))
    ev = make_events(t, rng.integers(0, 40, n), rng.integers(0, 30, n), rng.integers(0, 2, n))
    words = encode_evt2(ev) if fmt == "EVT2" else encode_evt3(ev)
    if seed:  # corrupt some words
        hit = rng.integers(0, len(words), 3 * seed)
        words[hit] = rng.integers(0, np.iinfo(words.dtype).max, len(hit), dtype=words.dtype)
    path = tmp_path / "e.raw"
    path.write_bytes(raw_header(32, 24, fmt) + words.tobytes())
    for mode in ("skip", "raise"):
        try:
            want = _reference_reader(path, mode)
        except EventFileError as exc:
            with pytest.raises(EventFileError) as got:
                _read(path, mode)
            assert str(got.value) == str(exc)
            continue
        got = _read(path, mode)
        assert len(got) == len(want)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("seed", range(8))
def test_framing_equals_the_numpy_framer(seed):
    """Random sensors, frames, crops, both framings, polarity merged and split, events
    past the sensor, any non-zero polarity, random chunks, the flush."""
    rng = np.random.default_rng(seed)
    for _ in range(12):
        n, sw, sh = int(rng.integers(0, 6000)), int(rng.integers(1, 60)), int(rng.integers(1, 60))
        t = np.sort(rng.integers(0, int(rng.integers(1, 100_000)), n))
        ev = make_events(t, rng.integers(0, sw + 3, n), rng.integers(0, sh + 3, n),
                         rng.integers(0, 2, n))  # fmt: skip
        ev["p"][rng.random(n) < 0.05] = 255
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)), int(rng.integers(1, 3)))
        crop = None
        if rng.random() < 0.3:
            crop = (int(rng.integers(0, sw)), int(rng.integers(0, sh)), sw, sh)
        if rng.random() < 0.5:
            framing = Framing(
                shape, (sw, sh), events_per_frame=int(rng.integers(1, 800)), crop=crop
            )
        else:
            framing = Framing(shape, (sw, sh), window_us=int(rng.integers(1, 20_000)), crop=crop)
        ours, theirs = EventFramer(framing), ref.NumpyEventFramer(framing)
        for part in np.split(ev, np.sort(rng.integers(0, n + 1, int(rng.integers(0, 6))))):
            for (fa, ea), (fb, eb) in [(ours.push(part), theirs.push(part))]:
                assert fa.dtype == fb.dtype and np.array_equal(fa, fb)
                assert ea.dtype == eb.dtype and np.array_equal(ea, eb)
        (fa, ea), (fb, eb) = ours.flush(), theirs.flush()
        assert np.array_equal(fa, fb) and np.array_equal(ea, eb)


def _signed_zeros(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x[rng.random(x.shape) < 0.2] = -0.0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_pooling_and_counts_equal_numpy(dtype):
    """Random potentials (signed zeros included), scales down to 2^-30 (levels a hair
    under an integer), every activation width; pooling of every size, stride and
    padding."""
    rng = np.random.default_rng(1)

    class Compiled:
        pass

    for _ in range(400):
        r, rows = int(rng.integers(1, 40)), int(rng.integers(0, 30))
        acc = _signed_zeros(rng.integers(-5000, 5000, (rows, r)).astype(dtype), rng)
        shift = int(rng.integers(0, 31))
        c = Compiled()
        c.act_top = float(2 ** int(rng.integers(1, 9)) - 1)
        c.act_scale = rng.integers(-100, 1000, r) * 2.0**-shift
        c.act_offset = rng.integers(-10_000, 10_000, r) * 2.0**-shift
        c.act_int = None
        want = ref.activate(c, acc)  # type: ignore[arg-type]
        got, count = integer._activate(c, acc)  # type: ignore[arg-type]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        assert count == ref.events(want) == integer.events(want)
        n, h, w, ch = (int(v) for v in rng.integers(1, 8, 4))
        k, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        how = Padding.Same if rng.random() < 0.5 else Padding.Valid
        (oh, pt, pb), (ow, pl, pr) = pooled_size(h, k, s, how), pooled_size(w, k, s, how)
        if oh < 1 or ow < 1:
            continue
        x = _signed_zeros(rng.integers(-3, 3, (n, h, w, ch)).astype(dtype), rng)
        c.layer, c.pool_hw, c.pool_pad = Compiled(), (oh, ow), ((pt, pb), (pl, pr))
        c.layer.pool_size, c.layer.pool_stride = k, s
        want = ref.max_pool(c, x)  # type: ignore[arg-type]
        got = integer._max_pool(c, x)  # type: ignore[arg-type]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_patches_equal_the_padded_windows(dtype):
    """Every kernel size, stride, same/valid padding and padding value."""
    rng = np.random.default_rng(2)

    class Compiled:
        pass

    for _ in range(300):
        n, h, w, ch = (int(v) for v in rng.integers(1, 9, 4))
        k, s = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        if rng.random() < 0.5:
            (oh, t, b), (ow, lft, r) = same_padding(h, k, s), same_padding(w, k, s)
        elif k <= min(h, w):
            (oh, t, b), (ow, lft, r) = ((h - k) // s + 1, 0, 0), ((w - k) // s + 1, 0, 0)
        else:
            continue
        c = Compiled()
        c.layer, c.pad, c.out_hw = Compiled(), ((t, b), (lft, r)), (oh, ow)
        c.layer.kernel_size, c.layer.stride = k, s
        c.layer.padding_value = int(rng.choice([0, 1, 128, 255]))
        x = rng.integers(0, 256, (n, h, w, ch)).astype(dtype)
        want = ref.im2col(c, x)  # type: ignore[arg-type]
        got = _kernels.im2col(x, k, s, t, lft, oh, ow, float(c.layer.padding_value))
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == np.ascontiguousarray(want).tobytes()


@pytest.mark.parametrize("build", [zoo.digits_cnn, zoo.ds_cnn_kws, zoo.gxnor_mnist])
def test_zoo_models_run_as_with_the_numpy_steps(monkeypatch, build):
    model = build()
    x = np.random.default_rng(0).integers(0, 256, (3, *model.input_shape), dtype=np.uint8)
    ours = integer.Engine(model.layers)
    got = ours.run(x)
    monkeypatch.setattr(integer, "_max_pool", ref.max_pool)
    monkeypatch.setattr(integer, "events", ref.events)
    monkeypatch.setattr(
        integer, "_activate", lambda c, acc: (y := ref.activate(c, acc), ref.events(y))
    )
    engine = integer.Engine(model.layers)
    assert engine.run(x).tobytes() == got.tobytes()
    # every count but the last column, the host time spent in the layer (not a count)
    assert np.array_equal(engine.counts[:, :-1], ours.counts[:, :-1])


@pytest.mark.parametrize("seed", range(4))
def test_learning_equals_the_numpy_rule(seed):
    """Random sizes, parameters, weights and spikes, labelled and not."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        k, classes = int(rng.integers(1, 200)), int(rng.integers(0, 5))
        units = int(rng.integers(1, 6)) * classes if classes else int(rng.integers(1, 30))
        nw = int(rng.integers(1, k + 1))
        params = RuleParams(nw, classes, *(int(v) for v in rng.integers(0, nw + 1, 3)))
        weights = (rng.random((k, units)) < rng.random() * 0.3).astype(np.uint8)
        swaps = rng.integers(0, nw + 1, units).astype(np.int32)
        n = int(rng.integers(0, 30))
        spikes = (rng.random((n, k)) < rng.random()).astype(np.uint8)
        labels = rng.integers(0, classes, n) if classes else np.full(n, -1)
        w1, p1, w2, p2 = weights.copy(), swaps.copy(), weights.copy(), swaps.copy()
        want = ref.learn(params, w1, p1, spikes, labels)
        got = learn(params, w2, p2, spikes, labels)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert np.array_equal(w1, w2) and p1.tobytes() == p2.tobytes()


def test_bad_arguments_are_refused_not_read():
    ev = np.zeros(4, EVENT_DTYPE)
    words3, state = np.zeros(8, np.uint16), np.zeros(6, np.int64)
    cases = [
        (_kernels.evt3_decode, (words3.astype(np.uint32), state, EVENT_DTYPE, 0, 0, 0, 0, True)),
        (_kernels.evt3_decode, (words3, np.zeros(5, np.int64), EVENT_DTYPE, 0, 0, 0, 0, True)),
        (_kernels.evt3_decode, (words3[::2], state, EVENT_DTYPE, 0, 0, 0, 0, True)),
        (_kernels.evt3_decode, (words3, state, np.dtype("<u8"), 0, 0, 0, 0, True)),
        (_kernels.evt3_decode, (words3, state, EVENT_DTYPE, -1, 0, 0, 0, True)),
        (
            _kernels.evt3_decode,
            (words3, state.copy().view(), EVENT_DTYPE, 2**63 - 4, 0, 0, 0, True),
        ),
        (_kernels.evt2_decode, ("words", np.zeros(1, np.int64), EVENT_DTYPE, 0, 0, 0, 0, True)),
        (_kernels.frame_counts, (ev, ev, np.array([0, 9]), np.zeros(4, np.int32), 1, 1, False, 4)),
        (_kernels.frame_counts, (ev, ev, np.array([3, 2]), np.zeros(4, np.int32), 1, 1, False, 4)),
        (_kernels.frame_counts, (ev, ev, np.array([0, 2]), np.zeros(3, np.int32), 1, 1, False, 4)),
        (_kernels.frame_counts, (ev, ev, np.array([-1, 2]), np.zeros(4, np.int32), 1, 1, False, 4)),
        (_kernels.activate, (np.zeros(6), np.zeros(4), np.zeros(4), 15.0)),
        (_kernels.activate, (np.zeros(4, np.int64), np.zeros(4), np.zeros(4), 15.0)),
        (_kernels.activate, (np.zeros(4), np.zeros(4), np.zeros(4), float("nan"))),
        (_kernels.max_pool, (np.zeros((1, 4, 4, 1)), 0, 1, 0, 0, 2, 2)),
        (_kernels.max_pool, (np.zeros((4, 4, 1)), 2, 2, 0, 0, 2, 2)),
        (_kernels.count_nonzero, (np.zeros(4, np.int32),)),
        (_kernels.im2col, (np.zeros((1, 4, 4, 1)), 3, 0, 0, 0, 2, 2, 0.0)),
        (_kernels.im2col, (np.zeros((1, 4, 4, 1)), 3, 1, -1, 0, 2, 2, 0.0)),
        (_kernels.im2col, (np.zeros((1, 4, 4, 1), np.uint8), 3, 1, 0, 0, 2, 2, 0.0)),
    ]
    readonly = np.zeros((4, 2), np.uint8)
    readonly.flags.writeable = False
    learn_args = (np.zeros(2, np.int32), np.zeros((1, 4), np.uint8), np.zeros(1, np.int64),
                  np.zeros((1, 2), np.int64), (1, 0, 1, 0, 1))  # fmt: skip
    cases += [
        (_kernels.learn, (readonly, *learn_args)),
        (_kernels.learn, (np.zeros((3, 2), np.uint8), *learn_args)),
        (_kernels.learn, (np.zeros((4, 2), np.uint8), *learn_args[:4], (1, 0, 1, 0, 1, 0))),
        (_kernels.learn, (np.zeros((4, 2), np.uint8), np.zeros(2, np.float32), *learn_args[1:])),
        (_kernels.learn, (np.zeros((4, 2), np.uint8), *learn_args[:4], (1, 0, 2, 0, 1))),
        (
            _kernels.learn,
            (np.zeros((4, 2), np.uint8), np.full(2, 3, np.int32), *learn_args[1:]),
        ),  # swaps above num_weights
    ]
    labelled = (1, 2, 1, 0, 1)  # a label outside the classes
    cases.append((_kernels.learn, (np.zeros((4, 2), np.uint8), *learn_args[:2],
                                   np.full(1, 5, np.int64), learn_args[3], labelled)))  # fmt: skip
    for fn, args in cases:
        with pytest.raises((TypeError, ValueError)):
            fn(*args)
