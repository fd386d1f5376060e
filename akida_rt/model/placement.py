"""Where a Model runs: in software (unmapped, or planned on a device description), on a
device in this process, or on a device akidad serves; one object the Model holds.

Each placement runs a batch, reports statistics, learns and lets go of its device; the
Model asks its placement and never which kind it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from akida_rt.engine.integer import Engine
from akida_rt.engine.statistics import Statistics
from akida_rt.errors import ModelError
from akida_rt.format.layers import Layer
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.learning import edge as learning
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend
from akida_rt.model import run_figures
from akida_rt.model.device_api import DaemonBacked, Device, RemoteRun
from akida_rt.model.sequence import Sequence


class Placed(Protocol):
    """What a placement uses of the Model it runs (akida_rt.model.model.Model)."""

    name: str

    @property
    def layers(self) -> list[Layer]: ...

    @property
    def sequences(self) -> list[Sequence]: ...

    @property
    def compiled_engine(self) -> Engine | None: ...

    def engine(self) -> Engine: ...

    def adopt_binary(self, index: int, binary: bytes) -> None: ...


class Placement:
    """Where a Model runs; the base runs it in software on the model's engine.

    Attributes:
        spec: the device description the model's plans are for (None: not mapped).
        target: what `Model.map` was given (to map again after a layer changed).
    """

    def __init__(self, spec: DeviceSpec | None = None) -> None:
        self.spec = spec
        self.target: DeviceSpec | Device | DaemonBacked | None = spec

    @property
    def device(self) -> DeviceSpec | Device | None:
        """What `Model.device` shows: the device, or the description planned on."""
        return self.spec

    @property
    def on_device(self) -> bool:
        """True when inference runs on a device (not on the host's engine)."""
        return False

    def fresh_statistics(self, previous: Statistics) -> Statistics:
        """The statistics of a model just mapped here (`previous`: those it had)."""
        return previous

    def check_fit(self, model: Placed) -> None:
        """Raise ModelError when a model placed here cannot fit in this process."""

    def run(self, model: Placed, x: np.ndarray, stats: Statistics) -> np.ndarray:
        engine = model.engine()
        if self.spec is not None:
            stats.where = f"mapped onto the {self.spec.name} description, not a device"
        start = time.perf_counter()
        y = engine.run(x)
        stats.elapsed_s += time.perf_counter() - start
        stats.frames += x.shape[0]
        return y

    def statistics(self, model: Placed, stats: Statistics) -> Statistics:
        engine = model.compiled_engine
        if engine is not None:
            stats.layers = {
                c.layer.name: s for c, s in zip(engine.compiled, engine.stats(), strict=True)
            }
        return stats

    def fit(
        self, model: Placed, x: np.ndarray, labels: np.ndarray, cfg: pb.LearningConfig
    ) -> np.ndarray:
        """Learn batch `x` with `labels`: the (N, U) potentials before learning."""
        spikes = spikes_of(model, x)
        return learning.learn_in_software(model.layers, cfg, spikes, labels)

    def release(self, model: Placed) -> None:
        """The model is unmapped or mapped elsewhere."""


class OnDevice(Placement):
    """On a device in this process (a board or the simulated chip): the model's sequences
    run and learn in its firmware."""

    def __init__(self, device: Device) -> None:
        super().__init__(device.spec)
        self._device = device
        self.target = device

    @property
    def device(self) -> Device:
        return self._device

    @property
    def on_device(self) -> bool:
        return True

    def run(self, model: Placed, x: np.ndarray, stats: Statistics) -> np.ndarray:
        dev = self._device
        y, metrics = dev.run_sequences(model.sequences, x)
        stats.frames += x.shape[0]
        stats.backend = "Hardware"
        stats.where = dev.id + (", simulated" if dev.simulated else "")
        for key, value in metrics.items():
            if key in ("inference_clk", "program_clk", "device_synops", "elapsed_s"):
                value += getattr(stats, key) or 0
            setattr(stats, key, value)
        return y

    def statistics(self, model: Placed, stats: Statistics) -> Statistics:
        return stats

    def fit(
        self, model: Placed, x: np.ndarray, labels: np.ndarray, cfg: pb.LearningConfig
    ) -> np.ndarray:
        if model.sequences[-1].backend is Backend.Software:
            # The compiler left the learning layer in software: learn on the host.
            return super().fit(model, x, labels, cfg)
        before = model.sequences[-1].program_hash
        pots, state = self._device.learn(model.sequences, x, labels, cfg)
        learning.apply_learned(model.layers, cfg, state.weights, state.plasticity, state.samples)
        learned = self._device.learned_program()
        if learned is not None:  # the chip's own binary of the learned weights: no recompile
            model.adopt_binary(len(model.sequences) - 1, learned)
        # The device computes with the learned weights already: no reload of the program.
        self._device.adopt_learned(before, model.sequences[-1].program_hash)
        return pots.astype(np.int32)

    def release(self, model: Placed) -> None:
        self._device.release(model)


class ThroughDaemon(Placement):
    """On a device akidad serves: the program is loaded there; forward/predict go through
    the daemon (learning too, but through the client's session, not the Model)."""

    def __init__(self, device: DaemonBacked, run: RemoteRun) -> None:
        super().__init__(device.spec)
        self._daemon_device, self._run = device, run
        self.target = device
        self._base = run_figures.from_daemon_device(device.stats())  # counters at map time

    @property
    def on_device(self) -> bool:
        return True

    def fresh_statistics(self, previous: Statistics) -> Statistics:
        return Statistics(backend="Hardware", where=self._daemon_device.where)

    def reset(self) -> None:
        """Device counters count from now (Model.reset_statistics)."""
        self._base = run_figures.from_daemon_device(self._daemon_device.stats())

    def check_fit(self, model: Placed) -> None:
        raise ModelError(
            f"fit: {model.name} is mapped through akidad; learn there with "
            "Client.load(...).fit or `akida learn`, or map onto an in-process device"
        )

    def run(self, model: Placed, x: np.ndarray, stats: Statistics) -> np.ndarray:
        """forward()'s integers from akidad (predict dequantizes them here, as in-process)."""
        start = time.perf_counter()
        y = self._run.forward(x)
        stats.elapsed_s += time.perf_counter() - start
        stats.frames += x.shape[0]
        stats.backend, stats.where = "Hardware", self._daemon_device.where
        return y

    def statistics(self, model: Placed, stats: Statistics) -> Statistics:
        return _with_daemon_counters(stats, self._daemon_device.stats(), self._base)

    def release(self, model: Placed) -> None:
        self._run.unload()


def place(
    target: DeviceSpec | Device | DaemonBacked,
    program: Callable[[], bytes],
    mode: str,
    hw_only: bool,
) -> Placement:
    """The placement of a model mapped onto `target`: a description (software), a device
    in this process, or one akidad serves (where `program()` is loaded now)."""
    if isinstance(target, DeviceSpec):
        return Placement(target)
    if isinstance(target, DaemonBacked):
        return ThroughDaemon(target, target.attach(program(), mode, hw_only))
    return OnDevice(target)


def spikes_of(model: Placed, x: np.ndarray) -> np.ndarray:
    """(N, K) binary inputs of the learning layer, from the software engine."""
    y = model.engine().run(x, stop=-1)
    return y.reshape(x.shape[0], -1).astype(np.uint8)


def _with_daemon_counters(
    stats: Statistics, device: dict[str, Any], base: dict[str, Any]
) -> Statistics:
    """`stats` with the device counters akidad reports, since `base` (this model's mapping
    or reset): clocks, power and energy of this stretch, not the device's lifetime.
    Other clients' work on the same device in that time counts too."""
    run = run_figures.delta(base, run_figures.from_daemon_device(device))
    stats.clock_hz = run["clock_hz"] or None
    stats.inference_clk, stats.program_clk = run["inference_clk"], run["program_clk"]
    stats.device_synops = run["synops"]
    if run["power_mw"] is not None:
        stats.power_mw = {"avg": run["power_mw"]}
        stats.energy_mj_per_frame = run["energy_mj_per_frame"]
    return stats
