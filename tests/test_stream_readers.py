"""Event readers: AEDAT4, EVT2/EVT3 (ours, from the spec) and .npy, read in
chunks, cross-checked against files written by independent writers, and refusing
broken files with the file and offset."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from akida_rt.errors import EventFileError
from akida_rt.stream.events import EVENT_DTYPE, make_events
from akida_rt.stream.evt2 import write_evt2
from akida_rt.stream.evt3 import write_evt3
from akida_rt.stream.readers import open_events, read_events
from tests.dv_oracle import write_aedat4
from tests.event_writers import expelliarmus_evt2, spec_evt3

W, H = 640, 480


def recording(n: int = 5000, seed: int = 0, span_us: int = 40_000_000) -> np.ndarray:
    """Random events over 40 s (past EVT3's 16.7 s time wrap), with runs on one row at one
    time as a sensor's vector events have."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_us, n))
    x = rng.integers(0, W - 40, n)
    ev = make_events(t, x, rng.integers(0, H, n), rng.integers(0, 2, n))
    runs = np.flatnonzero(rng.random(n) < 0.1)  # every tenth event starts a run of 2..30
    extra = []
    for i in runs.tolist():
        k = int(rng.integers(2, 30))
        xs = np.unique(ev["x"][i] + rng.integers(0, 40, k))
        extra.append(make_events(np.full(len(xs), ev["t"][i]), xs, np.full(len(xs), ev["y"][i]),
                                 np.full(len(xs), ev["p"][i])))  # fmt: skip
    ev = np.concatenate([np.delete(ev, runs), *extra])
    return ev[np.lexsort((ev["x"], ev["p"], ev["y"], ev["t"]))]


@pytest.fixture(scope="module")
def events() -> np.ndarray:
    return recording()


def test_evt2_matches_an_independent_writer(tmp_path, events):
    path = tmp_path / "expelliarmus.raw"
    expelliarmus_evt2(path, events)
    assert np.array_equal(read_events(path), events)


def test_evt2_writer_is_read_back_by_an_independent_reader(tmp_path, events):
    from expelliarmus import Wizard

    path = tmp_path / "ours.raw"
    write_evt2(path, events, W, H)
    theirs = Wizard(encoding="evt2", fpath=str(path)).read()
    for ours_name, their_name in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "p")):
        assert np.array_equal(theirs[their_name], events[ours_name])


def test_evt3_matches_a_writer_from_the_spec_table(tmp_path, events):
    path = tmp_path / "spec.raw"
    spec_evt3(path, events)
    assert events["t"][-1] > 1 << 24  # the 24-bit time wrapped twice
    assert np.array_equal(read_events(path), events)


def test_evt3_words_decoded_by_hand(tmp_path):
    """Words from the spec table, and what they mean worked out by hand."""
    words = [
        0x8001,  # TIME_HIGH 1: time 4096
        0x6010,  # TIME_LOW 16: time 4112
        0x0805,  # ADDR_Y 5 (system bit set)
        0x2803,  # ADDR_X 3, ON: (3, 5) at 4112
        0x3064,  # VECT_BASE_X 100, OFF
        0x4805,  # VECT_12 bits 0, 2, 11: x 100, 102, 111; base 112
        0x5081,  # VECT_8 bits 0, 7: x 112, 119; base 120
        0xA101,  # EXT_TRIGGER: no CD event
        0x6020,  # TIME_LOW 32: time 4128
        0x0007,  # ADDR_Y 7
        0x4001,  # VECT_12 bit 0: x 120 (base carried), OFF
    ]
    path = tmp_path / "hand.raw"
    path.write_bytes(b"% evt 3.0\n% end\n" + struct.pack(f"<{len(words)}H", *words))
    got = read_events(path)
    want = make_events([4112] * 6 + [4128], [3, 100, 102, 111, 112, 119, 120],
                       [5] * 6 + [7], [1, 0, 0, 0, 0, 0, 0])  # fmt: skip
    assert np.array_equal(got, want)


@pytest.mark.parametrize("suffix", ["evt2.raw", "evt3.raw", "aedat4", "npy"])
def test_round_trip_and_chunks_of_any_size(tmp_path, events, suffix):
    path = tmp_path / f"rec.{suffix}"
    {"evt2.raw": lambda: write_evt2(path, events, W, H),
     "evt3.raw": lambda: write_evt3(path, events, W, H),
     "aedat4": lambda: write_aedat4(path, events, W, H, packet=700),
     "npy": lambda: np.save(path, events)}[suffix]()  # fmt: skip
    reader = open_events(path, chunk_events=97)
    chunks = list(reader.chunks())
    reader.close()
    assert len(chunks) > 10 and max(len(c) for c in chunks) <= 97 * 12  # never the whole file
    assert all(c.dtype == EVENT_DTYPE for c in chunks)
    assert np.array_equal(np.concatenate(chunks), events)
    if suffix != "npy":
        assert (reader.sensor.width, reader.sensor.height) == (W, H)


