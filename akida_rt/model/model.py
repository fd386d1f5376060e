"""Model: a chain of Akida layers with save/load, forward/predict, mapping and summary."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from akida_rt.engine.integer import Engine
from akida_rt.engine.statistics import Statistics
from akida_rt.errors import MappingError, ModelError, ProgramFormatError
from akida_rt.format import program as fmt
from akida_rt.format.inputs import check_input
from akida_rt.format.layers import Layer
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.learning import edge as learning
from akida_rt.mapping import akd1000_compiler as akd1000
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend, MapMode, SequencePlan, map_layers
from akida_rt.mapping.stored_mapping import decode_mapping
from akida_rt.model.binaries import HeldBinaries
from akida_rt.model.device_api import DaemonBacked, Device
from akida_rt.model.placement import Placement, place
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
        self._placement = Placement()  # where the model runs
        self._plans: list[SequencePlan] | None = None
        self._map_args: tuple[str, bool] = (MapMode.AllNps.value, False)
        self._engine: Engine | None = None
        self._engine_key: tuple[int, ...] = ()
        self._sequences: tuple[tuple[Any, ...], list[Sequence]] | None = None
        self._binaries = HeldBinaries()
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
        if self._placement.spec is not None:
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
            n = len(self._layers)
            if self._engine is not None and key[:n] == self._engine_key[:n]:
                # the same layers, some changed (a fit changes the last one's weights)
                versions = self._engine.versions
                for i, (layer, version) in enumerate(zip(self._layers, versions, strict=True)):
                    if layer.version != version:
                        layer.validate(is_first=i == 0, is_last=i == n - 1)
                self._engine.update(self._layers)
            else:
                self.validate()
                self._engine = Engine(self._layers)
            self._engine_key = key
        return self._engine

    @property
    def compiled_engine(self) -> Engine | None:
        """The engine compiled so far (None before the first software run)."""
        return self._engine

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._placement.run(self, x, self._stats)

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
        its neurons start without connections. `seed` is kept in the program but does
        not change the rule: the chip holds no seed, so connections are chosen from what
        it holds (the winner, its connections, the sample)."""
        self.learning = learning.compile_layers(self._layers, optimizer, seed)

    def fit(self, inputs: np.ndarray, labels: Any = None) -> np.ndarray:
        """Learn `inputs` (with one label per sample, or one for all, in labelled mode),
        on the mapped device or in software; the (N, units) potentials before learning."""
        self._placement.check_fit(self)
        cfg = learning.require_compiled(self.learning, self.name)
        x = check_input(inputs, self.input_shape, self.input_bits, "fit")
        y = learning.check_labels(cfg, labels, x.shape[0])
        learning.learning_layer(self._layers)
        return self._placement.fit(self, x, y, cfg)

    def add_classes(self, num_classes: int) -> None:
        """Add classes to a model compiled with num_classes, each with fresh neurons."""
        cfg = learning.require_compiled(self.learning, self.name)
        learning.add_classes(self._layers, cfg, num_classes)
        self._invalidate()

    def predict_classes(self, inputs: np.ndarray, num_classes: int | None = None) -> np.ndarray:
        """The class of each sample: the neuron group of highest output."""
        out = self.predict(inputs).reshape(np.asarray(inputs).shape[0], -1)
        return learning.classes_of(out, self.learning, num_classes)

    def learned_state(self, program_hash: str) -> pb.LearnedState:
        """The learned state (the learning layer's weights and configuration), for the
        program of `program_hash`."""
        cfg = learning.require_compiled(self.learning, self.name)
        return learning.state_message(self._layers, cfg, program_hash)

    def restore_learned(self, msg: pb.LearnedState, program_hash: str, where: str) -> None:
        """Restore learned state `msg` (from the program of `program_hash`)."""
        self.learning = learning.apply_state(self._layers, msg, program_hash, where)

    def learning_info(self) -> dict[str, Any] | None:
        """What `akida run` shows: None without learning, else the learning state."""
        return learning.describe(self._layers, self.learning)

    @property
    def statistics(self) -> Statistics:
        """Statistics since mapping (or the last reset_statistics())."""
        return self._placement.statistics(self, self._stats)

    def reset_statistics(self) -> None:
        self._stats = Statistics(backend=self._stats.backend, where=self._stats.where)
        reset = getattr(self._placement, "reset", None)
        if reset is not None:  # through akidad: device counters count from now
            reset()
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
        planned_on = self._spec_name()  # a program file's binaries stay for the same target
        self._placement.release(self)
        self._placement = Placement()
        if device is None:
            self._plans = None
            self.reset_statistics()
            return
        self.validate()
        # akidad keys learned state by the program's hash: send the program as `akida
        # learn` and Client.load do (unmapped), not with this process's mapping in it.
        unmapped = self._unmapped_bytes() if isinstance(device, DaemonBacked) else b""
        spec = device if isinstance(device, DeviceSpec) else device.spec
        same = (planned_on, self._map_args) == (spec.name, (MapMode(mode).value, hw_only))
        kept = self._binaries.get(self._bin_key()) if same and self._plans is not None else None
        if kept is None:
            self._plans = map_layers(self._layers, spec, hw_only=hw_only, mode=MapMode(mode))
            self._binaries.clear()
        # else: the binaries held (a program file's) and the plans they were made for stay
        self._map_args = (MapMode(mode).value, hw_only)
        self._placement = Placement(spec)  # the program names its device description
        if not isinstance(device, DeviceSpec | DaemonBacked) and akd1000.needs_binaries(spec):
            # Compiled at map time: a model akida_rt cannot compile fails here.
            self.binaries()
        program = (lambda: unmapped) if unmapped else self.to_bytes
        self._placement = place(device, program, MapMode(mode).value, hw_only)
        assert self._plans is not None
        self.reset_statistics()
        self._stats = self._placement.fresh_statistics(self._stats)
        log.info("mapped %s onto %s: %d sequence(s)", self.name, spec.name, len(self._plans))

    def _remap(self) -> None:
        mode, hw_only = self._map_args
        self.map(self._placement.target, hw_only=hw_only, mode=MapMode(mode))

    @property
    def device(self) -> DeviceSpec | Device | None:
        """What the model is mapped onto; through akidad, the device's spec (the plans)."""
        return self._placement.device

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
                    seq = Sequence(plan, layers, spec_name, i, functools.partial(self._binary, i))
                built.append(seq)
        self._sequences = (key, built)
        return list(built)

    def binaries(self) -> list[bytes | None]:
        """Each sequence's AKD1000 program binary (None for software sequences), compiled
        by akida_rt (mapping.akd1000_compiler) for the plans' NP placement. MappingError
        when the model is not mapped onto an AKD1000 or a sequence cannot be compiled."""
        spec = self._placement.spec
        if self._plans is None or spec is None:
            raise MappingError("the model is not mapped: map it onto an AKD1000 first")
        if not akd1000.needs_binaries(spec):
            raise MappingError(f"{spec.name} runs no AKD1000 program binaries; map onto AKD1000")
        held = self._binaries.get(self._bin_key())
        if held is None:
            held = akd1000.compile_binaries(self._plans, self._layers, spec, self._learning_v1())
            self._binaries.hold(self._bin_key(), held)
        return held

    def _learning_v1(self) -> tuple[pb.LearningConfig, np.ndarray] | None:
        """(learning configuration, the learning layer's plasticity) when it learns."""
        cfg = self.learning
        if cfg is None or not cfg.enabled:
            return None
        return cfg, learning.plasticity_of(cfg, self._layers[-1].filters)

    def adopt_binary(self, index: int, binary: bytes) -> None:
        """Sequence `index`'s program binary is now `binary` (its weights learned on the
        chip): kept for the model's current layers without compiling again."""
        self._binaries.adopt(self._bin_key(), index, binary)

    def _bin_key(self) -> tuple[Any, ...]:
        return (id(self._plans), *self._key())

    def _binary(self, index: int) -> bytes | None:
        return self.binaries()[index]

    def _unmapped_bytes(self) -> bytes:
        msg = self.to_message()
        msg.ClearField("mapping")
        return fmt.pack(msg)

    def _spec_name(self) -> str:
        spec = self._placement.spec
        return "" if spec is None else str(spec.name)

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
            binaries = self._binaries.get(self._bin_key())
            for i, plan in enumerate(self._plans):
                s = msg.mapping.sequences.add(
                    name=plan.name,
                    backend=pb.HARDWARE if plan.backend is Backend.Hardware else pb.SOFTWARE,
                    passes=plan.passes,
                )
                s.layers[:] = plan.layers
                placements_to_pb(plan.placements, s.placements)
                binary = binaries[i] if binaries is not None else None
                if binary is not None:
                    s.binary = binary
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
            self._placement, self._plans = Placement(mapping.spec), mapping.plans
            self._map_args = (mapping.mode.value, mapping.hw_only)
            if mapping.binaries is not None:
                self._binaries.hold(self._bin_key(), mapping.binaries)

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
