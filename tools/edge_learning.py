"""Edge-learning heads for converted programs: a learnable 1-bit FullyConnected head in
place of the classifier, fed by a spike generator (a layer trained with 1-bit activations,
or a multi-bit layer thresholded). Core only (no TensorFlow): it works on akida_rt Models.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from akida_rt.errors import LearningError
from akida_rt.format.layer_kinds import FullyConnected
from akida_rt.format.layers import Layer
from akida_rt.learning.edge import AkidaUnsupervised
from akida_rt.model.model import Model
from akida_rt.model.placement import spikes_of

log = logging.getLogger(__name__)


def to_spike_generator(layer: Layer, level: int = 1) -> None:
    """Make a multi-bit `layer` emit 1-bit spikes: it fires when its trained activation
    would reach `level` (1 = any non-zero activation), in place. The threshold moves by
    whole levels, so spikes are exactly `trained_level >= level`. The fallback for a
    backbone whose layer was not trained at 1 bit (see add_learning_head)."""
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
    """A new model: `model`'s layers but the last, the one before it as the spike generator,
    and a learnable head of `num_classes * neurons_per_class` neurons compiled with
    AkidaUnsupervised.

    The spike generator is best trained as one, as BrainChip's guide does: quantize the
    backbone with that layer at 1 bit (`quantize_model(..., layer_activation_bits={"spikes":
    1})` or `pipelines.Recipe(layer_activation_bits=...)`) and fine-tune it (QAT), so the
    backbone learns to emit discriminative binary spikes; the converted layer then has
    1-bit activations and feeds the head as it is. A multi-bit layer (a backbone not
    trained that way, such as the sample program) is thresholded instead: it fires where
    its trained activation reaches `spike_level` (to_spike_generator).

    `num_weights` defaults to three quarters of the median number of spikes per sample of
    `samples`: a neuron learning one sample then takes exactly `num_weights` of its spikes
    for almost every sample, so neurons compare on equal terms (a neuron holding all spikes
    of a dense sample outvotes one of a sparse sample).

    Measured on benchmarks/edge_learning.py (5-shot accuracy on digits 5-9, backbone
    trained on 0-4 / on 0-9): a 4-bit layer thresholded at level 1 with the median gave
    0.790 / 0.957, at level 3 with 3/4 of the median 0.817 / 0.973; the layer trained at
    1 bit with 3/4 of the median gives 0.756 / 0.996 (a binary code trained on five
    classes says less about unseen ones; trained on all ten it separates them best).

    Args:
        model: a converted program whose second-to-last layer has an activation.
        num_classes: classes to learn (labelled mode).
        samples: uint8 inputs of the model that the spike count is measured on.
        neurons_per_class: neurons per class.
        spike_level: for a multi-bit layer only, the trained activation level at which a
            spike fires (default: a fifth of the layer's top level, 3 of a 4-bit layer's
            15; at least 1). Low levels fire on weak activations that many classes share.
        num_weights: connections per neuron (default: 3/4 of the median spike count).
        seed: kept in the learning configuration (the rule chooses connections from the
            state the chip holds, not from a seed).
        optimizer: other AkidaUnsupervised parameters.

    Raises:
        LearningError: a model too short, a layer without activation, or `spike_level`
            given for a layer that already emits 1-bit spikes.
    """
    source = Model(model.to_bytes())  # fresh layers: `model` is left as it is
    layers = source.layers
    if len(layers) < 3:
        raise LearningError("the model needs a backbone, a spike layer and a head")
    spikes = layers[-2]
    if not spikes.activation:
        raise LearningError(f"'{spikes.name}' has no activation to turn into spikes")
    if spikes.activation_bits == 1:
        if spike_level is not None:
            raise LearningError(
                f"'{spikes.name}' already emits 1-bit spikes (trained as a spike generator); "
                "spike_level applies to a multi-bit layer only: leave it out"
            )
        how = "trained 1-bit layer"
    else:
        if spike_level is None:
            spike_level = max(1, round((2**spikes.activation_bits - 1) / 5))
        to_spike_generator(spikes, spike_level)
        how = f"thresholded at level {spike_level}"
    head = FullyConnected(f"{layers[-1].name}_learning", num_classes * neurons_per_class,
                          weight_bits=1, activation=False)  # fmt: skip
    out = Model(layers=[*layers[:-1], head], name=f"{source.name}_edge",
                input_scaling=source.input_scaling)  # fmt: skip
    head.set_variable("weights", np.zeros((1, 1, head.fan_in, head.filters), np.int8))
    if num_weights is None:
        counts = spikes_of(out, samples).sum(axis=1)
        num_weights = max(1, min(int(0.75 * np.median(counts)), head.fan_in))
        log.info("num_weights %d: 3/4 of the median spike count of %d samples (%s)",
                 num_weights, len(counts), how)  # fmt: skip
    out.compile(AkidaUnsupervised(num_weights, num_classes=num_classes, **optimizer), seed=seed)
    return out
