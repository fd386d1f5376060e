"""Conversion: a quantized Keras model to an akida_rt Model (optionally mapped).

Each block's weight scale, input scale, bias, global-pooling factor and batch-norm fold
into one affine map `y = acc * A + B` on the integer accumulator; the quantized ReLU then
becomes integer thresholds (tools.folding). A final layer without activation keeps A and
B as `output_scale`/`output_offset`, so `predict()` returns the Keras model's outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from akida_rt.tools.block_layers import Bits, akida_layer
from akida_rt.tools.compatibility import check_graph, errors
from akida_rt.tools.folding import batchnorm_affine, fold_activation
from akida_rt.tools.graph import Block, describe_keras, group_blocks
from akida_rt.tools.quantizers import activation_step

from akida_rt.engine.integer import accumulator_bound
from akida_rt.errors import ConversionError, ModelError
from akida_rt.format import v1_rules
from akida_rt.format.layer_kinds import InputData
from akida_rt.format.layer_params import Pooling
from akida_rt.format.layers import Layer
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import MapMode
from akida_rt.model.model import Model

log = logging.getLogger(__name__)


@dataclass
class BlockWeights:
    """Integer weights of one block and the float scale of one accumulator unit."""

    weights: np.ndarray  # int8, Akida kernel layout
    pointwise: np.ndarray | None
    scale: np.ndarray  # float64 per output channel
    ones: np.ndarray  # accumulator of an all-ones input, per output channel
    bias: np.ndarray  # float bias per output channel


def _numpy(v: Any) -> np.ndarray:
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v)


def block_weights(block: Block) -> BlockWeights:
    """Integer weights from the block's quantizers (the very ops of the Keras forward)."""
    layer = block.main.layer
    kind = block.main.kind
    bias = _numpy(layer.bias).astype(np.float64) if getattr(layer, "use_bias", False) else None
    if kind == "separable":
        dw, s_dw = layer.depthwise_quantizer.numpy(layer.depthwise_kernel)
        pw, s_pw = layer.quantizer.numpy(layer.pointwise_kernel)
        filters = pw.shape[-1]
        scale = np.broadcast_to(s_dw * s_pw, (filters,)).astype(np.float64)
        ones = (dw.astype(np.int64).sum(axis=(0, 1))[:, 0] @ pw[0, 0].astype(np.int64)).astype(
            np.float64
        )
        weights, pointwise = dw, pw
    else:
        w, s = layer.quantizer.numpy(layer.kernel)
        if kind == "dense":
            w = w.reshape(1, 1, *w.shape)
        filters = w.shape[-1]
        scale = np.broadcast_to(s, (filters,)).astype(np.float64)
        ones = w.astype(np.int64).reshape(-1, filters).sum(axis=0).astype(np.float64)
        weights, pointwise = w, None
    return BlockWeights(
        weights, pointwise, scale, ones, bias if bias is not None else np.zeros(filters)
    )


def _affine(block: Block, bw: BlockWeights, in_scale: float, in_offset: float, positions: int):
    """(A, B) with `keras_value = acc * A + B` after pooling and batch-norm."""
    a = in_scale * bw.scale / positions
    b = in_offset * bw.scale * bw.ones + bw.bias
    if block.batchnorm is not None:
        bn = block.batchnorm.layer
        n = a.shape[0]
        gamma = _numpy(bn.gamma) if bn.scale else np.ones(n)
        beta = _numpy(bn.beta) if bn.center else np.zeros(n)
        ga, gb = batchnorm_affine(
            gamma, beta, _numpy(bn.moving_mean), _numpy(bn.moving_variance), bn.epsilon
        )
        a, b = ga * a, ga * b + gb
    return a, b


