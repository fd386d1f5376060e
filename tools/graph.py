"""A Keras model as plain data: layer descriptions grouped into Akida blocks.

`describe_keras` reads a Keras model without importing TensorFlow itself (it only walks the
objects it is given); `group_blocks` is pure Python, so the checker's rules are testable
on hand-written descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAIN_KINDS = ("conv", "separable", "dense")
ACT_KINDS = ("relu", "qrelu")

# Keras class name -> kind. Unlisted classes are "unsupported".
KIND_BY_CLASS = {
    "InputLayer": "input",
    "Rescaling": "rescaling",
    "Conv2D": "conv",
    "QuantizedConv2D": "conv",
    "SeparableConv2D": "separable",
    "QuantizedSeparableConv2D": "separable",
    "Dense": "dense",
    "QuantizedDense": "dense",
    "BatchNormalization": "batchnorm",
    "ReLU": "relu",
    "QuantizedReLU": "qrelu",
    "MaxPooling2D": "maxpool",
    "GlobalAveragePooling2D": "gap",
    "Flatten": "flatten",
    "Dropout": "dropout",
    "Softmax": "softmax",
}
FIXES = {
    "DepthwiseConv2D": "use SeparableConv2D (depthwise then pointwise, no activation between)",
    "AveragePooling2D": "use 2x2 MaxPooling2D after the activation, or GlobalAveragePooling2D "
    "right after the convolution",
    "Add": "residual connections are not supported: make the model a plain chain",
    "Concatenate": "parallel branches are not supported: make the model a plain chain",
    "Reshape": "use Flatten before a Dense layer",
    "LeakyReLU": "use ReLU (bounded, e.g. ReLU(6.0)) or QuantizedReLU",
}


@dataclass
class Issue:
    """One compatibility problem: where, what, and how to fix it."""

    layer: str
    rule: str
    message: str
    fix: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.layer}: {self.message}; fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return {
            "layer": self.layer,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass
class LayerInfo:
    """One Keras layer as plain data."""

    name: str
    kind: str
    cls: str
    config: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None  # without the batch axis
    output_shape: tuple[int, ...] | None = None
    layer: Any = None  # the Keras layer (None for hand-written descriptions)


@dataclass
class Block:
    """An Akida layer's worth of Keras layers: main [pool] [batch-norm] [activation] [pool]."""

    main: LayerInfo
    pool_before: LayerInfo | None = None  # max-pool or global average pool before the BN
    batchnorm: LayerInfo | None = None
    activation: LayerInfo | None = None
    pool_after: LayerInfo | None = None  # max-pool after the activation
    flattened: bool = False  # a Flatten precedes the main layer

    @property
    def pool(self) -> LayerInfo | None:
        return self.pool_before or self.pool_after

    @property
    def layers(self) -> list[LayerInfo]:
        parts = (self.main, self.pool_before, self.batchnorm, self.activation, self.pool_after)
        return [p for p in parts if p is not None]


@dataclass
class Graph:
    """The grouped model: input scaling, blocks and the problems found while grouping."""

    input_shape: tuple[int, ...]
    blocks: list[Block]
    issues: list[Issue]
    input_scaling: tuple[float, float] | None = None  # (a, b): train = (raw - b) / a
    trailing_softmax: bool = False


def _shape(shape: Any) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if isinstance(shape, list) and shape and isinstance(shape[0], tuple | list):
        shape = shape[0]
    return tuple(int(d) if d is not None else -1 for d in tuple(shape)[1:])


def _kind(cls: str, config: dict[str, Any]) -> str:
    if cls == "Activation":
        act = config.get("activation")
        name = act if isinstance(act, str) else str(act)
        return {"relu": "relu", "relu6": "relu", "softmax": "softmax", "linear": "identity"}.get(
            name, "unsupported"
        )
    return KIND_BY_CLASS.get(cls, "unsupported")


