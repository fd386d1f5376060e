"""The event files that used to crash or mislead the stream, as a user meets them: each is
one line naming the file, the byte offset and the fix, exit 1, no traceback and no frame
printed; or, where the file is good, the events that independent writers and readers
(dv-processing, faery) say it holds."""

from __future__ import annotations

import time

import numpy as np
import pytest

from akida_rt.data import sample_program
from akida_rt.stream.evt3 import encode_evt3, write_evt3
from akida_rt.stream.readers import read_events
from akida_rt.stream.synthetic import saccade_recording
from tests.conftest import run_akida
from tests.dv_oracle import dv_batches, write_aedat4

PACKET = 1000


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    digits = np.zeros((3, 20, 20), np.uint8)
    digits[:, 5:15, 9:11] = 255
    ev, _ = saccade_recording(digits)
    write_aedat4(d / "full.aedat4", ev, 34, 34, packet=PACKET)
    assert len(ev) > 8 * PACKET
    return d, ev


def stream(source, *extra):
    return run_akida("stream", "-m", str(sample_program()), "--source", str(source),
                     "--embedded", "--json", *extra)  # fmt: skip


def one_line_failure(out, *words):
    assert out.returncode == 1, out.stderr
    assert out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), out.stderr


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(a[k], b[k]) for k in "txyp")


@pytest.mark.parametrize("size", [0, 100])
def test_an_empty_or_cut_aedat4_header_is_one_line(rec, size):
    d, _ = rec
    data = (d / "full.aedat4").read_bytes()
    (d / f"cut{size}.aedat4").write_bytes(data[:size])
    out = stream(d / f"cut{size}.aedat4")
    one_line_failure(out, f"cut{size}.aedat4: at {size}:", "AEDAT4")
    assert "Stacktrace" not in out.stderr and "hpp" not in out.stderr


def test_an_interrupted_aedat4_keeps_every_complete_packet(rec):
    d, _ = rec
    data = (d / "full.aedat4").read_bytes()
    cut = d / "cut.aedat4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = stream(cut)
    one_line_failure(out, "cut.aedat4: at ", "interrupted recording", "--skip-errors")
    batches = dv_batches(d / "full.aedat4")  # dv-processing: one batch per packet
    sizes, every = [len(b) for b in batches], np.concatenate(batches)
    got = read_events(cut, on_error="skip")
    complete = int(out.stderr.rsplit("(", 1)[1].split(")")[0])
    assert 1 <= complete < len(sizes) and same(got, every[: sum(sizes[:complete])])
    ok = stream(cut, "--skip-errors", "--events-per-frame", "1000")
    assert ok.returncode == 0 and ok.stdout.count('"seq"') == len(got) // 1000