def _fill(layer: Layer, block: Block, bw: BlockWeights, a: np.ndarray, b: np.ndarray) -> None:
    """Set the layer's weights and threshold/step (or output dequantization) variables."""
    weights = bw.weights.copy()
    pointwise = None if bw.pointwise is None else bw.pointwise.copy()
    out = pointwise if pointwise is not None else weights
    layer.set_variable("weights", weights)
    if pointwise is not None:
        layer.set_variable("pointwise", pointwise)
    act = block.activation
    if act is None:
        layer.set_variable("output_scale", a.astype(np.float32))
        layer.set_variable("output_offset", b.astype(np.float32))
        return
    bits = int(act.config["bits"])
    step = activation_step(float(_numpy(act.layer.max_value)), bits)
    positions = 1
    if layer.pooling is Pooling.GlobalAvg:
        oh, ow = layer.conv_output_hw()
        positions = oh * ow
    bound, _ = accumulator_bound(layer)
    folded = fold_activation(a, b, step, bound, positions)
    if block.pool_before is not None and block.pool_before.kind == "maxpool" and np.any(a <= 0):
        raise ConversionError(
            f"{block.main.name}: max-pool before a batch-norm with non-positive scale in "
            f"{int(np.sum(a <= 0))} channel(s); fix: move the MaxPooling2D after the activation"
        )
    out[..., folded.negate] *= -1
    out[..., folded.constant] = 0
    layer.set_variable("weights", weights)
    if pointwise is not None:
        layer.set_variable("pointwise", pointwise)
    layer.act_shift = folded.act_shift
    layer.set_variable("act_scale", folded.act_scale)
    layer.set_variable("act_offset", folded.act_offset)
    layer.set_variable("output_scale", np.full(layer.filters, step, np.float32))


def convert(
    model: Any,
    *,
    input_scaling: tuple[float, float] | None = None,
    device: DeviceSpec | None = None,
    hw_only: bool = False,
    mode: MapMode = MapMode.AllNps,
    name: str | None = None,
    v1: bool = True,
) -> Model:
    """Convert a quantized Keras model into an akida_rt Model.

    Args:
        model: a serial Keras model of quantized blocks (tools.blocks or quantize_model).
        input_scaling: (a, b) with `data_train = (data_raw - b) / a`, when the model has no
            leading Rescaling layer (which is read instead). Default (1, 0).
        device: map the program onto this device description before returning it.
        hw_only: with `device`, refuse a mapping that needs software or several sequences.
        mode: the mapping mode.
        name: the program's name (default: the Keras model's).
        v1: give every layer the form AKD1000 programs carry (v1_rules.to_v1_form: integer
            thresholds, act_step in 1/16 steps, no bias), so that the program can be
            compiled for the chip. False keeps the exact fold of the Keras model, for
            software use; its small steps may have no AKD1000 equivalent.

    Raises:
        ConversionError: listing every incompatible layer with its fix.
    """
    infos, topology = describe_keras(model)
    graph = group_blocks(infos)
    graph.issues = topology + graph.issues
    if graph.input_scaling is not None and input_scaling is not None:
        raise ConversionError("input scaling given twice: the model has a Rescaling layer")
    scaling = graph.input_scaling or input_scaling or (1.0, 0.0)
    graph.input_scaling = scaling
    issues = errors(check_graph(graph, stage="quantized", device=device, hw_only=hw_only))
    if issues:
        raise ConversionError("cannot convert:\n" + "\n".join(f"  {i}" for i in issues))
    if graph.trailing_softmax:
        log.info("the final softmax is not converted: predict() returns its inputs (logits)")
    out = Model(name=name or model.name, input_scaling=(float(scaling[0]), float(scaling[1])))
    shape = graph.input_shape
    if graph.blocks[0].main.kind != "conv":
        s3 = (1, 1, shape[0]) if len(shape) == 1 else shape
        out.add(InputData("input", (int(s3[0]), int(s3[1]), int(s3[2])), 8))
    in_scale, in_offset = 1.0 / scaling[0], -scaling[1] / scaling[0]
    for i, block in enumerate(graph.blocks):
        layer = akida_layer(block, i, shape, Bits())
        out.add(layer)
        bw = block_weights(block)
        positions = 1
        if layer.pooling is Pooling.GlobalAvg:
            oh, ow = layer.conv_output_hw()
            positions = oh * ow
        a, b = _affine(block, bw, in_scale, in_offset, positions)
        _fill(layer, block, bw, a, b)
        if block.activation is not None:
            in_scale = activation_step(
                float(_numpy(block.activation.layer.max_value)),
                int(block.activation.config["bits"]),
            )
        in_offset = 0.0
    for i, layer in enumerate(out.layers if v1 else []):
        try:
            v1_rules.to_v1_form(layer, is_last=i == len(out.layers) - 1)
        except ModelError as exc:
            raise ConversionError(f"cannot convert: {exc}") from None
    out.validate()
    if device is not None:
        out.map(device, hw_only=hw_only, mode=mode)
    log.info("converted %s: %d layers", out.name, len(out.layers))
    return out
