"""A program loaded in akidad, as the client sees it: forward/predict like `Model`, and
the learning operations of its session (each a daemon request)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from akida_rt.wire.proto import daemon_pb2 as dpb


class Requests(Protocol):
    """The requests a RemoteModel makes through its client (akida_rt.client.client)."""

    def _infer(
        self, model: RemoteModel, xs: list[np.ndarray], predict: bool, timeout: float | None
    ) -> list[Any]: ...

    def _unload(self, model: RemoteModel) -> None: ...

    def _learn(
        self, model: RemoteModel, x: np.ndarray, labels: Any, timeout: float | None
    ) -> np.ndarray: ...

    def _learn_state(
        self, model: RemoteModel, op: str, data: bytes, num_classes: int = 0
    ) -> tuple[dict[str, Any], bytes]: ...

    def _reload(self, model: RemoteModel, program: bytes) -> None: ...


class RemoteModel:
    """A program loaded in the daemon; forward/predict like `Model`."""

    def __init__(self, client: Requests, load: dpb.Request) -> None:
        self._client = client
        self._load = load  # sent again after a daemon restart
        self.last_device = ""
        self.last_run_s = 0.0  # device time of the last answer, as the daemon measured it

    def _update(self, loaded: dpb.Loaded) -> None:
        self.session, self.name, self.program_hash = (
            loaded.session,
            loaded.name,
            loaded.program_hash,
        )
        self.input_shape, self.output_shape = tuple(loaded.input_shape), tuple(loaded.output_shape)
        self.output_size = math.prod(self.output_shape)  # values per output frame
        self.sequences = loaded.sequences

    def forward(self, x: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Integer outputs of `x` (uint8 NHWC), computed on a daemon device."""
        result: np.ndarray = self._client._infer(self, [x], False, timeout)[0]
        return result

    def predict(self, x: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Float outputs (forward times output_scale plus output_offset)."""
        result: np.ndarray = self._client._infer(self, [x], True, timeout)[0]
        return result

    def forward_many(self, xs: Sequence[np.ndarray], timeout: float | None = None) -> list[Any]:
        """Send every input before reading any answer, so the daemon can batch them."""
        return self._client._infer(self, list(xs), False, timeout)

    def unload(self) -> None:
        self._client._unload(self)

    def fit(self, x: np.ndarray, labels: Any = None, timeout: float | None = None) -> np.ndarray:
        """Learn `x` on the session's device (docs/semantics.md, section 8); returns once the
        new learned state is durable in akidad. The (N, units) potentials before learning
        (empty when a retry found the update already applied: each fit applies once)."""
        return self._client._learn(self, x, labels, timeout)

    def learned_state(self, op: str = "info", data: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """The learned state: op "info" (samples, neurons learned), "export" (its bytes),
        "import" (replace it with exported bytes of the same program), "reset"."""
        return self._client._learn_state(self, op, data)

    def add_classes(self, num_classes: int) -> None:
        """Add `num_classes` classes of fresh neurons. The state learned so far is kept: the
        program is loaded again with it and the new neurons (a new program hash, whose
        learned state then starts from that program), and this session is closed."""
        _, program = self._client._learn_state(self, "add_classes", b"", num_classes)
        self._client._reload(self, program)

    def __repr__(self) -> str:
        return f"<RemoteModel '{self.name}' session={self.session} sequences={self.sequences}>"
