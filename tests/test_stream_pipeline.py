"""The stream through a real akidad (its socket, its process) and embedded: identical
results, a bounded window, the three back-pressure policies, shared memory for big
frames, the asyncio API, broken sources and a daemon restart mid-stream."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import numpy as np
import pytest

from akida_rt.client.client import Client
from akida_rt.data import sample_program
from akida_rt.errors import StreamError
from akida_rt.format.layer_kinds import FullyConnected, InputConv2D
from akida_rt.format.layer_params import Pooling
from akida_rt.model import zoo
from akida_rt.model.model import Model
from akida_rt.stream.events import make_events
from akida_rt.stream.evt2 import write_evt2
from akida_rt.stream.pipeline import Policy, Stream
from akida_rt.stream.runners import DaemonRunner, EmbeddedRunner, connect
from akida_rt.stream.sources import array_frames, open_source
from tests.daemon_harness import Akidad, open_memfds, random_input, tiny_model


@pytest.fixture(scope="module")
def akidad(tmp_path_factory):
    with Akidad(tmp_path_factory.mktemp("stream")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def digits():
    model = Model(sample_program())
    return model, random_input(model, 40, seed=3)


def test_daemon_and_embedded_give_identical_results(akidad, digits):
    model, frames = digits
    remote = connect(sample_program(), socket=akidad.socket)
    local = connect(sample_program(), embedded=True)
    assert isinstance(remote, DaemonRunner) and isinstance(local, EmbeddedRunner)
    assert "simulated AKD1000, in this process" in local.where
    try:
        a = list(Stream(remote, array_frames(frames), window=6))
        b = list(Stream(local, array_frames(frames)))
    finally:
        remote.close()
        local.close()
    assert [r.seq for r in a] == list(range(40)) == [r.seq for r in b]
    assert all(np.array_equal(x.y, y.y) for x, y in zip(a, b, strict=True))
    assert np.array_equal(
        np.stack([r.y for r in a]).reshape(40, -1), model.predict(frames).reshape(40, -1)
    )
    assert a[0].device == "sim://akd1000/0" and all(r.latency_s > 0 for r in a)
    assert [r.t_us for r in a] == sorted(r.t_us for r in a)


def test_no_daemon_runs_embedded_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    runner = connect(sample_program(), socket=tmp_path / "none.sock")
    assert isinstance(runner, EmbeddedRunner)
    assert "cannot reach akidad" in caplog.text and "embedded: sim://akd1000/0" in caplog.text
    runner.close()


class Counting:
    """A runner that records how many frames it ever had in flight."""

    def __init__(self, runner):
        self.runner, self.in_flight, self.most = runner, 0, 0
        self.where, self.input_shape = runner.where, runner.input_shape
        self.input_bits = runner.input_bits

    def submit(self, x):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        return self.runner.submit(x)

    def collect(self, wait):
        got = self.runner.collect(wait)
        self.in_flight -= len(got)
        return got


def slow_consumer(stream, pause: float):
    out = []
    for result in stream:
        out.append(result)
        time.sleep(pause)
    return out


def test_block_loses_nothing_and_the_window_is_bounded(akidad, digits):
    _, frames = digits
    runner = connect(sample_program(), socket=akidad.socket)
    counting = Counting(runner)
    try:
        stream = Stream(counting, array_frames(frames), window=3, queue=2, policy="block")
        got = slow_consumer(stream, 0.002)
    finally:
        runner.close()
    assert [r.seq for r in got] == list(range(40))
    assert stream.stats.dropped == 0 and counting.most == 3


@pytest.mark.parametrize("policy", [Policy.DROP_OLDEST, Policy.DROP_NEWEST])
def test_drop_policies_keep_up_with_a_fast_source(akidad, policy):
    model = tiny_model()
    frames = random_input(model, 400, seed=1)
    runner = connect(model, socket=akidad.socket)
    try:
        stream = Stream(runner, array_frames(frames), window=1, queue=1, policy=policy)
        got = slow_consumer(stream, 0.003)
    finally:
        runner.close()
    seqs = [r.seq for r in got]
    assert seqs == sorted(seqs) and stream.stats.dropped > 0
    assert len(got) + stream.stats.dropped == 400
    expect = model.predict(frames[seqs]).reshape(len(seqs), -1)
    assert np.array_equal(np.stack([r.y for r in got]).reshape(len(seqs), -1), expect)
    if policy is Policy.DROP_OLDEST:
        assert seqs[-1] == 399  # the newest frame always gets through


def big_model() -> Model:
    model = Model(name="big")
    model.add(InputConv2D("conv", (224, 224, 3), 2, 3, stride=2, pooling=Pooling.Max, pool_size=4,
                          pool_stride=4, weight_bits=8, activation_bits=4))  # fmt: skip
    model.add(FullyConnected("fc", 3, weight_bits=4, activation=False))
    return zoo.randomize(model, 5, v1=True)


def test_frames_of_64_kib_and_more_travel_in_shared_memory(akidad):
    model = big_model()
    frames = random_input(model, 3, seed=2)
    assert frames[0].nbytes >= 64 << 10
    before = open_memfds(os.getpid())
    want = model.forward(frames)
    with Client(akidad.socket) as client:
        remote = client.load(model)
        held = []
        for _ in range(2):  # the second round reuses the first round's memfds
            handles = [client.submit(remote, f[None]) for f in frames]
            held.append(open_memfds(os.getpid()))
            got = {}
            while len(got) < 3:
                got.update({c.handle: c.y for c in client.collect()})
            assert all(np.array_equal(got[h][0], want[i]) for i, h in enumerate(handles))
        assert held[0] > before and held[1] == held[0]  # sealed memfds carry the frames
    assert open_memfds(os.getpid()) == before  # released when the client closes


def test_asyncio_api(akidad, digits):
    _, frames = digits
    runner = connect(sample_program(), socket=akidad.socket)

    async def consume():
        out = []
        async for result in Stream(runner, array_frames(frames[:10]), window=4):
            out.append(result)
            await asyncio.sleep(0)
        return out

    try:
        got = asyncio.run(consume())
        sync = list(Stream(runner, array_frames(frames[:10])))
    finally:
        runner.close()
    assert [r.seq for r in got] == list(range(10))
    assert all(np.array_equal(a.y, b.y) for a, b in zip(got, sync, strict=True))


def test_a_broken_event_file_stops_the_stream_and_leaves_the_daemon_alone(akidad, tmp_path):
    model = Model(sample_program())
    t = np.arange(400_000)  # more than one read: frames go out before the bad word is read
    ev = make_events(t, t % 32, (t // 32) % 32, t % 2)
    path = tmp_path / "broken.raw"
    write_evt2(path, ev, 32, 32)
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4 : len(data) * 3 // 4 + 4] = b"\x00\x00\x00\x30"  # unknown word
    path.write_bytes(bytes(data))
    runner = connect(sample_program(), socket=akidad.socket)
    got = []
    try:
        with pytest.raises(StreamError, match=r"broken.raw: at \d+: unknown EVT2 word"):
            got.extend(Stream(runner, open_source(path, (32, 32, 1), events_per_frame=3000)))
    finally:
        runner.close()
    assert [r.seq for r in got] == list(range(len(got))) and len(got) >= 80  # the frames before
    x = random_input(model, 2, seed=9)
    with Client(akidad.socket) as client:
        assert np.array_equal(client.load(sample_program()).forward(x), model.forward(x))
    assert akidad.proc.poll() is None


def test_frames_the_daemon_refuses_are_named_or_skipped(akidad, digits):
    _, frames = digits
    mixed = [frames[0], np.zeros((31, 32, 1), np.uint8), frames[1]]  # one of the wrong size
    runner = connect(sample_program(), socket=akidad.socket)
    try:
        raw = Stream(runner, array_frames(mixed), preprocess=lambda x: x)  # type: ignore[arg-type]
        with pytest.raises(StreamError, match=r"array frame 1 \(frame 1\): BAD_INPUT"):
            list(raw)
        skipping = Stream(runner, array_frames(mixed), preprocess=lambda x: x, on_error="skip")  # type: ignore[arg-type]
        assert [r.seq for r in skipping] == [0, 2] and skipping.stats.failed == 1
    finally:
        runner.close()


def test_the_stream_survives_a_daemon_restart(tmp_path, digits):
    model, frames = digits
    daemon = Akidad(tmp_path).start()
    try:
        runner = connect(sample_program(), socket=daemon.socket)
        got = []
        for result in Stream(runner, array_frames(frames), window=4):
            got.append(result)
            if len(got) == 10:
                daemon.kill9()
                daemon.start()
        runner.close()
    finally:
        daemon.stop()
    assert [r.seq for r in got] == list(range(40))
    assert np.array_equal(
        np.stack([r.y for r in got]).reshape(40, -1), model.predict(frames).reshape(40, -1)
    )