def test_npy_with_dv_processing_field_names(tmp_path, events):
    dt = np.dtype([("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "u1")])
    arr = np.zeros(len(events), dt)
    arr["timestamp"], arr["x"], arr["y"], arr["polarity"] = (events[f] for f in "txyp")
    np.save(tmp_path / "dv.npy", arr)
    assert np.array_equal(read_events(tmp_path / "dv.npy"), events)


# ------------------------------------------------------------------ broken files
def raw(tmp_path, name: str, header: bytes, words: list[int], fmt: str) -> str:
    path = tmp_path / name
    path.write_bytes(header + struct.pack(f"<{len(words)}{fmt}", *words))
    return str(path)


EVT2 = b"% evt 2.0\n% geometry 640x480\n% end\n"


def cd2(t: int, x: int, y: int, on: int = 1) -> int:
    return (on << 28) | ((t & 0x3F) << 22) | (x << 11) | y


def test_truncated_evt2_names_the_file_and_offset(tmp_path, events):
    path = tmp_path / "cut.raw"
    write_evt2(path, events, W, H)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size - 2])
    with pytest.raises(EventFileError, match=rf"cut.raw: at {size - 4}: .*truncated") as err:
        read_events(path)
    assert err.value.offset == size - 4
    kept = read_events(path, on_error="skip")  # skip: everything before the cut
    assert np.array_equal(kept, events[:-1])


def test_unknown_evt2_word(tmp_path):
    words = [0x80000000, cd2(1, 2, 3), 0x30000000, cd2(2, 4, 5)]
    path = raw(tmp_path, "unknown2.raw", EVT2, words, "I")
    with pytest.raises(EventFileError, match=r"at 43: unknown EVT2 word 0x30000000 \(type 0x3\)"):
        read_events(path)
    assert read_events(path, on_error="skip")["x"].tolist() == [2, 4]


def test_unknown_evt3_word(tmp_path):
    words = [0x8000, 0x6001, 0x0002, 0x2003, 0x9ABC, 0x2004]
    path = raw(tmp_path, "unknown3.raw", b"% evt 3.0\n% end\n", words, "H")
    with pytest.raises(EventFileError, match=r"at 24: unknown EVT3 word 0x9abc"):
        read_events(path)
    assert read_events(path, on_error="skip")["x"].tolist() == [3, 4]


def test_non_monotonic_timestamps(tmp_path):
    words = [0x80000001, cd2(10, 1, 1), cd2(5, 2, 2), cd2(20, 3, 3)]  # 74, 69, 84 us
    path = raw(tmp_path, "back.raw", EVT2, words, "I")
    with pytest.raises(EventFileError, match=r"at 43: timestamp 69 us goes back from 74 us"):
        read_events(path)
    assert read_events(path, on_error="skip")["x"].tolist() == [1, 3]
    # EVT3: a time high that falls by less than half its range is not a wrap
    words3 = [0x8200, 0x6000, 0x0001, 0x2001, 0x81F0, 0x2002]
    path3 = raw(tmp_path, "back3.raw", b"% evt 3.0\n% end\n", words3, "H")
    with pytest.raises(EventFileError, match=r"back3.raw: at 26: timestamp .* goes back"):
        read_events(path3)
    ev = make_events([5, 3], [1, 2], [1, 1], [1, 1])
    np.save(tmp_path / "back.npy", ev)
    with pytest.raises(EventFileError, match=r"back.npy: at 1: timestamp 3 us goes back"):
        read_events(tmp_path / "back.npy")


def test_events_outside_the_declared_sensor(tmp_path):
    path = raw(tmp_path, "outside.raw", EVT2, [0x80000000, cd2(1, 700, 3)], "I")
    with pytest.raises(EventFileError, match=r"at 39: event at \(700, 3\) is outside the 640x480"):
        read_events(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [(b"% evt 4.0\n% end\n", "format EVT4.0"), (b"% date today\n% end\n", "no event format"),
     (b"", "no event format")],
)  # fmt: skip
def test_raw_headers_that_name_no_supported_format(tmp_path, header, message):
    path = tmp_path / "bad.raw"
    path.write_bytes(header + b"\x00" * 16)
    with pytest.raises(EventFileError, match=f"bad.raw: at 0: .*{message}"):
        open_events(path)


def test_corrupt_and_truncated_aedat4(tmp_path, events):
    good = tmp_path / "good.aedat4"
    write_aedat4(good, events, W, H, packet=500)
    data = good.read_bytes()
    (tmp_path / "cut.aedat4").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.aedat4").write_bytes(np.random.default_rng(0).bytes(4096))
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    (tmp_path / "corrupt.aedat4").write_bytes(bytes(corrupt))
    for name in ("cut.aedat4", "noise.aedat4", "missing.aedat4"):
        with pytest.raises(EventFileError, match=name):
            read_events(tmp_path / name)
    # dv-processing never returns on this one (tests/dv_oracle.py); ours names the packet
    with pytest.raises(EventFileError, match=r"corrupt.aedat4: at \d+: the packet at byte \d+ "):
        read_events(tmp_path / "corrupt.aedat4")
    kept = read_events(tmp_path / "corrupt.aedat4", on_error="skip")
    assert 0 < len(kept) < len(events) and np.all(np.isin(kept["t"], events["t"]))


def test_bad_npy_files(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros((10, 4)))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY junk")
    np.save(tmp_path / "fields.npy", np.zeros(3, [("a", "i4"), ("b", "i4")]))
    for name, message in (("plain.npy", "structured array"), ("junk.npy", "not a readable"),
                          ("fields.npy", "needs fields t, x, y, p")):  # fmt: skip
        with pytest.raises(EventFileError, match=f"{name}: at 0: .*{message}"):
            read_events(tmp_path / name)
