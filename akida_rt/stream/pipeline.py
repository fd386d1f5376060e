"""The stream: a source read on its own thread into a bounded queue, a bounded window of
frames in flight on a runner (akidad or embedded), results with each frame's sequence
number and timestamp. A sync iterator and an asyncio iterator share the one loop.

When the device falls behind the source, the queue's policy decides: BLOCK (the source
waits, no frame is lost), DROP_OLDEST (the oldest queued frame makes room: latency stays
bounded) or DROP_NEWEST (the new frame is dropped).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from akida_rt.errors import RemoteError, StreamError
from akida_rt.stream.events import OnError
from akida_rt.stream.preprocess import Preprocess
from akida_rt.stream.runners import Runner
from akida_rt.stream.sources import SourceFrame

LATENCY_WINDOW = 1 << 16  # latencies StreamStats keeps for its percentiles

log = logging.getLogger(__name__)


class Policy(enum.Enum):
    BLOCK = "block"
    DROP_OLDEST = "drop-oldest"
    DROP_NEWEST = "drop-newest"


@dataclass(frozen=True)
class Result:
    """One frame's answer."""

    seq: int  # the frame's number in the source (dropped frames leave gaps)
    t_us: int  # the frame's timestamp (see sources.SourceFrame)
    y: np.ndarray  # the model's output for the frame (predict: floats, forward: integers)
    latency_s: float  # from the frame leaving the source to its answer
    device: str
    where: str  # the frame's origin
    classes: int = 0  # a learning program's classes (its neurons split into equal groups)

    @property
    def label(self) -> int:
        """The class decision: argmax of the output; for a learning program with classes,
        the class of the winning neuron (not the neuron's index)."""
        neuron = int(np.argmax(self.y))
        if self.classes:
            return neuron // max(1, self.y.size // self.classes)
        return neuron


@dataclass
class StreamStats:
    frames_in: int = 0  # frames the source produced
    done: int = 0
    dropped: int = 0  # by the queue's policy
    failed: int = 0  # answered with an error and skipped
    # the latest LATENCY_WINDOW latencies (a day at 1 kHz would otherwise be 2.6 GiB)
    latencies: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW)
    )
    started: float = field(default_factory=time.monotonic)

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1e3) if self.latencies else 0.0


@dataclass(frozen=True)
class _Queued:
    seq: int
    frame: SourceFrame
    x: np.ndarray
    born: float  # when the source produced it


_END = object()


class FrameQueue:
    """A bounded queue between the source thread and the stream, with a drop policy."""

    def __init__(self, size: int, policy: Policy, stats: StreamStats) -> None:
        self.size, self.policy, self.stats = size, policy, stats
        self._items: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False

    def put(self, item: object, final: bool = False) -> bool:
        """Queue `item`; False once the stream is closed. `final` items (end, errors)
        always get in."""
        with self._cond:
            while (not final and not self.closed and self.policy is Policy.BLOCK
                   and len(self._items) >= self.size):  # fmt: skip
                self._cond.wait()
            if self.closed:
                return False
            if not final and len(self._items) >= self.size:
                if self.policy is Policy.DROP_NEWEST:
                    self.stats.dropped += 1
                    return True
                self._items.popleft()
                self.stats.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None) -> object | None:
        """The next item, waiting up to `timeout` (None: forever); None if none came, the
        end once closed."""
        with self._cond:
            if not self._items and timeout != 0:
                self._cond.wait_for(lambda: bool(self._items) or self.closed, timeout)
            if not self._items:
                return _END if self.closed else None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._items.clear()
            self._cond.notify_all()


