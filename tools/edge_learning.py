"""Edge-learning heads for converted programs: a trained layer turned into a spike
generator (1-bit activations) and a learnable 1-bit FullyConnected head in place of the
classifier. Core only (no TensorFlow): it works on akida_rt Models.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from akida_rt.errors import LearningError
from akida_rt.layers import FullyConnected, Layer
from akida_rt.learning import AkidaUnsupervised, spikes_of
from akida_rt.model import Model

log = logging.getLogger(__name__)


def to_spike_generator(layer: Layer, level: int = 1) -> None:
    """Make `layer` emit 1-bit spikes: it fires when its trained activation would reach
    `level` (1 = any non-zero activation), in place. The threshold moves by whole levels,
    so spikes are exactly `trained_level >= level`."""
    if not layer.activation:
        raise LearningError(f"'{layer.name}' has no activation to turn into spikes")
    top = 2**layer.activation_bits - 1
    if not 1 <= level <= top:
        raise LearningError(f"spike level {level} is not in 1..{top} for '{layer.name}'")
    offset = layer.get_variable("act_offset").astype(np.int64)
    scale = layer.get_variable("act_scale").astype(np.int64)
    layer.set_variable("act_offset", offset - (level - 1) * (1 << layer.act_shift))
    layer.set_variable("act_scale", scale)
    layer.activation_bits = 1


def add_learning_head(
    model: Model,
    num_classes: int,
    samples: np.ndarray,
    *,
    neurons_per_class: int = 10,
    spike_level: int | None = None,
    num_weights: int | None = None,
    seed: int = 0,
    **optimizer: Any,
) -> Model:
    """A new model: `model`'s layers but the last, the one before it turned into a spike
    generator, and a learnable head of `num_classes * neurons_per_class` neurons compiled
    with AkidaUnsupervised. `num_weights` defaults to three quarters of the median number
    of spikes per sample of `samples`: a neuron learning one sample then takes exactly
    `num_weights` of its spikes for almost every sample, so neurons compare on equal terms
    (a neuron holding all spikes of a dense sample outvotes one of a sparse sample).

    The defaults were measured on benchmarks/edge_learning.py (5-shot accuracy on digits
    5-9, backbone trained on 0-4 / on 0-9): spike level 1 and the median gave 0.790 / 0.957;
    level 3 and three quarters of it give 0.817 / 0.973.

    Args:
        model: a converted program whose second-to-last layer has an activation.
        num_classes: classes to learn (labelled mode).
        samples: uint8 inputs of the model that the spike count is measured on.
        neurons_per_class: neurons per class.
        spike_level: the trained activation level at which a spike fires (default: a
            fifth of the layer's top level, 3 of a 4-bit layer's 15; at least 1). Low
            levels fire on weak activations that many classes share.
        num_weights: connections per neuron (default: 3/4 of the median spike count).
        seed: seeds the rule's choice of connections.
        optimizer: other AkidaUnsupervised parameters.
    """
    source = Model(model.to_bytes())  # fresh layers: `model` is left as it is
    layers = source.layers
    if len(layers) < 3:
        raise LearningError("the model needs a backbone, a spike layer and a head")
    if spike_level is None:
        spike_level = max(1, round((2 ** layers[-2].activation_bits - 1) / 5))
    to_spike_generator(layers[-2], spike_level)
    head = FullyConnected(f"{layers[-1].name}_learning", num_classes * neurons_per_class,
                          weight_bits=1, activation=False)  # fmt: skip
    out = Model(layers=[*layers[:-1], head], name=f"{source.name}_edge",
                input_scaling=source.input_scaling)  # fmt: skip
    head.set_variable("weights", np.zeros((1, 1, head.fan_in, head.filters), np.int8))
    if num_weights is None:
        counts = spikes_of(out, samples).sum(axis=1)
        num_weights = max(1, min(int(0.75 * np.median(counts)), head.fan_in))
        log.info("num_weights %d: 3/4 of the median spike count of %d samples (level %d)",
                 num_weights, len(counts), spike_level)  # fmt: skip
    out.compile(AkidaUnsupervised(num_weights, num_classes=num_classes, **optimizer), seed=seed)
    return out