def test_evt2_past_2_to_the_34_us_reads_as_faery_wrote_it(tmp_path, rec):
    faery = pytest.importorskip("faery")
    _, ev = rec
    late = ev.copy()
    late["t"] += (1 << 34) - 200_000  # the 28-bit time high wraps mid-recording
    arr = np.zeros(len(late), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = late["t"], late["x"], late["y"], late["p"] == 1
    faery.events_stream_from_array(arr, dimensions=(34, 34)).to_file(str(tmp_path / "late.raw"),
                                                                      version="evt2")  # fmt: skip
    assert same(read_events(tmp_path / "late.raw"), late)


def test_faery_t0_header_is_added_back(tmp_path, rec):
    faery = pytest.importorskip("faery")
    _, ev = rec
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"] + 7_000_000, ev["x"], ev["y"], ev["p"] == 1
    s = faery.events_stream_from_array(arr, dimensions=(34, 34))
    s.to_file(str(tmp_path / "t0.raw"), version="evt3", zero_t0=True)
    s.to_file(str(tmp_path / "t0.dat"), zero_t0=True)
    assert b"% t0 " in (tmp_path / "t0.raw").read_bytes()[:200]
    for name in ("t0.raw", "t0.dat"):
        got = read_events(tmp_path / name)
        assert same(got, read_events(tmp_path / name)) and np.array_equal(got["t"], arr["t"])


def test_npy_polarity_minus_one_is_off(tmp_path, rec):
    _, ev = rec
    arr = np.zeros(len(ev), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1")])
    arr["t"], arr["x"], arr["y"], arr["p"] = ev["t"], ev["x"], ev["y"], np.where(ev["p"], 1, -1)
    np.save(tmp_path / "pm.npy", arr)
    assert np.array_equal(read_events(tmp_path / "pm.npy")["p"], ev["p"])


def test_no_geometry_names_the_file_and_sensor_fixes_it(tmp_path, rec):
    _, ev = rec
    from akida_rt.stream.evt2 import encode_evt2

    (tmp_path / "nogeo.raw").write_bytes(b"% evt 2.0\n% end\n" + encode_evt2(ev).tobytes())
    np.save(tmp_path / "empty.npy", ev[:0])
    for name in ("nogeo.raw", "empty.npy"):
        one_line_failure(stream(tmp_path / name), f"{name}: ", "--sensor W,H")
    ok = stream(tmp_path / "nogeo.raw", "--sensor", "34,34", "--events-per-frame", "2000")
    assert ok.returncode == 0 and ok.stdout.count('"seq"') == len(ev) // 2000
    assert stream(tmp_path / "empty.npy", "--sensor", "34,34").returncode == 0


def test_content_is_sniffed_whatever_the_name(tmp_path, rec):
    _, ev = rec
    write_evt3(tmp_path / "rec.dat", ev, 34, 34)  # an EVT3 RAW named .dat
    (tmp_path / "bare.evt3").write_bytes(encode_evt3(ev).tobytes())  # no header at all
    assert same(read_events(tmp_path / "rec.dat"), ev)
    assert same(read_events(tmp_path / "bare.evt3", sensor=(34, 34)), ev)
    out = stream(tmp_path / "rec.dat", "--events-per-frame", "2000")
    assert out.returncode == 0 and out.stdout.count('"seq"') == len(ev) // 2000
    np.save(tmp_path / "plain.npy", np.arange(7))
    one_line_failure(stream(tmp_path / "plain.npy"), "plain.npy: ", "(N, H, W[, C])")


def test_realtime_paces_a_file_by_its_timestamps(tmp_path, rec):
    _, ev = rec
    part = ev[ev["t"] < 620_000]
    write_evt3(tmp_path / "short.raw", part, 34, 34)
    args = ("--window-us", "100000", "--sensor", "34,34")
    start = time.monotonic()
    paced = stream(tmp_path / "short.raw", "--realtime", *args)
    elapsed = time.monotonic() - start
    ends = [int(line.split('"t_us": ')[1].split(",")[0]) for line in paced.stdout.splitlines()[:-1]]
    assert paced.returncode == 0 and len(ends) == 7  # six windows and the last partial one
    # the last frame leaves the source (ends[-1] - ends[0]) us of event time after the first
    assert elapsed >= (ends[-1] - ends[0]) / 1e6 == 0.6


def test_representation_filters_and_crop_options_through_the_cli(tmp_path, rec):
    _, ev = rec
    write_evt3(tmp_path / "rec.raw", ev, 34, 34)
    common = ("--window-us", "100000", "--stride-us", "50000")
    ok = stream(tmp_path / "rec.raw", *common, "--representation", "surface", "--gain", "255",
                "--denoise-us", "20000", "--refractory-us", "500", "--hot-pixel-hz", "2000",
                "--crop", "2,2,30,30")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    span = int(ev["t"][-1] - ev["t"][0])
    assert ok.stdout.count('"seq"') >= (span - 100_000) // 50_000
    bad = stream(tmp_path / "rec.raw", *common, "--representation", "voxel", "--bins", "3")
    one_line_failure(bad, "the model takes 1 channels", "voxel", "--bins")


def test_an_lz4_bomb_packet_is_refused_not_inflated(tmp_path, rec):
    """A crafted packet of ~80 KiB that LZ4 inflates to 256 MiB: refused in one line naming
    its offset (decompression stops at 64 MiB), and the stream never holds the bomb."""
    lz4_frame = pytest.importorskip("lz4.frame")
    from akida_rt.stream.aedat4_file import Aedat4File

    d, _ = rec
    data = (d / "full.aedat4").read_bytes()
    with Aedat4File(d / "full.aedat4") as f:
        start, sid = f.data_start, f.stream_id
    bomb = lz4_frame.compress(bytes(256 << 20), store_size=False)  # decoded to find out
    assert len(bomb) < 2 << 20
    packet = sid.to_bytes(4, "little", signed=True) + len(bomb).to_bytes(4, "little") + bomb
    (tmp_path / "bomb.aedat4").write_bytes(data[:start] + packet)
    out = stream(tmp_path / "bomb.aedat4")
    one_line_failure(out, f"bomb.aedat4: at {start}:", "more than 64 MiB")
