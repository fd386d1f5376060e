"""The edge-learning rule of the last FullyConnected layer, as one pure function.

The software backend (akida_rt.learning.edge) and the simulated chip's firmware both call
`learn`, so learning gives bit-identical weights wherever it runs. docs/semantics.md,
section 8, states the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from akida_rt.format.v1_rules import learning_fraction, plasticity_of_swaps, swaps_of_plasticity
from akida_rt.native import _kernels

NO_LABEL = -1


@dataclass(frozen=True)
class RuleParams:
    """The learning parameters as the AKD1000's learning FNP3 holds them: whole weights.

    Attributes:
        num_weights: connections each neuron keeps.
        num_classes: 0 when unlabelled.
        min_swaps: the floor of a neuron's plasticity, in connections it may move.
        decay_swaps: what one learning step takes off a neuron's plasticity.
        competition_bar: a learned neuron takes a sample from a fresh one when its
            potential is above this.
    """

    num_weights: int
    num_classes: int
    min_swaps: int
    decay_swaps: int
    competition_bar: int


def initial_swaps(num_weights: int, initial_plasticity: float) -> int:
    """A fresh neuron's plasticity in connections: initial_plasticity x num_weights,
    rounded half up (what BrainChip's compile gives `thswap`)."""
    return math.floor(learning_fraction(initial_plasticity) * num_weights + 0.5)


@lru_cache(maxsize=256)  # a fit asks for the same few sets: four float-to-text turns saved
def rule_params(
    num_weights: int,
    num_classes: int,
    initial_plasticity: float,
    min_plasticity: float,
    plasticity_decay: float,
    learning_competition: float,
) -> RuleParams:
    """The chip's whole-weight parameters of AkidaUnsupervised's fractions, computed as
    BrainChip's compiler writes the learning FNP3's registers (measured on akida 2.19.3
    programs; tests/test_learning_rule_params.py): the floor ceil(min x num_weights), the
    step ceil(decay x initial swaps), the bar (1 - competition) x num_weights rounded
    half up, in double precision from each fraction's shortest decimal (what akida is
    given: v1_rules.learning_fraction)."""
    nw = int(num_weights)
    decay = learning_fraction(plasticity_decay)
    return RuleParams(
        num_weights=nw,
        num_classes=int(num_classes),
        min_swaps=math.ceil(learning_fraction(min_plasticity) * nw),
        decay_swaps=math.ceil(decay * initial_swaps(nw, initial_plasticity)),
        competition_bar=math.floor((1.0 - learning_fraction(learning_competition)) * nw + 0.5),
    )


def swaps_of(plasticity: np.ndarray, num_weights: int) -> np.ndarray:
    """int32 connections each neuron may move, of float32 plasticity (its budget)."""
    swaps = swaps_of_plasticity(plasticity, num_weights)  # >= 0: plasticity is checked 0..1
    return np.minimum(swaps, num_weights, out=swaps)


def plasticity_of(swaps: np.ndarray, num_weights: int) -> np.ndarray:
    """float32 plasticity that stands for `swaps` (the inverse of swaps_of)."""
    table = _plasticity_table(max(int(num_weights), 1))
    return table[np.minimum(swaps, len(table) - 1)]  # swaps >= 0: the rule's, thswap's


@lru_cache(maxsize=64)
def _plasticity_table(num_weights: int) -> np.ndarray:
    table = plasticity_of_swaps(np.arange(num_weights + 1), num_weights)
    table.flags.writeable = False
    return table


def learn(
    params: RuleParams,
    weights: np.ndarray,
    swaps: np.ndarray,
    spikes: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """Learn from `spikes` in order, updating `weights` and `swaps` in place.

    For each sample: its potentials (the weights of its active inputs, summed per neuron);
    the neuron that learns (of the label's group of num_units / num_classes neurons, or of
    all): the best-matching neuron that has connections if it competes (potential above
    competition_bar) or no neuron is fresh, else the first fresh one; then up to its
    swaps of its inactive connections move to active inputs (free connections first, then
    swaps), chosen by a SplitMix64 rank salted by what the chip holds (the winner, its
    connections and the sample's spikes); then its swaps drop by decay_swaps, to
    min_swaps. Nothing else carries from sample to sample, so the state the chip's
    learning memory holds (weights and swaps) is the whole state. One C loop
    (akida_rt.native._kernels.learn); tests/native_reference.py keeps the numpy form.

    Args:
        params: the parameters in whole weights.
        weights: (K, U) binary uint8 weights of the learning layer (K inputs, U neurons),
            C-contiguous.
        swaps: int32 per neuron, the connections it may still move (its plasticity).
        spikes: (N, K) binary inputs of the learning layer.
        labels: N labels (int64), NO_LABEL in unlabelled mode.

    Returns:
        (N, U) int64 potentials of each sample, computed before it was learned.
    """
    out = np.empty((spikes.shape[0], weights.shape[1]), np.int64)
    active = np.ascontiguousarray(spikes != 0).view(np.uint8)
    rule = (params.num_weights, params.num_classes, params.min_swaps, params.decay_swaps,
            params.competition_bar)  # fmt: skip
    _kernels.learn(weights, swaps, active, np.ascontiguousarray(labels, np.int64), out, rule)
    return out


@dataclass
class LearnedWeights:
    """A learning layer's state as a device reads it back."""

    weights: np.ndarray  # (K, U) binary uint8
    plasticity: np.ndarray  # float32 per neuron
    samples: int  # samples learned since compile