class Stream:
    """Frames from `source` through `runner`, `window` of them in flight at most.

    Args:
        runner: where frames run (runners.connect()).
        source: SourceFrames (sources.open_source()), read on a thread of their own.
        preprocess: what each frame goes through first (default: to the runner's input).
        window: frames in flight on the runner.
        queue: frames waiting between the source and the window.
        policy: what a full queue does with a new frame.
        on_error: RAISE stops the stream at a frame answered with an error (after the
            frames before it); SKIP logs it, counts it in `stats.failed` and goes on.
            Source errors (a file that breaks, a camera that disappears) always stop
            the stream, after the results of the frames before them.
    """

    def __init__(
        self,
        runner: Runner,
        source: Iterable[SourceFrame],
        *,
        preprocess: Preprocess | None = None,
        window: int = 4,
        queue: int = 2,
        policy: Policy | str = Policy.BLOCK,
        on_error: OnError | str = OnError.RAISE,
    ) -> None:
        if window < 1 or queue < 1:
            raise StreamError("window and queue must each be at least 1")
        self.runner, self.source = runner, source
        self.preprocess = preprocess or Preprocess(runner.input_shape, bits=runner.input_bits)
        self.window, self.on_error = window, OnError(on_error)
        self.stats = StreamStats()
        self._queue = FrameQueue(queue, Policy(policy), self.stats)
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- source side
    def _produce(self) -> None:
        try:
            for seq, frame in enumerate(self.source):
                x = self.preprocess(frame.data)
                self.stats.frames_in += 1
                if not self._queue.put(_Queued(seq, frame, x, time.monotonic())):
                    return
            self._queue.put(_END, final=True)
        except Exception as exc:  # handed to the consumer, which raises it in order
            self._queue.put(exc, final=True)

    # ------------------------------------------------------------------ the loop
    def __iter__(self) -> Iterator[Result]:
        self._thread = threading.Thread(target=self._produce, name="akida-stream-source",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        in_flight: dict[int, _Queued] = {}
        done: dict[int, Result | None] = {}  # answered, waiting for older frames
        ended: BaseException | bool | None = False
        try:
            while True:
                while ended is False and len(in_flight) < self.window:
                    item = self._queue.get(None if not in_flight else 0)
                    if item is None:
                        break
                    if item is _END or isinstance(item, BaseException):
                        ended = item if isinstance(item, BaseException) else None
                        break
                    assert isinstance(item, _Queued)
                    in_flight[self.runner.submit(item.x[None])] = item
                if not in_flight:
                    if isinstance(ended, BaseException):
                        raise ended
                    if ended is None:
                        return
                    continue
                room = len(in_flight) < self.window and ended is False
                for answer in self.runner.collect(0.002 if room else None):
                    sent = in_flight.pop(answer.handle, None)
                    if sent is None:  # left by an earlier stream on the same client
                        continue
                    done[sent.seq] = self._result(sent, answer.y, answer.error, answer.device)
                # in frame order: answers can overtake (frames sent again after a reconnect)
                oldest = min((i.seq for i in in_flight.values()), default=None)
                for seq in sorted(done):
                    if oldest is not None and seq > oldest:
                        break
                    if (result := done.pop(seq)) is not None:
                        yield result
        finally:
            self.close()

    def _result(
        self, item: _Queued, y: np.ndarray | None, error: RemoteError | None, device: str
    ) -> Result | None:
        if error is not None or y is None:
            message = f"{item.frame.where} (frame {item.seq}): {error}"
            if self.on_error is OnError.RAISE:
                raise StreamError(message)
            log.warning("%s (skipped)", message)
            self.stats.failed += 1
            return None
        latency = time.monotonic() - item.born
        self.stats.done += 1
        self.stats.latencies.append(latency)
        classes = int(getattr(self.runner, "num_classes", 0) or 0)
        return Result(item.seq, item.frame.t_us, y[0], latency, device, item.frame.where, classes)

    async def __aiter__(self) -> AsyncIterator[Result]:
        """The same loop on a worker thread; at most `window` results wait for the
        asyncio consumer (a slow consumer holds the loop back, which holds the source)."""
        loop = asyncio.get_running_loop()
        results: asyncio.Queue[object] = asyncio.Queue(self.window)

        def pump() -> None:
            def hand(item: object) -> None:
                asyncio.run_coroutine_threadsafe(results.put(item), loop).result()

            try:
                for result in self:
                    hand(result)
                hand(_END)
            except BaseException as exc:
                hand(exc)

        worker = loop.run_in_executor(None, pump)
        try:
            while (item := await results.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Result)
                yield item
        finally:
            self._queue.close()
            while not worker.done():  # let the pump finish its last hand-off
                try:
                    results.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.001)
            await worker

    def close(self) -> None:
        """Stop the source; the runner stays open (close it yourself)."""
        self._queue.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
