"""Hostile event files (issue 30, finding 9): a plain `np.save` of more than one chunk of
events, a recording whose time jumps, an unbounded latency history and a sparse file that
yields no events for minutes. Each runs through the real reader, framer or CLI."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from akida_rt.data import sample_program
from akida_rt.errors import StreamError
from akida_rt.stream import events as events_mod
from akida_rt.stream.events import DEFAULT_CHUNK, EVENT_DTYPE, make_events
from akida_rt.stream.evt3 import open_evt3, write_evt3
from akida_rt.stream.framing import MAX_RUN_BYTES, EventFramer, Framing
from akida_rt.stream.pipeline import LATENCY_WINDOW, StreamStats
from akida_rt.stream.prophesee import raw_header
from tests.conftest import run_akida

DVS_PROGRAM = str(sample_program().with_name("dvs_digits_cnn.akp"))


def test_a_plain_np_save_of_more_than_one_chunk_streams(tmp_path) -> None:
    n = DEFAULT_CHUNK + 40_000
    ev = np.zeros(n, EVENT_DTYPE)  # np.save keeps the fields but not the aligned flag
    ev["t"], ev["x"], ev["y"], ev["p"] = np.arange(n), np.arange(n) % 34, 7, 1
    np.save(tmp_path / "ev.npy", ev)
    out = run_akida("stream", "-m", DVS_PROGRAM, "--source",
                    str(tmp_path / "ev.npy"), "--events-per-frame", "20000", "--embedded",
                    "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"summary"' in out.stdout.splitlines()[-1]
    assert len(out.stdout.splitlines()) - 1 == n // 20000


def test_a_time_jump_cannot_allocate_more_than_the_run_cap(tmp_path) -> None:
    """99,000 empty windows of 128x128x2 frames would be 3.2 GB; the cap scales with the
    frame size, and the CLI says so in one line."""
    framer = EventFramer(Framing(shape=(128, 128, 2), sensor=(128, 128), window_us=1000))
    assert framer.max_run * framer.pixels <= MAX_RUN_BYTES
    t = np.array([0, 99_000_000], np.int64)
    with pytest.raises(StreamError, match="windows in one step"):
        framer.push(make_events(t, np.array([1, 1]), np.array([1, 1]), np.array([1, 1])))
    write_evt3(tmp_path / "jump.raw", make_events(t, t * 0 + 5, t * 0 + 5, t * 0 + 1), 34, 34)
    out = run_akida("stream", "-m", DVS_PROGRAM, "--source",
                    str(tmp_path / "jump.raw"), "--window-us", "1000", "--frames", "20",
                    "--embedded")  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "windows in one step" in out.stderr.strip().splitlines()[-1]


def test_the_latency_history_is_bounded() -> None:
    stats = StreamStats()
    stats.latencies.extend(np.linspace(0, 1, 3 * LATENCY_WINDOW))
    assert len(stats.latencies) == LATENCY_WINDOW
    assert stats.latency_ms(0) > 600  # the latest ones


def test_a_sparse_file_says_how_far_its_scan_got(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sparse.raw"
    path.write_bytes(raw_header(34, 34, "EVT3"))
    os.truncate(path, 16 << 20)  # 16 MiB of zero words: no events at all
    monkeypatch.setattr(events_mod, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.WARNING), open_evt3(path, on_error="skip") as reader:
        assert list(reader.chunks()) == []
    said = [r.getMessage() for r in caplog.records if "MiB read" in r.getMessage()]
    assert said and said[-1].startswith(f"{path}: 16 of 16 MiB read, 0 events")
