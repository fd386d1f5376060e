"""Edge learning on a model's layers and its learning configuration (no Model): compile
(AkidaUnsupervised(...)), fit in software, add_classes, the class of outputs, and the
learned state as one message (saved, exported, restored).

The rule itself is akida_rt.engine.learning_rule; docs/semantics.md, section 8, states it.
akida_rt.model.Model holds the layers and configuration and calls these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from akida_rt.engine.learning_rule import (
    NO_LABEL,
    RuleParams,
    initial_swaps,
    learn,
    rule_params,
    swaps_of,
)
from akida_rt.engine.learning_rule import plasticity_of as plasticity_of_swaps
from akida_rt.errors import AkidaError, InputError, LearningError
from akida_rt.format import program as fmt
from akida_rt.format.layers import Layer, LayerType
from akida_rt.format.proto import program_pb2 as pb

# Samples a state may have learned: fits add to it, and 2^53 keeps every count exact in
# a float and far from the uint64 field's end (2^64 - 1 made every fit fail).
MAX_SAMPLES = 1 << 53
UNIT_PARAMS = ("initial_plasticity", "min_plasticity", "plasticity_decay", "learning_competition")
STATE_MAGIC = b"AKIDALRN"  # an exported learned-state file: magic, then a LearnedState


@dataclass(frozen=True)
class AkidaUnsupervised:
    """The edge-learning optimizer of `Model.compile` (BrainChip's parameters).

    Args:
        num_weights: connections (binary weights set to 1) each neuron keeps.
        num_classes: labelled mode when > 0: the neurons are split into equal groups,
            one per class, and a labelled sample is learned by its class's group only.
        initial_plasticity: 0..1, the fraction of a neuron's connections one learning
            step may move at first.
        min_plasticity: 0..1, the level plasticity decays to.
        plasticity_decay: 0..1, how much plasticity drops per learning step, relative to
            initial_plasticity.
        learning_competition: 0..1, how strongly neurons that have already learned keep
            others from learning similar inputs (0: never).
    """

    num_weights: int
    num_classes: int = 0
    initial_plasticity: float = 1.0
    min_plasticity: float = 0.1
    plasticity_decay: float = 0.25
    learning_competition: float = 0.0

    def __post_init__(self) -> None:
        if int(self.num_weights) != self.num_weights or self.num_weights < 1:
            raise LearningError(f"num_weights must be an integer >= 1, got {self.num_weights}")
        if int(self.num_classes) != self.num_classes or self.num_classes < 0:
            raise LearningError(f"num_classes must be an integer >= 0, got {self.num_classes}")
        for name in UNIT_PARAMS:
            _unit_range(name, getattr(self, name))


def _unit_range(name: str, value: Any) -> None:
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise LearningError(f"{name} must be a number in 0..1, got {value!r}")


def check_params(cfg: pb.LearningConfig) -> None:
    """The learning parameters and counters of a stored configuration are sane: what an
    import, a restore and a program load all check (LearningError naming the field)."""
    for name in UNIT_PARAMS:
        _unit_range(name, getattr(cfg, name))
    if cfg.samples > MAX_SAMPLES:
        raise LearningError(f"samples {cfg.samples} is above {MAX_SAMPLES}")


# --------------------------------------------------------------------- the layer
def learning_layer(layers: list[Layer]) -> Layer:
    """The last layer, if it can learn; LearningError naming what stops it otherwise."""
    if not layers:
        raise LearningError("the model has no layers")
    layer = layers[-1]
    where = f"the last layer '{layer.name}' ({layer.type_name})"
    if layer.layer_type is not LayerType.FullyConnected:
        raise LearningError(f"{where} cannot learn: only a FullyConnected layer learns")
    if layer.weight_bits != 1:
        raise LearningError(f"{where} has {layer.weight_bits}-bit weights; learning needs 1")
    if layer.input_bits != 1:
        raise LearningError(
            f"{where} receives {layer.input_bits}-bit inputs; learning needs 1-bit spikes "
            "(add a spike generator: akida_rt.tools.edge_learning.add_learning_head)"
        )
    if layer.activation:
        raise LearningError(f"{where} has an activation; a learning layer outputs potentials")
    return layer


def params_of(cfg: pb.LearningConfig) -> RuleParams:
    """The rule's parameters in whole weights, as the chip's learning registers hold them."""
    return rule_params(
        cfg.num_weights,
        cfg.num_classes,
        cfg.initial_plasticity,
        cfg.min_plasticity,
        cfg.plasticity_decay,
        cfg.learning_competition,
    )


def fresh_plasticity(cfg: pb.LearningConfig, units: int) -> np.ndarray:
    """float32 plasticity of `units` neurons that never learned: initial_plasticity in
    whole weights (rounded half up, as BrainChip's compile sets `thswap`)."""
    swaps = initial_swaps(cfg.num_weights, cfg.initial_plasticity)
    return plasticity_of_swaps(np.full(units, swaps), cfg.num_weights)


def plasticity_of(cfg: pb.LearningConfig, units: int) -> np.ndarray:
    """Per-neuron plasticity (that of fresh neurons for a configuration that stores none)."""
    if not cfg.HasField("plasticity"):
        return fresh_plasticity(cfg, units)
    return fmt.decode_tensor(
        cfg.plasticity, "learning plasticity", dtype_code=(pb.FLOAT32,), ndim=1
    )


def check_config(cfg: pb.LearningConfig, layers: list[Layer]) -> None:
    """A stored learning configuration agrees with the layers (ProgramFormatError otherwise)."""
    try:
        check_params(cfg)
        layer = learning_layer(layers)
        fan_in, units = layer.fan_in, layer.filters
        if not 1 <= cfg.num_weights <= fan_in:
            raise LearningError(f"num_weights {cfg.num_weights} is not in 1..{fan_in} inputs")
        if cfg.num_classes and units % cfg.num_classes:
            raise LearningError(f"{units} neurons do not split into {cfg.num_classes} classes")
        plasticity = plasticity_of(cfg, units)
        if plasticity.shape != (units,) or not np.all((plasticity >= 0) & (plasticity <= 1)):
            raise LearningError(f"plasticity must be {units} values in 0..1")
        if cfg.HasField("v1_learning_gate"):
            gate = fmt.decode_tensor(cfg.v1_learning_gate, "learning v1 gate", ndim=1)
            if gate.shape != (units,):
                raise LearningError(f"the v1 learning gate must be {units} values")
        if np.any(
            np.count_nonzero(layer.get_variable("weights"), axis=(0, 1, 2)) > cfg.num_weights
        ):
            raise LearningError(f"a neuron has more than num_weights={cfg.num_weights} connections")
    except LearningError as exc:
        raise fmt.ProgramFormatError(f"learning: {exc}") from None


def compile_layers(
    layers: list[Layer], optimizer: AkidaUnsupervised, seed: int = 0
) -> pb.LearningConfig:
    """Make the last layer learnable: no connections yet, full plasticity, no samples;
    the learning configuration of the model."""
    if not isinstance(optimizer, AkidaUnsupervised):
        raise LearningError(f"compile takes an AkidaUnsupervised, got {type(optimizer).__name__}")
    layer = learning_layer(layers)
    if optimizer.num_weights > layer.fan_in:
        raise LearningError(
            f"num_weights {optimizer.num_weights} exceeds the {layer.fan_in} inputs of "
            f"'{layer.name}'"
        )
    if optimizer.num_classes and layer.filters % optimizer.num_classes:
        raise LearningError(
            f"'{layer.name}' has {layer.filters} neurons, not a multiple of num_classes "
            f"{optimizer.num_classes}"
        )
    if not 0 <= seed < 2**64:
        raise LearningError(f"seed must be in 0..2^64-1, got {seed}")
    units = layer.filters
    layer.set_variable("weights", np.zeros((1, 1, layer.fan_in, units), np.int8))
    _reset_outputs(layer, units)
    cfg = config_of(optimizer, seed)
    fmt.encode_tensor(fresh_plasticity(cfg, units), cfg.plasticity)
    return cfg


def config_of(optimizer: Any, seed: int = 0) -> pb.LearningConfig:
    """The learning parameters of an AkidaUnsupervised, or of BrainChip's optimizer of the
    same fields (the learned weights are the layer's weights)."""
    return pb.LearningConfig(
        enabled=True,
        num_weights=int(optimizer.num_weights),
        num_classes=int(optimizer.num_classes),
        initial_plasticity=float(optimizer.initial_plasticity),
        min_plasticity=float(optimizer.min_plasticity),
        plasticity_decay=float(optimizer.plasticity_decay),
        learning_competition=float(optimizer.learning_competition),
        seed=int(seed),
    )


def _reset_outputs(layer: Layer, units: int) -> None:
    layer.set_variable("bias", np.zeros(units, np.int32))
    layer.set_variable("output_scale", np.ones(units, np.float64))
    layer.set_variable("output_offset", np.zeros(units, np.float64))


def require_compiled(cfg: pb.LearningConfig | None, name: str) -> pb.LearningConfig:
    """`cfg` if model `name` is compiled for learning; LearningError saying how otherwise."""
    if cfg is None or not cfg.enabled:
        raise LearningError(
            f"model '{name}' is not compiled for learning: "
            "call model.compile(AkidaUnsupervised(num_weights, num_classes=...)) first"
        )
    return cfg


# ------------------------------------------------------------------------- fit
def check_labels(cfg: pb.LearningConfig, labels: Any, frames: int) -> np.ndarray:
    """int64 labels, one per frame (NO_LABEL when unlabelled); InputError if they are wrong."""
    if cfg.num_classes == 0:
        if labels is not None:
            raise InputError("fit: labels given, but the model was compiled without num_classes")
        return np.full(frames, NO_LABEL, np.int64)
    if labels is None:
        raise InputError(f"fit: labels required (the model learns {cfg.num_classes} classes)")
    arr = np.asarray(labels)
    if arr.ndim == 0:
        arr = np.full(frames, arr)
    if not np.issubdtype(arr.dtype, np.integer) or arr.shape != (frames,):
        raise InputError(f"fit: labels must be {frames} integers, got {arr.dtype} {arr.shape}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= cfg.num_classes):
        raise InputError(
            f"fit: labels must be in 0..{cfg.num_classes - 1}, got {int(arr.min())}..{int(arr.max())}"
        )
    return arr.astype(np.int64)


def learn_in_software(
    layers: list[Layer], cfg: pb.LearningConfig, spikes: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Learn the (N, K) binary `spikes` (the learning layer's inputs) in order with the
    host's rule; the (N, U) int32 potentials of each sample before it was learned."""
    layer = learning_layer(layers)
    weights = layer.get_variable("weights").reshape(layer.fan_in, layer.filters).astype(np.uint8)
    swaps = swaps_of(plasticity_of(cfg, layer.filters), cfg.num_weights)
    pots = learn(params_of(cfg), weights, swaps, spikes, labels)
    plasticity = plasticity_of_swaps(swaps, cfg.num_weights)
    apply_learned(layers, cfg, weights, plasticity, cfg.samples + spikes.shape[0])
    return pots.astype(np.int32)


def apply_learned(
    layers: list[Layer],
    cfg: pb.LearningConfig,
    weights: np.ndarray,
    plasticity: np.ndarray,
    samples: int,
) -> None:
    """Set the learning layer's weights and the configuration's plasticity and samples."""
    layer = learning_layer(layers)
    layer.set_variable("weights", weights.reshape(1, 1, layer.fan_in, layer.filters))
    fmt.encode_tensor(np.asarray(plasticity, np.float32), cfg.plasticity)
    if samples != cfg.samples:
        cfg.ClearField("v1_learning_gate")  # akida's gate values no longer describe it
    cfg.samples = int(samples)


def add_classes(layers: list[Layer], cfg: pb.LearningConfig, num_classes: int) -> None:
    """Add `num_classes` classes of as many fresh neurons each as the existing classes have
    (the learning layer's shape changes: the model maps and compiles again)."""
    if cfg.num_classes == 0:
        raise LearningError("add_classes needs a model compiled with num_classes")
    if int(num_classes) != num_classes or num_classes < 1:
        raise LearningError(f"add_classes takes a number of classes >= 1, got {num_classes}")
    layer = learning_layer(layers)
    per = layer.filters // cfg.num_classes
    units = layer.filters + per * num_classes
    weights = np.zeros((1, 1, layer.fan_in, units), np.int8)
    weights[..., : layer.filters] = layer.get_variable("weights")
    plasticity = fresh_plasticity(cfg, units)
    plasticity[: layer.filters] = plasticity_of(cfg, layer.filters)
    layer.filters = units
    layer.set_variable("weights", weights)
    _reset_outputs(layer, units)
    fmt.encode_tensor(plasticity, cfg.plasticity)
    cfg.ClearField("v1_learning_gate")
    cfg.num_classes += int(num_classes)


def classes_of(
    out: np.ndarray, cfg: pb.LearningConfig | None, num_classes: int | None = None
) -> np.ndarray:
    """Class per sample of the (N, units) outputs `out`: the group (of units / num_classes
    neurons) holding the output of highest value (ties: lowest neuron). num_classes
    defaults to the compiled one, else one class per output."""
    units = out.shape[1]
    if num_classes is None:
        num_classes = cfg.num_classes if cfg is not None and cfg.num_classes else units
    if num_classes < 1 or units % num_classes:
        raise InputError(
            f"predict_classes: {units} outputs do not split into {num_classes} classes"
        )
    return (np.argmax(out, axis=1) // (units // num_classes)).astype(np.int64)


# ----------------------------------------------------------------- learned state
def state_message(
    layers: list[Layer], cfg: pb.LearningConfig, program_hash: str
) -> pb.LearnedState:
    layer = learning_layer(layers)
    msg = pb.LearnedState(program_hash=program_hash, layer=layer.name)
    msg.learning.CopyFrom(cfg)
    fmt.encode_tensor(layer.get_variable("weights"), msg.weights)
    return msg


def encode_state(msg: pb.LearnedState) -> bytes:
    """The learned state as bytes (an export file, or a stored blob)."""
    return STATE_MAGIC + msg.SerializeToString()


def decode_state(data: bytes, where: str = "learned state") -> pb.LearnedState:
    if not data.startswith(STATE_MAGIC):
        raise LearningError(f"{where}: not a learned-state file (no {STATE_MAGIC.decode()} magic)")
    msg = pb.LearnedState()
    try:
        msg.ParseFromString(data[len(STATE_MAGIC) :])
    except Exception as exc:  # DecodeError, RuntimeError on malformed bytes
        raise LearningError(f"{where}: undecodable ({exc})") from None
    return msg


def apply_state(
    layers: list[Layer], msg: pb.LearnedState, program_hash: str, where: str
) -> pb.LearningConfig:
    """Restore learned state onto `layers` (loaded from the program of `program_hash`);
    the model's new learning configuration."""
    if msg.program_hash != program_hash:
        raise LearningError(
            f"{where} was learned on program {msg.program_hash[:12] or '?'}, not on this "
            f"program {program_hash[:12]}; import it onto the program it came from"
        )
    layer = learning_layer(layers)
    try:
        weights = fmt.decode_tensor(msg.weights, f"{where} weights", dtype_code=(pb.INT8,))
        expect = (1, 1, layer.fan_in, layer.filters)
        if msg.layer != layer.name or weights.shape != expect:
            raise LearningError(
                f"{where}: layer '{msg.layer}' {weights.shape} does not match "
                f"'{layer.name}' {expect}"
            )
        if not np.all((weights == 0) | (weights == 1)):
            raise LearningError(f"{where}: weights are not binary")
        check_config(msg.learning, [*layers[:-1], _with_weights(layer, weights)])
    except AkidaError as exc:
        raise LearningError(str(exc)) from None
    cfg = pb.LearningConfig()
    cfg.CopyFrom(msg.learning)
    layer.set_variable("weights", weights)
    return cfg


def _with_weights(layer: Layer, weights: np.ndarray) -> Layer:
    import copy

    clone = copy.copy(layer)
    clone.variables = dict(layer.variables, weights=weights)
    return clone


def describe(layers: list[Layer], cfg: pb.LearningConfig | None) -> dict[str, Any] | None:
    """What `akida run` shows: None without learning, else the learning state."""
    if cfg is None or not cfg.enabled:
        return None
    layer = layers[-1]
    connections = np.count_nonzero(layer.get_variable("weights"), axis=(0, 1, 2))
    return {
        "layer": layer.name,
        "num_weights": cfg.num_weights,
        "num_classes": cfg.num_classes,
        "samples": int(cfg.samples),
        "neurons_learned": int(np.count_nonzero(connections)),
        "neurons": int(connections.size),
        "learned": bool(cfg.samples),
        "plasticity_min": float(plasticity_of(cfg, layer.filters).min(initial=1.0)),
    }
