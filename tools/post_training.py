"""Post-training quantization: a float Keras model plus calibration samples to a quantized one.

Weights get WeightQuantizers; every ReLU becomes a QuantizedReLU whose top level is the
p-th percentile of that ReLU's positive float activations on the calibration samples
(robust normalization, Rueckauer et al.: the maximum is dominated by outliers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from akida_rt.tools.compatibility import check_graph, errors
from akida_rt.tools.graph import describe_keras, group_blocks
from akida_rt.tools.quantized_layers import (
    QuantizedConv2D,
    QuantizedDense,
    QuantizedReLU,
    QuantizedSeparableConv2D,
)

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
) -> dict[str, float]:
    """The p-th percentile of each ReLU's positive outputs, by layer name.

    A ReLU's own bound (ReLU6) caps the value; a ReLU that never fires gets its bound or 1.
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
        value = float(np.percentile(pos, percentile)) if pos.size else (cap or 1.0)
        result[layer.name] = min(value, cap) if cap else value
        log.info("calibrated %s: max_value %.4f (p%g)", layer.name, result[layer.name], percentile)
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
    ranges = calibrate(model, samples, percentile, progress=progress)
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
            new = QuantizedReLU(activation_bits, ranges[layer.name], name=layer.name)
        else:
            new = type(layer).from_config(config)
        x = new(x)
        if layer.weights and not isinstance(new, QuantizedReLU):
            new.set_weights(layer.get_weights())
    log.info(
        "quantized %s: weights %d-bit (first %d-bit), activations %d-bit",
        model.name,
        weight_bits,
        input_weight_bits,
        activation_bits,
    )
    return keras.Model(inputs, x, name=model.name)
