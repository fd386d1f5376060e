"""Busy polling, akidad's opt-in low-latency mode (`busy_poll_us`, daemon/busy_poll.py):
the LoopSelector in-process, then a real akidad started with --busy-poll-us serving a
polling Client, going quiet when idle, and refusing out-of-range settings at startup.
"""

from __future__ import annotations

import logging
import selectors
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from akida_rt.daemon.busy_poll import LoopSelector

from akida_rt import zoo
from akida_rt.client import Client
from akida_rt.layers import FullyConnected, InputConv2D
from akida_rt.model import Model
from tests.daemon_harness import Akidad, random_input, tiny_model

POLL_US = 2000


# ------------------------------------------------------------------ LoopSelector
@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_data_arriving_while_polling_is_returned_without_sleeping(pair) -> None:
    a, b = pair
    with LoopSelector(busy_s=0.05) as sel:
        key = sel.register(a, 1)  # EVENT_READ
        for _ in range(3):  # a writer delayed past the 50 ms window is served by blocking
            writer = threading.Timer(0.01, b.send, (b"x",))
            writer.start()
            start = time.monotonic()
            ready = sel.select(timeout=1.0)
            elapsed = time.monotonic() - start
            writer.join()
            assert [k for k, _ in ready] == [key] and sel.last_ready == 1
            assert elapsed < 0.5
            a.recv(16)
            if sel.polled:
                break
        assert sel.polled >= 1


def test_nothing_to_read_returns_after_the_loop_timeout_not_the_poll_window(pair) -> None:
    a, _b = pair
    with LoopSelector(busy_s=0.05) as sel:
        sel.register(a, 1)
        took = []
        for _ in range(3):
            start = time.monotonic()
            assert sel.select(timeout=0.02) == []
            took.append(time.monotonic() - start)
            assert sel.last_ready == 0
        assert min(took) >= 0.0199
        assert min(took) < 0.045  # polling is bounded by the timeout (0.05+ if it were not)
        assert sel.polled == 0
        start = time.monotonic()
        assert sel.select(timeout=0) == []  # a zero timeout never polls
        assert time.monotonic() - start < 0.01


def test_last_ready_counts_descriptors_and_no_polling_when_off(pair) -> None:
    a, b = pair
    c, d = socket.socketpair()
    with c, d, LoopSelector() as sel:
        sel.register(a, 1)
        sel.register(c, 1)
        b.send(b"x")
        assert len(sel.select(timeout=1.0)) == 1 and sel.last_ready == 1
        d.send(b"y")
        assert len(sel.select(timeout=1.0)) == 2 and sel.last_ready == 2
        assert sel.polled == 0  # busy_s=0: a plain selector


# --------------------------------------------------------------------- live daemon
@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with Akidad(tmp_path_factory.mktemp("akidad"), "--busy-poll-us", str(POLL_US)) as d:
        yield d


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def test_direct_readers_are_called_from_select_and_hidden_from_asyncio(pair, caplog) -> None:
    a, b = pair
    selector = LoopSelector()
    calls: list[bytes] = []
    selector.register(a.fileno(), selectors.EVENT_READ | selectors.EVENT_WRITE, "handles")
    selector.direct[a.fileno()] = lambda: calls.append(a.recv(100))
    b.send(b"ping")
    ready = selector.select(1.0)
    assert calls == [b"ping"]
    # The read event was served; the write event (a is writable) still goes to asyncio.
    assert [(key.fd, events) for key, events in ready] == [(a.fileno(), selectors.EVENT_WRITE)]
    assert selector.last_ready == 1

    def broken() -> None:
        raise RuntimeError("reader bug")

    selector.direct[a.fileno()] = broken
    b.send(b"again")
    with caplog.at_level(logging.ERROR):
        selector.select(1.0)  # the exception is logged, not raised into the event loop
    assert "reader bug" in caplog.text
    selector.close()


