"""Where a stream's frames run: through akidad (the client's submit/collect, so a window
of frames is in flight and the daemon batches them) or embedded in this process.

`connect()` picks akidad when one is reachable; with none it runs the model in-process
on the first device `akida_rt.devices()` finds (a board, else the simulated AKD1000)
and says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from akida_rt.client.client import Client, Collected, RemoteModel
from akida_rt.errors import AkidaError, DaemonError, RemoteError
from akida_rt.model.model import Model

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Runs one frame at a time, several in flight."""

    where: str  # what runs the frames, for the user
    input_shape: tuple[int, int, int]
    input_bits: int

    def submit(self, x: np.ndarray) -> int:
        """Send a batch of one frame (1, H, W, C); returns its handle."""
        ...

    def collect(self, wait: float | None) -> list[Collected]:
        """Answers that arrived (waiting up to `wait` s for one; None: until one comes)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Power and energy counters of the device that ran the frames, if known."""
        ...

    def close(self) -> None: ...


def learned_classes(model: Model) -> int:
    """A learning program's number of classes (0: argmax is the class, as for any model)."""
    cfg = model.learning
    return int(cfg.num_classes) if cfg is not None and cfg.enabled else 0


class DaemonRunner:
    """Frames through akidad, as tensor frames (memfds from 64 KiB) on the client's one
    request path."""

    def __init__(self, client: Client, remote: RemoteModel, model: Model, predict: bool) -> None:
        self.client, self.remote, self.predict = client, remote, predict
        self.input_shape, self.input_bits = model.input_shape, model.input_bits
        self.num_classes = learned_classes(model)
        self.where = f"akidad at {client.path}"

    def submit(self, x: np.ndarray) -> int:
        return self.client.submit(self.remote, x, predict=self.predict)

    def collect(self, wait: float | None) -> list[Collected]:
        return self.client.collect(wait)

    def stats(self) -> dict[str, Any]:
        """The daemon's entry for the device that ran the last frame."""
        try:
            devices = self.client.stats().get("devices", [])
        except AkidaError:
            return {}
        mine = [d for d in devices if d.get("id") == self.remote.last_device]
        return dict((mine or devices or [{}])[0])

    def close(self) -> None:
        self.client.close()


class EmbeddedRunner:
    """Frames through a Model in this process: each submit runs at once (the window
    changes nothing here), so its answers are ready for the next collect."""

    def __init__(self, model: Model, predict: bool, where: str) -> None:
        self.model, self.predict, self.where = model, predict, where
        self.num_classes = learned_classes(model)
        self.input_shape, self.input_bits = model.input_shape, model.input_bits
        self._done: list[Collected] = []
        self._next = 0

    def submit(self, x: np.ndarray) -> int:
        self._next += 1
        try:
            y = self.model.predict(x) if self.predict else self.model.forward(x)
        except AkidaError as exc:
            error = RemoteError(exc.kind, str(exc))
            self._done.append(Collected(self._next, None, error, "", 0.0))
        else:
            self._done.append(Collected(self._next, y, None, self.where, 0.0))
        return self._next

    def collect(self, wait: float | None) -> list[Collected]:
        done, self._done = self._done, []
        return done

    def stats(self) -> dict[str, Any]:
        return self.model.statistics.as_dict()

    def close(self) -> None:
        self.model.map(None)


def connect(
    program: str | os.PathLike[str] | Model,
    *,
    socket: str | os.PathLike[str] | None = None,
    embedded: bool | None = None,
    device: str = "",
    predict: bool = True,
    name: str = "stream",
    retry_s: float = 10.0,
) -> Runner:
    """A runner for `program`: through akidad at `socket` (default: the usual socket) when
    one answers, else embedded. `embedded=True` never tries the daemon, `False` requires it.
    Once connected, the client reconnects for up to `retry_s` when akidad restarts (its
    one retry policy: in-flight frames are sent again).

    Raises:
        DaemonError: `embedded=False` and no daemon answers.
    """
    model = program if isinstance(program, Model) else Model(program)
    if embedded is not True:
        try:
            client = Client(socket, name=name, retry_s=0.0 if embedded is None else 5.0)
        except DaemonError as exc:
            if embedded is False:
                raise
            reason = str(exc).split(";")[0]
        else:
            client.retry_s = retry_s  # the probe did not wait; the stream rides restarts out
            source = program if isinstance(program, Model) else Path(program).read_bytes()
            try:
                remote = client.load(source, device=device)
            except BaseException:
                client.close()
                raise
            return DaemonRunner(client, remote, model, predict)
    else:
        reason = "embedded requested"
    import akida_rt

    dev = akida_rt.devices(daemon=False)[0]
    model.map(dev)
    kind = "simulated AKD1000" if dev.simulated else dev.kind
    where = f"embedded: {dev.id} ({kind}, in this process)"
    log.info("%s; %s", reason, where)
    return EmbeddedRunner(model, predict, where)
