"""The edge-learning rule of the last FullyConnected layer, as one pure function.

The software backend (akida_rt.learning.edge) and the simulated chip's firmware both call
`learn`, so learning gives bit-identical weights wherever it runs. docs/semantics.md,
section 8, states the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from akida_rt.native import _kernels

NO_LABEL = -1


@dataclass(frozen=True)
class RuleParams:
    """The compiled learning parameters (AkidaUnsupervised) plus the neuron-choice seed."""

    num_weights: int
    num_classes: int  # 0: unlabelled
    initial_plasticity: float
    min_plasticity: float
    plasticity_decay: float
    learning_competition: float
    seed: int = 0


def learn(
    params: RuleParams,
    weights: np.ndarray,
    plasticity: np.ndarray,
    spikes: np.ndarray,
    labels: np.ndarray,
    first_sample: int,
) -> np.ndarray:
    """Learn from `spikes` in order, updating `weights` and `plasticity` in place.

    For each sample: its potentials (the weights of its active inputs, summed per neuron);
    the neuron that learns (of the label's group of num_units / num_classes neurons, or of
    all): the best-matching neuron that has connections if it competes (potential above
    (1 - learning_competition) * num_weights) or no neuron is fresh, else the first fresh
    one; then up to ceil(plasticity * num_weights) of its inactive connections move to
    active inputs (free connections first, then swaps), chosen by a SplitMix64 rank of
    (seed, sample, input); then its plasticity decays by plasticity_decay *
    initial_plasticity, not below min_plasticity. One C loop (akida_rt.native._kernels.learn);
    tests/native_reference.py keeps the numpy form.

    Args:
        params: the compiled parameters.
        weights: (K, U) binary uint8 weights of the learning layer (K inputs, U neurons),
            C-contiguous.
        plasticity: float32 per neuron.
        spikes: (N, K) binary inputs of the learning layer.
        labels: N labels (int64), NO_LABEL in unlabelled mode.
        first_sample: how many samples the layer had learned before these.

    Returns:
        (N, U) int64 potentials of each sample, computed before it was learned.
    """
    out = np.empty((spikes.shape[0], weights.shape[1]), np.int64)
    active = np.ascontiguousarray(spikes != 0).view(np.uint8)
    rule = (params.num_weights, params.num_classes, params.initial_plasticity,
            params.min_plasticity, params.plasticity_decay, params.learning_competition,
            params.seed)  # fmt: skip
    _kernels.learn(weights, plasticity, active, np.ascontiguousarray(labels, np.int64), out,
                   rule, first_sample)  # fmt: skip
    return out


@dataclass
class LearnedWeights:
    """A learning layer's state as a device reads it back."""

    weights: np.ndarray  # (K, U) binary uint8
    plasticity: np.ndarray  # float32 per neuron
    samples: int  # samples learned since compile