def test_polling_client_is_bit_exact_and_the_daemon_idles_after(daemon) -> None:
    model = tiny_model()
    xs = [random_input(model, 1 + i % 3, i) for i in range(50)]
    with Client(daemon.socket, busy_poll_us=POLL_US) as client:
        remote = client.load(model)
        for x in xs:
            y = remote.forward(x)
            expected = model.forward(x)
            assert y.dtype == expected.dtype and np.array_equal(y, expected)
        assert all(
            np.array_equal(y, model.forward(x))
            for x, y in zip(xs, remote.forward_many(xs), strict=True)
        )
    assert daemon.proc is not None
    proc = psutil.Process(daemon.proc.pid)
    time.sleep(0.3)  # the hang-up and its clean-up
    before, start = _cpu_s(proc), time.monotonic()
    time.sleep(1.0)
    used, wall = _cpu_s(proc) - before, time.monotonic() - start
    # A daemon that kept polling would burn about a core (~1 s here); an idle one wakes
    # only for its device rescans (every 2 s) and polls 2 ms after each.
    assert used < 0.25 * wall, f"idle akidad used {used:.3f} s of CPU in {wall:.2f} s"


def _wide_model() -> Model:
    """Inputs of 58,800 bytes: inline (under the 64 KiB memfd threshold) yet big enough
    that a few of them fill the socket buffer."""
    model = Model(name="wide")
    model.add(
        InputConv2D("conv_0", (140, 140, 3), 1, 3, stride=4, weight_bits=8, activation_bits=4)
    )
    model.add(FullyConnected("dense", 3, weight_bits=4, activation=False))
    return zoo.randomize(model, 1)


@pytest.mark.parametrize(
    "busy_poll_us",
    [
        0,
        1_000_000,
    ],
)
def test_pipelined_sends_wait_for_a_daemon_that_is_not_reading(daemon, busy_poll_us) -> None:
    """forward_many of inputs larger than the socket buffer while akidad is stopped
    (SIGSTOP): sending must wait, and every answer come once it runs again."""
    wide, tiny = _wide_model(), tiny_model()
    xs = [random_input(wide, 1, 100 + i) for i in range(20)]  # 1.2 MB in all
    with Client(daemon.socket, busy_poll_us=busy_poll_us) as client:
        remote, small = client.load(wide), client.load(tiny)
        for i in range(3):  # answered within the poll window, when polling
            small.forward(random_input(tiny, 1, i))
        outcome: dict[str, object] = {}

        def send_all() -> None:
            try:
                outcome["ys"] = remote.forward_many(xs)
            except Exception as exc:
                outcome["error"] = exc

        daemon.signal(signal.SIGSTOP)
        try:
            thread = threading.Thread(target=send_all)
            thread.start()
            time.sleep(0.3)
            waited = thread.is_alive()  # still sending: the socket buffer is full
        finally:
            daemon.signal(signal.SIGCONT)
        thread.join(30)
        assert not thread.is_alive()
        assert "error" not in outcome, repr(outcome.get("error"))
        assert waited
        ys = outcome["ys"]
        assert isinstance(ys, list)
        assert all(np.array_equal(y, wide.forward(x)) for x, y in zip(xs, ys, strict=True))


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "toml, words",
    [
        ("busy_poll_us = -1\n", "busy_poll_us must be within 0..1000000"),
        ("busy_poll_us = 1000001\n", "busy_poll_us must be within 0..1000000"),
        ("[akidad]\nbusy_poll_us = 2.5\n", "'busy_poll_us' must be int, got 2.5"),
    ],
)
def test_busy_poll_us_out_of_range_in_the_config_file_is_refused(tmp_path: Path, toml, words):
    config = tmp_path / "akidad.toml"
    config.write_text(toml)
    d = Akidad(tmp_path, "--config", str(config))
    try:
        status = d.start_outcome()
    finally:
        d.kill9()  # if it started after all
    assert status == 2, f"akidad started with {toml!r}:\n{d.log()}"
    assert f"akidad: config {config}: {words}" in d.log()
    assert not d.socket.exists()


@pytest.mark.parametrize("value", ["-1", "2000000"])
def test_busy_poll_us_out_of_range_on_the_command_line_is_refused(tmp_path: Path, value):
    d = Akidad(tmp_path, f"--busy-poll-us={value}")
    try:
        status = d.start_outcome()
    finally:
        d.kill9()  # if it started after all
    assert status == 2, f"akidad started with --busy-poll-us={value}"
    assert "busy_poll_us must be within 0..1000000" in d.log() or "busy-poll-us" in d.log()
