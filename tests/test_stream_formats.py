"""The event formats beyond EVT2/EVT3: each file written by an independent writer (faery's
DAT, CSV and AEDAT4 encoders; a word-by-word EVT2.1 writer and an N-MNIST record writer
from the format tables, here) and read back by akida_rt, by content whatever its name."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from akida_rt.stream.events import make_events
from akida_rt.stream.readers import open_events, read_events

faery = pytest.importorskip("faery")


@pytest.fixture(scope="module")
def ev():
    rng = np.random.default_rng(3)
    n = 20_000
    t = np.sort(rng.integers(0, 3_000_000, n))
    return make_events(t, rng.integers(0, 320, n), rng.integers(0, 240, n), rng.integers(0, 2, n))


def faery_file(ev, path, **kw):
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    faery.events_stream_from_array(arr, dimensions=(320, 240)).to_file(str(path), **kw)


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(a[k], b[k]) for k in "txyp")


@pytest.mark.parametrize("name", ["cd.dat", "ev.csv", "ev.aedat4"])
def test_faery_files(tmp_path, ev, name):
    faery_file(ev, tmp_path / name)
    got = read_events(tmp_path / name)
    assert same(got, ev)
    with open_events(tmp_path / name) as r:
        assert (r.sensor.width, r.sensor.height) == (320, 240)


def test_aedat4_equals_dv_processing(tmp_path, ev):
    from tests.dv_oracle import dv_events

    faery_file(ev, tmp_path / "ev.aedat4")
    assert same(read_events(tmp_path / "ev.aedat4"), dv_events(tmp_path / "ev.aedat4"))


def evt21_words(ev):
    """EVT2.1 per the spec table: TIME_HIGH when bits 33..6 change; one vectorized word per
    run of events sharing t, y, polarity and a 32-pixel block, its valid mask per pixel."""
    words, high = [], None
    rows = ev[["t", "x", "y", "p"]].tolist()
    i = 0
    while i < len(rows):
        t, x, y, p = rows[i]
        if t >> 6 != high:
            high = t >> 6
            words.append((0x8 << 60) | ((high & 0x0FFFFFFF) << 32))
        base, mask = x & ~31, 0
        j = i
        while j < len(rows) and rows[j][0] == t and rows[j][2] == y and rows[j][3] == p \
                and rows[j][1] & ~31 == base and not mask >> (rows[j][1] - base) & 1:  # fmt: skip
            mask |= 1 << (rows[j][1] - base)
            j += 1
        words.append((p << 60) | ((t & 0x3F) << 54) | (base << 43) | (y << 32) | mask)
        if i % 7 == 0:
            words.append((0xA << 60) | (1 << 32))  # EXT_TRIGGER: no CD event
        i = j
    return struct.pack(f"<{len(words)}Q", *words)


def test_evt21_vectorized_words(tmp_path, ev):
    # runs of neighbouring pixels at one time: what EVT2.1's valid masks are for
    run = make_events(np.repeat(ev["t"][:500], 4), np.repeat(ev["x"][:500].astype(int) & ~3, 4) + np.tile(np.arange(4), 500),
                      np.repeat(ev["y"][:500], 4), np.repeat(ev["p"][:500], 4))  # fmt: skip
    order = np.lexsort((run["x"], run["p"], run["y"], run["t"]))
    run = run[order]
    head = b"% evt 2.1\n% format EVT21;height=240;width=320\n% end\n"
    (tmp_path / "v.raw").write_bytes(head + evt21_words(run))
    (tmp_path / "bare.evt21").write_bytes(evt21_words(run))
    assert len(evt21_words(run)) // 8 < len(run)  # several events per word
    assert same(read_events(tmp_path / "v.raw"), run)
    assert same(read_events(tmp_path / "bare.evt21", sensor=(320, 240)), run)


def test_nmnist_bin_with_time_overflow(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    t = np.sort(rng.integers(0, 3 << 23, n))  # past 2^23 us twice
    x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    out = bytearray()
    epoch = 0
    for ti, xi, yi, pi in zip(t.tolist(), x.tolist(), y.tolist(), p.tolist(), strict=True):
        while ti >> 23 > epoch:  # the overflow marker N-Caltech101 files carry
            out += bytes([0, 240, 0, 0, 0])
            epoch += 1
        low = ti & 0x7FFFFF
        out += bytes([xi, yi, (pi << 7) | (low >> 16), (low >> 8) & 0xFF, low & 0xFF])
    (tmp_path / "sample.bin").write_bytes(bytes(out))
    assert same(read_events(tmp_path / "sample.bin"), make_events(t, x, y, p))


def test_ext_triggers_are_kept(tmp_path, ev):
    from akida_rt.stream.evt2 import encode_evt2
    from akida_rt.stream.prophesee import raw_header
    from tests.event_writers import spec_evt3

    words = encode_evt2(ev).tolist()
    cd = [i for i, w in enumerate(words) if w >> 28 <= 1]
    picks = cd[::997]  # a trigger right after these events, at their time
    want = []
    for k, i in enumerate(reversed(picks)):
        t = int(ev["t"][cd.index(i)])
        words.insert(i + 1, (0xA << 28) | ((t & 0x3F) << 22) | ((k % 3) << 8) | (k & 1))
        want.append((t, k % 3, k & 1))
    (tmp_path / "tr2.raw").write_bytes(
        raw_header(320, 240, "EVT2") + struct.pack(f"<{len(words)}I", *words)
    )
    with open_events(tmp_path / "tr2.raw") as r:
        assert same(np.concatenate(list(r.chunks())), ev)
        assert sorted(r.triggers().tolist()) == sorted(want)
    spec_evt3(tmp_path / "tr3.raw", ev, 320, 240)  # id 1, value 1 after every 5th time high
    with open_events(tmp_path / "tr3.raw") as r:
        assert same(np.concatenate(list(r.chunks())), ev)
        tr = r.triggers()
    highs = np.arange(0, (int(ev["t"][-1]) >> 12) + 1, 5)
    assert len(tr) == len(highs) and set(tr["id"]) == {1} and set(tr["value"]) == {1}
    assert np.array_equal(tr["t"] >> 12, highs)


def test_aedat2_davis_and_dvs128(tmp_path, ev):
    small = ev[(ev["x"] < 128) & (ev["y"] < 128)]
    davis = bytearray(b"#!AER-DAT2.0\r\n# This is a raw AE data file created by jAER\r\n")
    dvs128 = bytearray(b"#!AER-DAT2.0\r\n# HardwareInterface: DVS128\r\n")
    for t, x, y, p in small[["t", "x", "y", "p"]].tolist():
        davis += struct.pack(">II", (y << 22) | (x << 12) | (p << 11), t)
        if t % 5 == 0:
            davis += struct.pack(">II", 1 << 31 | 12345, t)  # an APS sample: skipped
        dvs128 += struct.pack(">II", ((127 - y) << 8) | ((127 - x) << 1) | (1 - p), t)
    (tmp_path / "davis.aedat").write_bytes(bytes(davis))
    (tmp_path / "dvs128.aedat").write_bytes(bytes(dvs128))
    assert same(read_events(tmp_path / "davis.aedat"), small)
    assert same(read_events(tmp_path / "dvs128.aedat"), small)


def test_aedat31_packets(tmp_path, ev):
    out = bytearray(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n")
    late = ev.copy()
    late["t"] += (1 << 31) - 1_000_000  # past the 31-bit time: the packets' overflow counts
    for a in range(0, len(late), 3000):
        part = late[a : a + 3000]
        overflow = int(part["t"][0]) >> 31
        if int(part["t"][-1]) >> 31 != overflow:  # a packet never spans an overflow
            cut = int(np.searchsorted(part["t"], (overflow + 1) << 31))
            parts = [part[:cut], part[cut:]]
        else:
            parts = [part]
        for p_ in parts:
            ov = int(p_["t"][0]) >> 31
            out += struct.pack("<hhiiiiii", 1, 1, 8, 4, ov, len(p_), len(p_), len(p_))
            for t, x, y, p in p_[["t", "x", "y", "p"]].tolist():
                out += struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | 1, t & 0x7FFFFFFF)
    (tmp_path / "rec.aedat").write_bytes(bytes(out))
    assert same(read_events(tmp_path / "rec.aedat"), late)


def test_hdf5_groups_and_compound(tmp_path, ev):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "dsec.h5", "w") as f:  # DSEC's layout, times after t_offset
        g = f.create_group("events")
        for k, name in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "p")):
            g.create_dataset(name, data=ev[k] - (1000 if k == "t" else 0), chunks=True)
        f.create_dataset("t_offset", data=np.int64(1000))
    with h5py.File(tmp_path / "compound.hdf5", "w") as f:
        arr = np.zeros(len(ev), [("x", "<u2"), ("y", "<u2"), ("p", "i1"), ("t", "<i8")])
        for k in "txy":
            arr[k] = ev[k]
        arr["p"] = np.where(ev["p"], 1, -1)
        f.create_dataset("events", data=arr)
    for name in ("dsec.h5", "compound.hdf5"):
        assert same(read_events(tmp_path / name, chunk_events=5000), ev)


def test_event_stream_es_from_faery(tmp_path, ev):
    slow = ev[:3000].copy()
    slow["t"] = slow["t"] * 3  # gaps past 127 us: overflow bytes
    faery_file(slow, tmp_path / "rec.es")
    got = read_events(tmp_path / "rec.es")
    rel = slow.copy()
    rel["t"] -= slow["t"][0]  # .es stores times from its first event
    assert same(got, rel)
