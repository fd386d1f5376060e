"""The edge-learning rule of the last FullyConnected layer, as one pure numpy function.

The software backend (akida_rt.learning.edge) and the simulated chip's firmware both call
`learn`, so learning gives bit-identical weights wherever it runs. docs/semantics.md,
section 8, states the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NO_LABEL = -1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


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


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def priority(seed: int, sample: int, index: np.ndarray) -> np.ndarray:
    """Pseudo-random uint64 rank of input `index` at learning step `sample`."""
    base = mix64(np.array([seed & (2**64 - 1)], np.uint64))[0]
    step = mix64(np.array([sample & (2**64 - 1)], np.uint64))[0]
    return mix64((index.astype(np.uint64) * _GOLDEN) ^ base ^ step)


def _pick(candidates: np.ndarray, count: int, seed: int, sample: int, stream: int) -> np.ndarray:
    """`count` of `candidates` (input indices), those of lowest priority (ties: lower index)."""
    if count >= candidates.size:
        return candidates
    keys = priority(seed, sample, candidates * 2 + stream)
    order = np.lexsort((candidates, keys))
    return candidates[order[:count]]


def neuron_group(params: RuleParams, units: int, label: int) -> range:
    """The neurons allowed to learn a sample of `label` (all of them when unlabelled)."""
    if params.num_classes == 0:
        return range(units)
    per = units // params.num_classes
    return range(label * per, (label + 1) * per)


def choose_winner(
    params: RuleParams, potentials: np.ndarray, connections: np.ndarray, group: range
) -> int:
    """The neuron of `group` that learns: the best-matching learned neuron if it competes
    (potential above (1 - learning_competition) * num_weights) or no neuron is fresh,
    otherwise the first fresh one (a neuron without connections)."""
    idx = np.arange(group.start, group.stop)
    learned = idx[connections[idx] > 0]
    fresh = idx[connections[idx] == 0]
    if learned.size:
        best = int(learned[int(np.argmax(potentials[learned]))])
        bar = (1.0 - float(np.float32(params.learning_competition))) * params.num_weights
        if fresh.size == 0 or potentials[best] > bar:
            return best
    return int(fresh[0])


def decay(params: RuleParams, plasticity: np.float32) -> np.float32:
    """Plasticity after one learning step: down by decay * initial, not below the minimum,
    and never up."""
    step = np.float32(params.plasticity_decay) * np.float32(params.initial_plasticity)
    floor = min(np.float32(params.min_plasticity), plasticity)
    return np.float32(max(np.float32(plasticity - step), floor))


def learn(
    params: RuleParams,
    weights: np.ndarray,
    plasticity: np.ndarray,
    spikes: np.ndarray,
    labels: np.ndarray,
    first_sample: int,
) -> np.ndarray:
    """Learn from `spikes` in order, updating `weights` and `plasticity` in place.

    Args:
        params: the compiled parameters.
        weights: (K, U) binary uint8 weights of the learning layer (K inputs, U neurons).
        plasticity: float32 per neuron.
        spikes: (N, K) binary inputs of the learning layer.
        labels: N labels (int64), NO_LABEL in unlabelled mode.
        first_sample: how many samples the layer had learned before these.

    Returns:
        (N, U) int64 potentials of each sample, computed before it was learned.
    """
    n = spikes.shape[0]
    units = weights.shape[1]
    out = np.zeros((n, units), np.int64)
    active_all = spikes.astype(bool)
    for i in range(n):
        active = active_all[i]
        pot = weights[active].sum(axis=0, dtype=np.int64)
        out[i] = pot
        connections = weights.sum(axis=0, dtype=np.int64)
        group = neuron_group(params, units, int(labels[i]))
        winner = choose_winner(params, pot, connections, group)
        sample = first_sample + i
        col = weights[:, winner].astype(bool)
        budget = math.ceil(np.float32(plasticity[winner]) * np.float32(params.num_weights))
        adds = np.flatnonzero(active & ~col)
        drops = np.flatnonzero(col & ~active)
        free = params.num_weights - int(connections[winner])
        moves = min(budget, adds.size)
        fill = min(moves, max(free, 0))
        swaps = min(moves - fill, drops.size)
        if fill + swaps:
            weights[_pick(adds, fill + swaps, params.seed, sample, 0), winner] = 1
            weights[_pick(drops, swaps, params.seed, sample, 1), winner] = 0
        plasticity[winner] = decay(params, plasticity[winner])
    return out


@dataclass
class LearnedWeights:
    """A learning layer's state as a device reads it back."""

    weights: np.ndarray  # (K, U) binary uint8
    plasticity: np.ndarray  # float32 per neuron
    samples: int  # samples learned since compile
