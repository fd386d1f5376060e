"""Model: a chain of Akida layers with save/load, forward/predict, mapping and summary."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from akida_rt.engine.integer import Engine
from akida_rt.engine.statistics import Statistics
from akida_rt.errors import InputError, ModelError, ProgramFormatError
from akida_rt.format import program as fmt
from akida_rt.format.layers import Layer, LayerType
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.learning import edge as learning
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend, MapMode, SequencePlan, map_layers
from akida_rt.mapping.stored_mapping import decode_mapping
from akida_rt.model import run_figures
from akida_rt.model.device_api import DaemonBacked, Device, RemoteRun
from akida_rt.model.sequence import Sequence, placements_to_pb

log = logging.getLogger(__name__)


class Model:
    """A converted Akida model.

    Args:
        source: a program file path, or program bytes, to load; None for an empty model.
        layers: layers to build the model from (the first is InputData or InputConv2D).
        name: a name stored in the program.
        input_scaling: (scale, offset) with data_train = (data_raw - offset) / scale.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview | None = None,
        *,
        layers: Iterable[Layer] | None = None,
        name: str = "model",
        input_scaling: tuple[float, float] | None = None,
    ) -> None:
        self.name = name
        self.input_scaling = input_scaling
        self._layers: list[Layer] = []
        self._device: DeviceSpec | Device | None = None
        self._remote: tuple[DaemonBacked, RemoteRun] | None = None  # mapped through akidad
        self._remote_base: dict[str, Any] = {}  # akidad's device counters at map or reset
        self._plans: list[SequencePlan] | None = None
        self._map_args: tuple[str, bool] = (MapMode.AllNps.value, False)
        self._engine: Engine | None = None
        self._engine_key: tuple[int, ...] = ()
        self._sequences: tuple[tuple[Any, ...], list[Sequence]] | None = None
        self._stats = Statistics()
        self.learning: pb.LearningConfig | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self._load(bytes(source), source="program bytes")
        elif source is not None:
            self._load(fmt.read_file(source), source=str(source))
        for layer in layers or ():
            self.add(layer)

    # -------------------------------------------------------------- construction
    def add(self, layer: Layer) -> None:
        """Append a layer; its input shape and bits follow from the previous layer."""
        if any(existing.name == layer.name for existing in self._layers):
            raise ModelError(f"a layer named '{layer.name}' is already in the model")
        if self._layers:
            prev = self._layers[-1]
            if prev.output_bits is None:
                raise ModelError(f"'{prev.name}' has no activation, so no layer can follow it")
            layer.input_shape = prev.output_shape
            layer.input_bits = prev.output_bits
        elif layer.input_shape is None:
            raise ModelError(f"first layer '{layer.name}' needs an input_shape")
        layer.validate(is_first=not self._layers, is_last=True, variables=False)
        if self._layers:
            self._layers[-1].validate(
                is_first=len(self._layers) == 1, is_last=False, variables=False
            )
        self._layers.append(layer)
        self._invalidate()

    def _invalidate(self) -> None:
        self._engine = None
        self._plans = None if self._device is None else self._plans
        if self._device is not None:
            self._remap()

    def validate(self) -> None:
        if not self._layers:
            raise ModelError("model has no layers")
        for i, layer in enumerate(self._layers):
            layer.validate(is_first=i == 0, is_last=i == len(self._layers) - 1)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def get_layer(self, name: str) -> Layer:
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ModelError(f"no layer named '{name}'; layers: {[lay.name for lay in self._layers]}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if not self._layers:
            raise ModelError("model has no layers")
        shape = self._layers[0].input_shape
        assert shape is not None
        return shape

    @property
    def output_shape(self) -> tuple[int, int, int]:
        if not self._layers:
            raise ModelError("model has no layers")
        return self._layers[-1].output_shape

    @property
    def input_bits(self) -> int:
        return self._layers[0].input_bits

    # ------------------------------------------------------------------ inference
    def _check_input(self, x: Any, what: str) -> np.ndarray:
        return check_input(x, self.input_shape, self.input_bits, what)

    def _key(self) -> tuple[int, ...]:
        return tuple(id(layer) for layer in self._layers) + tuple(
            layer.version for layer in self._layers
        )

    def engine(self) -> Engine:
        """The compiled engine, rebuilt when any layer changed since it was compiled."""
        key = self._key()
        if self._engine is None or key != self._engine_key:
            self.validate()
            self._engine, self._engine_key = Engine(self._layers), key
        return self._engine

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._remote is not None:
            return self._run_remote(x)
        if self._device is not None and not isinstance(self._device, DeviceSpec):
            y, metrics = self._device.run_sequences(self.sequences, x)
            self._stats.frames += x.shape[0]
            self._stats.backend = "Hardware"
            self._stats.where = self._device.id + (", simulated" if self._device.simulated else "")
            for key, value in metrics.items():
                if key in ("inference_clk", "program_clk", "device_synops", "elapsed_s"):
                    value += getattr(self._stats, key) or 0
                setattr(self._stats, key, value)
            return y
        engine = self.engine()
        if isinstance(self._device, DeviceSpec):
            self._stats.where = f"mapped onto the {self._device.name} description, not a device"
        start = time.perf_counter()
        y = engine.run(x)
        self._stats.elapsed_s += time.perf_counter() - start
        self._stats.frames += x.shape[0]
        return y

    def _run_remote(self, x: np.ndarray) -> np.ndarray:
        """forward()'s integers from akidad (predict dequantizes them here, as in-process)."""
        assert self._remote is not None
        device, run = self._remote
        start = time.perf_counter()
        y = run.forward(x)
        self._stats.elapsed_s += time.perf_counter() - start
        self._stats.frames += x.shape[0]
        self._stats.backend, self._stats.where = "Hardware", device.where
        return y

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Integer outputs: uint8 activations, or int32 potentials if the last layer has none."""
        x = self._check_input(inputs, "forward")
        y = self._run(x)
        if self._layers[-1].activation:
            return y.astype(np.uint8)
        return y.astype(np.int64) if np.abs(y).max(initial=0) >= 2**31 else y.astype(np.int32)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Float outputs: final integer outputs times output_scale plus output_offset.

        For a classifier this is the class decision (`predict(x).argmax(-1)`); forward()
        returns the integers before the last layer's per-class float scale and offset.
        """
        return self.dequantize(self._run(self._check_input(inputs, "predict")))

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        """predict()'s float outputs from forward()'s integer outputs `y`."""
        last = self._layers[-1]
        scale = last.get_variable("output_scale").astype(np.float64)
        offset = last.get_variable("output_offset").astype(np.float64)
        return (y.astype(np.float64) * scale + offset).astype(np.float32)

    # -------------------------------------------------------------- edge learning
    def compile(self, optimizer: learning.AkidaUnsupervised, seed: int = 0) -> None:
        """Make the last layer learn with `optimizer` (docs/semantics.md, section 8):
        its neurons start without connections; `seed` seeds the choice of connections."""
        learning.compile_model(self, optimizer, seed)

    def fit(self, inputs: np.ndarray, labels: Any = None) -> np.ndarray:
        """Learn `inputs` (with one label per sample, or one for all, in labelled mode),
        on the mapped device or in software; the (N, units) potentials before learning."""
        if self._remote is not None:
            raise ModelError(
                f"fit: {self.name} is mapped through akidad; learn there with "
                "Client.load(...).fit or `akida learn`, or map onto an in-process device"
            )
        return learning.fit(self, inputs, labels)

    def add_classes(self, num_classes: int) -> None:
        """Add classes to a model compiled with num_classes, each with fresh neurons."""
        learning.add_classes(self, num_classes)

    def predict_classes(self, inputs: np.ndarray, num_classes: int | None = None) -> np.ndarray:
        """The class of each sample: the neuron group of highest output."""
        return learning.predict_classes(self, inputs, num_classes)

    def layers_changed(self) -> None:
        """A layer's shape changed in place (add_classes): remap and recompile."""
        self._invalidate()

    @property
    def statistics(self) -> Statistics:
        """Statistics since mapping (or the last reset_statistics())."""
        stats = self._stats
        if self._remote is not None:
            return _with_daemon_counters(stats, self._remote[0].stats(), self._remote_base)
        on_device = self._device is not None and not isinstance(self._device, DeviceSpec)
        if self._engine is not None and not on_device:
            engine = self._engine
            stats.layers = {
                c.layer.name: s for c, s in zip(engine.compiled, engine.stats(), strict=True)
            }
        return stats

    def reset_statistics(self) -> None:
        self._stats = Statistics(backend=self._stats.backend, where=self._stats.where)
        if self._remote is not None:
            self._remote_base = run_figures.from_daemon_device(self._remote[0].stats())
        if self._engine is not None:
            self._engine.reset_stats()

    # -------------------------------------------------------------------- mapping
    def map(
        self,
        device: DeviceSpec | Device | DaemonBacked | None,
        hw_only: bool = False,
        mode: MapMode = MapMode.AllNps,
    ) -> None:
        """Map onto a device (a DeviceSpec, or a device from devices(): in this process,
        or served by akidad, where the program is then loaded); None unmaps."""
        if self._remote is not None:
            self._remote[1].unload()
            self._remote = None
        if isinstance(device, DaemonBacked):
            self.map(device.spec, hw_only=hw_only, mode=mode)  # plans: summary, sequences
            run = device.attach(self.to_bytes(), MapMode(mode).value, hw_only)
            self._remote = (device, run)
            self._stats = Statistics(backend="Hardware", where=device.where)
            self._remote_base = run_figures.from_daemon_device(device.stats())
            return
        if device is None:
            if self._device is not None and not isinstance(self._device, DeviceSpec):
                self._device.release(self)
            self._device, self._plans = None, None
            self.reset_statistics()
            return
        self.validate()
        spec = device if isinstance(device, DeviceSpec) else device.spec
        self._plans = map_layers(self._layers, spec, hw_only=hw_only, mode=MapMode(mode))
        self._map_args = (MapMode(mode).value, hw_only)
        self._device = device
        self.reset_statistics()
        log.info("mapped %s onto %s: %d sequence(s)", self.name, spec.name, len(self._plans))

    def _remap(self) -> None:
        mode, hw_only = self._map_args
        target = self._remote[0] if self._remote is not None else self._device
        self.map(target, hw_only=hw_only, mode=MapMode(mode))

    @property
    def device(self) -> DeviceSpec | Device | None:
        """What the model is mapped onto; through akidad, the device's spec (the plans)."""
        return self._device

    @property
    def sequences(self) -> list[Sequence]:
        """The model's sequences; cached until the mapping or a layer changes."""
        key = (id(self._plans), self._spec_name(), *self._key())
        if self._sequences is not None and self._sequences[0] == key:
            return list(self._sequences[1])
        by_name = {layer.name: layer for layer in self._layers}
        if self._plans is None:
            if not self._layers:
                return []
            plan = SequencePlan(Backend.Software, [layer.name for layer in self._layers])
            built = [Sequence(plan, list(self._layers), "", 0)]
        else:
            # A sequence whose layers did not change keeps its program bytes and hash (a fit
            # changes the learning layer only: the other sequences are not encoded again).
            spec_name = self._spec_name()
            old = {id(s.plan): s for s in self._sequences[1]} if self._sequences else {}
            built = []
            for i, plan in enumerate(self._plans):
                layers = [by_name[n] for n in plan.layers]
                seq = old.get(id(plan))
                if seq is None or seq.device != spec_name or not seq.holds(layers):
                    seq = Sequence(plan, layers, spec_name, i)
                built.append(seq)
        self._sequences = (key, built)
        return list(built)

    def _spec_name(self) -> str:
        if self._device is None:
            return ""
        spec = self._device if isinstance(self._device, DeviceSpec) else self._device.spec
        return str(spec.name)

    # ---------------------------------------------------------------- persistence
    def to_message(self) -> pb.Program:
        self.validate()
        fmt.check_name(self.name, "model name")  # what the loader would refuse
        msg = pb.Program(name=self.name, producer="akida_rt")
        fmt.layers_to_message(self._layers, msg)
        if self.input_scaling is not None:
            msg.input_scaling.scale, msg.input_scaling.offset = self.input_scaling
        if self._plans is not None:
            mode, hw_only = self._map_args
            msg.mapping.device, msg.mapping.mode, msg.mapping.hw_only = (
                self._spec_name(),
                mode,
                hw_only,
            )
            for plan in self._plans:
                s = msg.mapping.sequences.add(
                    name=plan.name,
                    backend=pb.HARDWARE if plan.backend is Backend.Hardware else pb.SOFTWARE,
                    passes=plan.passes,
                )
                s.layers[:] = plan.layers
                placements_to_pb(plan.placements, s.placements)
        if self.learning is not None:
            msg.learning.CopyFrom(self.learning)
        return msg

    def to_bytes(self) -> bytes:
        return fmt.pack(self.to_message())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the program file atomically (temp file, fsync, rename)."""
        fmt.atomic_write(path, self.to_bytes())

    def _load(self, data: bytes, source: str) -> None:
        msg = fmt.unpack(data, source)
        try:
            fmt.check_name(msg.name, "model name")
            layers = fmt.decode_layers(msg.layers)
            try:  # accumulator and activation bounds: refuse what the engine could not run exactly
                engine = Engine(layers)
            except ModelError as exc:
                raise ProgramFormatError(str(exc)) from None
            scaling = fmt.decode_input_scaling(msg)
            if msg.HasField("learning"):
                fmt.check_learning(msg.learning)
                if msg.learning.enabled:
                    learning.check_config(msg.learning, layers)
            mapping = decode_mapping(msg.mapping, layers) if msg.HasField("mapping") else None
        except ProgramFormatError as exc:
            raise ProgramFormatError(f"{source}: {exc}") from None
        self._layers, self._engine = layers, engine
        self.name = msg.name or "model"
        if scaling is not None:
            self.input_scaling = scaling
        if msg.HasField("learning"):
            self.learning = msg.learning
        if mapping is not None:
            self._device, self._plans = mapping.spec, mapping.plans
            self._map_args = (mapping.mode.value, mapping.hw_only)

    # -------------------------------------------------------------------- display
    def summary(self, print_fn: Callable[[str], None] = print) -> None:
        """Print the summary table (with NP allocation once mapped)."""
        from akida_rt.model.summary import summary_text

        print_fn(summary_text(self))

    def same_as(self, other: Model) -> bool:
        """True when both models have the same layers, variables and input scaling."""
        return (
            len(self._layers) == len(other._layers)
            and all(a.same_as(b) for a, b in zip(self._layers, other._layers, strict=True))
            and self.input_scaling == other.input_scaling
        )

    def __repr__(self) -> str:
        return f"<Model '{self.name}' layers={len(self._layers)} sequences={len(self.sequences)}>"


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


def is_input_layer(layer: Layer) -> bool:
    return layer.layer_type in (LayerType.InputData, LayerType.InputConv2D)


def check_input(x: Any, shape: tuple[int, ...], bits: int, what: str) -> np.ndarray:
    """`x` if it is a batch of inputs of a model taking `shape` (HWC) uint8 inputs of
    `bits` bits; the one input check, in-process and in akidad.

    Raises:
        InputError: naming `what` and the dtype, shape or range that is wrong.
    """
    if not isinstance(x, np.ndarray):
        raise InputError(f"{what}: inputs must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise InputError(
            f"{what}: inputs must be uint8, got {x.dtype}; scale raw data to 0..255 "
            "(the model's input_scaling maps it to the trained range)"
        )
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise InputError(
            f"{what}: input shape {tuple(x.shape)} does not match (N, {', '.join(map(str, shape))})"
        )
    if x.shape[0] == 0:
        raise InputError(f"{what}: the input batch is empty")
    if bits < 8 and int(x.max()) >= 2**bits:
        raise InputError(f"{what}: input values reach {int(x.max())}, above the {bits}-bit range")
    return x
