"""Post-training quantization: a float Keras model plus calibration samples to a quantized one.

Weights get WeightQuantizers; every ReLU becomes a QuantizedReLU (one activation width for
the model, or per block) whose top level is the p-th percentile of that ReLU's positive
float activations on the calibration samples (robust normalization, Rueckauer et al.: the
maximum is dominated by outliers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import keras
import numpy as np
from akida_rt.tools.compatibility import check_graph, errors
from akida_rt.tools.graph import Block, describe_keras, group_blocks
from akida_rt.tools.quantized_layers import (
    QuantizedConv2D,
    QuantizedDense,
    QuantizedReLU,
    QuantizedSeparableConv2D,
)

from akida_rt.format.layer_params import ACTIVATION_BITS

log = logging.getLogger(__name__)
QUANTIZED: dict[str, Any] = {
    "Conv2D": QuantizedConv2D,
    "SeparableConv2D": QuantizedSeparableConv2D,
    "Dense": QuantizedDense,
}


def calibrate(
    model: keras.Model,
    samples: np.ndarray,
    percentile: float = 99.99,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
    spikes: Collection[str] = (),
) -> dict[str, float]:
    """The p-th percentile of each ReLU's positive outputs, by layer name.

    The ReLUs named in `spikes` will be 1-bit: such a ReLU fires at half its top value, so
    its value is twice the median of its positive outputs (a threshold the active half of
    its outputs reach). The percentile would put the threshold at half the range, where
    few fire (benchmarks/edge_learning.py's 128-unit spike layer, after fine-tuning: a
    median of 10-12 spikes per sample, against 30, and 5-shot accuracy 0.95-0.98 against
    0.98-0.997). A ReLU's own bound (ReLU6) caps the value; a ReLU that never fires gets
    its bound or 1.
    """
    relus = [
        layer
        for layer in model.layers
        if type(layer).__name__ in ("ReLU", "QuantizedReLU")
        or (
            type(layer).__name__ == "Activation"
            and layer.get_config()["activation"] in ("relu", "relu6")
        )
    ]
    if not relus:
        return {}
    probe = keras.Model(model.inputs[0], [layer.output for layer in relus])
    values: list[list[np.ndarray]] = [[] for _ in relus]
    for start in range(0, len(samples), batch_size):
        outs = probe(samples[start : start + batch_size].astype(np.float32), training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for acc, out in zip(values, outs, strict=True):
            arr = np.asarray(out).reshape(-1)
            acc.append(arr[arr > 0])
        if progress is not None:
            progress(min(batch_size, len(samples) - start))
    result = {}
    for layer, parts in zip(relus, values, strict=True):
        pos = np.concatenate(parts)
        cap = _bound(layer)
        if not pos.size:
            value = cap or 1.0
        elif layer.name in spikes:
            value = 2.0 * float(np.median(pos))
        else:
            value = float(np.percentile(pos, percentile))
        result[layer.name] = min(value, cap) if cap else value
        how = "2 x median, 1-bit" if layer.name in spikes else f"p{percentile:g}"
        log.info("calibrated %s: max_value %.4f (%s)", layer.name, result[layer.name], how)
    return result


def _bound(layer: Any) -> float | None:
    cfg = layer.get_config()
    if type(layer).__name__ == "QuantizedReLU" or cfg.get("activation") == "relu6":
        return float(cfg.get("max_value", 6.0))
    value = cfg.get("max_value")
    return None if value is None else float(value)


def quantize_model(
    model: keras.Model,
    samples: np.ndarray,
    *,
    weight_bits: int = 4,
    activation_bits: int = 4,
    layer_activation_bits: Mapping[str, int] | None = None,
    input_weight_bits: int = 8,
    percentile: float = 99.99,
    per_axis: bool = True,
    progress: Callable[[int], None] | None = None,
) -> keras.Model:
    """Quantize a float Keras model (conv/separable/dense + BN + ReLU blocks).

    Args:
        model: a serial float Keras model that passes the "float" compatibility check.
        samples: calibration inputs as the model takes them (e.g. raw uint8 images).
        weight_bits: weights of every layer but the first (1, 2, 4 or 8).
        activation_bits: 1, 2 or 4.
        layer_activation_bits: activation bits of single blocks, by the name of the
            block's Conv2D/SeparableConv2D/Dense layer or of its ReLU, overriding
            `activation_bits` there. `{"spikes": 1}` makes the block "spikes" a spike
            generator (1-bit activations) whose spikes quantization-aware training then
            shapes, the backbone an edge-learning head needs
            (akida_rt.tools.edge_learning.add_learning_head).
        input_weight_bits: weights of the first layer (it sees 8-bit input).
        percentile: p of the robust activation range (100 is the maximum).
        per_axis: per-output-channel weight scales.
        progress: called with the number of samples processed, per calibration batch.

    Returns:
        A new Keras model with quantized layers; the float model is unchanged.
    """
    done = [layer for layer in model.layers if type(layer) in QUANTIZED.values()]
    if done:
        raise ValueError(
            f"cannot quantize: model '{model.name}' is already quantized (layer "
            f"'{done[0].name}' is {type(done[0]).__name__}); pass the float model"
        )
    infos, topology = describe_keras(model)
    graph = group_blocks(infos)
    graph.issues = topology + graph.issues
    bad = errors(check_graph(graph, stage="float"))
    if bad:
        raise ValueError("cannot quantize:\n" + "\n".join(f"  {i}" for i in bad))
    first = graph.blocks[0].main.name
    act_bits = _activation_bits(graph.blocks, activation_bits, layer_activation_bits or {})
    spikes = [name for name, bits in act_bits.items() if bits == 1]
    ranges = calibrate(model, samples, percentile, progress=progress, spikes=spikes)
    x = inputs = keras.Input(model.inputs[0].shape[1:], name=model.inputs[0].name)
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            continue
        config = layer.get_config()
        if cls in QUANTIZED:
            bits = input_weight_bits if layer.name == first else weight_bits
            new = QUANTIZED[cls].from_config({**config, "weight_bits": bits, "per_axis": per_axis})
        elif layer.name in ranges:
            new = QuantizedReLU(
                act_bits.get(layer.name, activation_bits), ranges[layer.name], name=layer.name
            )
        else:
            new = type(layer).from_config(config)
        x = new(x)
        if layer.weights and not isinstance(new, QuantizedReLU):
            new.set_weights(layer.get_weights())
    log.info(
        "quantized %s: weights %d-bit (first %d-bit), activations %d-bit%s",
        model.name,
        weight_bits,
        input_weight_bits,
        activation_bits,
        "".join(f", {k} {v}-bit" for k, v in (layer_activation_bits or {}).items()),
    )
    return keras.Model(inputs, x, name=model.name)


def _activation_bits(
    blocks: list[Block], default: int, by_name: Mapping[str, int]
) -> dict[str, int]:
    """Activation bits by ReLU layer name; `by_name` keys may name the ReLU or its block."""
    bits: dict[str, int] = {}
    known: set[str] = set()
    for block in blocks:
        if block.activation is None:
            continue
        relu, main = block.activation.name, block.main.name
        known.update((relu, main))
        chosen = [by_name[k] for k in (main, relu) if k in by_name]
        if len(chosen) == 2 and chosen[0] != chosen[1]:
            raise ValueError(f"activation bits of '{main}' given twice: {main!r} and {relu!r}")
        bits[relu] = int(chosen[0]) if chosen else int(default)
        if bits[relu] not in ACTIVATION_BITS:
            raise ValueError(f"activation bits {bits[relu]} of '{main}' not in {ACTIVATION_BITS}")
    unknown = sorted(set(by_name) - known)
    if unknown:
        raise ValueError(
            f"layer_activation_bits names no block with an activation: {', '.join(unknown)} "
            f"(blocks: {', '.join(b.main.name for b in blocks if b.activation is not None)})"
        )
    return bits