def describe_keras(model: Any) -> tuple[list[LayerInfo], list[Issue]]:
    """Plain descriptions of a Keras model's layers, plus problems of its topology."""
    infos: list[LayerInfo] = []
    issues: list[Issue] = []
    previous = None
    # A Sequential is a chain by construction; its layers may hold a node per build (one
    # more after loading from .keras), so the node check below applies to functional ones.
    sequential = type(model).__name__ == "Sequential"
    for layer in model.layers:
        cls = type(layer).__name__
        config = layer.get_config()
        if cls == "Activation" and config.get("activation") == "relu6":
            config = {**config, "max_value": 6.0}
        inp = None if cls == "InputLayer" else layer.input
        in_shape = (
            _shape(inp[0].shape if isinstance(inp, list | tuple) else inp.shape)
            if inp is not None
            else None
        )
        out_shape = _shape(layer.output.shape)
        infos.append(
            LayerInfo(layer.name, _kind(cls, config), cls, config, in_shape, out_shape, layer)
        )
        nodes = getattr(layer, "_inbound_nodes", [])
        if cls != "InputLayer" and nodes and not sequential:
            parents = [t._keras_history.operation for t in nodes[0].input_tensors]
            chained = len(parents) == 1 and (
                parents[0] is previous
                or (previous is None and type(parents[0]).__name__ == "InputLayer")
            )
            if len(nodes) > 1 or not chained:
                issues.append(
                    Issue(
                        layer.name,
                        "serial",
                        "the model is not a serial feed-forward chain at this layer",
                        FIXES.get(cls, "make every layer take the previous layer's output only"),
                    )
                )
        previous = layer
    if len(getattr(model, "outputs", [None])) != 1:
        issues.append(
            Issue(model.name, "serial", "the model has several outputs", "keep one output")
        )
    return infos, issues


def _rescaling(info: LayerInfo, issues: list[Issue]) -> tuple[float, float] | None:
    scale, offset = info.config.get("scale", 1.0), info.config.get("offset", 0.0)
    if not isinstance(scale, int | float) or not isinstance(offset, int | float) or scale == 0:
        issues.append(
            Issue(
                info.name, "input-scaling", "per-channel or zero rescaling", "use one scalar scale"
            )
        )
        return None
    return 1.0 / float(scale), -float(offset) / float(scale)


def group_blocks(infos: list[LayerInfo]) -> Graph:
    """Group layer descriptions into blocks, recording order and placement problems."""
    issues: list[Issue] = []
    blocks: list[Block] = []
    scaling = None
    softmax = False
    flatten_pending = False
    input_shape: tuple[int, ...] = ()
    for info in infos:
        k = info.kind
        if k == "input":
            input_shape = info.output_shape or ()
            continue
        if not input_shape and info.input_shape:
            input_shape = info.input_shape
        if k in ("dropout", "identity"):
            continue
        if softmax:
            issues.append(
                Issue(info.name, "order", "a layer follows the softmax", "end on softmax")
            )
            continue
        if k == "unsupported":
            fix = FIXES.get(info.cls, "remove it or replace it with a supported layer")
            issues.append(Issue(info.name, "layer-type", f"{info.cls} is not supported", fix))
            continue
        if k == "rescaling":
            if blocks or scaling is not None:
                issues.append(
                    Issue(
                        info.name, "order", "Rescaling after the first layer", "rescale inputs only"
                    )
                )
            else:
                scaling = _rescaling(info, issues)
            continue
        if k in MAIN_KINDS:
            blocks.append(Block(info, flattened=flatten_pending))
            flatten_pending = False
            continue
        if k == "flatten":
            flatten_pending = True
            continue
        if k == "softmax":
            softmax = True
            continue
        if not blocks:
            issues.append(
                Issue(info.name, "order", f"{info.cls} before any conv/dense layer", "remove it")
            )
            continue
        _attach(blocks[-1], info, issues)
    if flatten_pending:
        issues.append(Issue("Flatten", "order", "Flatten at the end of the model", "remove it"))
    return Graph(input_shape, blocks, issues, scaling, softmax)


def _attach(block: Block, info: LayerInfo, issues: list[Issue]) -> None:
    """Place a BN / activation / pooling layer into the open block, or record why not."""
    k, name = info.kind, info.name
    where = block.main.name
    if k == "batchnorm":
        if block.batchnorm is not None or block.activation is not None or block.pool_after:
            issues.append(
                Issue(
                    name,
                    "order",
                    f"batch-norm after the activation of '{where}'",
                    "put the batch-norm between the conv/dense layer and its activation",
                )
            )
        else:
            block.batchnorm = info
    elif k in ACT_KINDS:
        if block.activation is not None:
            issues.append(Issue(name, "order", f"second activation in '{where}'", "remove one"))
        else:
            block.activation = info
    elif k == "gap":
        if block.activation is not None or block.batchnorm is not None or block.pool:
            issues.append(
                Issue(
                    name,
                    "order",
                    "global average pooling after the batch-norm or activation",
                    "move GlobalAveragePooling2D right after the convolution (the chip sums "
                    "potentials before the activation)",
                )
            )
        else:
            block.pool_before = info
    elif k == "maxpool":
        if block.pool is not None:
            issues.append(
                Issue(name, "order", f"second pooling in '{where}'", "pool once per block")
            )
        elif block.activation is not None:
            block.pool_after = info
        elif block.batchnorm is not None:
            issues.append(
                Issue(
                    name,
                    "order",
                    "max-pool between batch-norm and activation",
                    "move the MaxPooling2D after the activation",
                )
            )
        else:
            block.pool_before = info
