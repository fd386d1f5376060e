"""The simulated AKD1000's learning on a labelled inference: the FNP3 weight SRAM changes.

A labelled descriptor (learning class = label + 1) on a program whose learning layer has
its learning registers loaded runs the layers before the learning FNP3, applies
akida_rt's learning rule (akida_rt.engine.learning_rule, the software backend's) and
writes the learned weights and each neuron's plasticity (thswap) back into the FNP3's
weight SRAM, so a config read-back shows all of its learning state and a write of that
read-back (after a power cycle, say) restores it whole. SRAM layout per neuron: 4 words (threshold; class and act_step; num_weights;
threshold_learning and thswap) then one bit per input, input i at word 4 + i // 32,
bit i % 32 (input order as the decoder reports it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from akida_rt.firmware_sim.learning_state import (
    NEURON_HEADER_WORDS,
    LearningState,
    words_per_neuron,
)
from akida_rt.firmware_sim.mesh_program import MeshProgram, ProgramError, Work
from akida_rt.firmware_sim.np_mesh import UID_FNP_WEIGHTS

from akida_rt.engine.integer import compile_layer
from akida_rt.engine.learning_rule import learn

if TYPE_CHECKING:
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

log = logging.getLogger(__name__)


def weights_to_words(weights: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """(K, U) binary weights -> (U, ceil(K/32)) weight words of the SRAM layout."""
    k, u = weights.shape
    bit = np.arange(k) if order is None else np.asarray(order)
    words = np.zeros((u, (k + 31) // 32), np.uint64)
    for j in range(u):
        on = bit[weights[:, j].astype(bool)]
        np.bitwise_or.at(
            words[j], on // 32, np.left_shift(np.uint64(1), (on % 32).astype(np.uint64))
        )
    return words.astype(np.uint32)


def learn_step(
    chip: Akd1000Chip, program: MeshProgram, x: np.ndarray, label: int
) -> tuple[np.ndarray, Work]:
    """Learn one labelled frame; returns the learning layer's potentials before learning."""
    state: LearningState | None = program.learning
    if state is None or not state.enabled:
        return program.run(x)
    layer = program.layers[-1]
    k, u = layer.fan_in, layer.filters
    if state.params.num_classes and not 0 <= label < state.params.num_classes:
        raise ProgramError(
            f"learning class {label + 1} is outside the {state.params.num_classes} classes"
        )
    spikes, work = program.run(x, stop=-1)
    weights = layer.get_variable("weights").reshape(k, u).astype(np.uint8)
    labels = np.array([label if state.params.num_classes else -1], np.int64)
    pots = learn(state.params, weights, state.swaps, spikes.reshape(1, k).astype(np.uint8), labels)
    layer.set_variable("weights", weights.reshape(1, 1, k, u))
    program.engine.compiled[-1] = compile_layer(layer)
    words = weights_to_words(weights, state.input_order)
    chip.store_learned(state.ident, words_per_neuron(k), words, state.swaps.astype(np.uint32))
    return pots.reshape(1, 1, 1, u).astype(np.float64), work


def write_weight_words(
    mem: np.ndarray, per_neuron: int, words: np.ndarray, thswap: np.ndarray | None = None
) -> None:
    """Put (U, W) weight words into an FNP3 weight SRAM image, and each neuron's plasticity
    (thswap, in weights) in the low half of its header word 3."""
    for j, row in enumerate(words):
        base = j * per_neuron
        mem[base + NEURON_HEADER_WORDS : base + NEURON_HEADER_WORDS + row.size] = row
        if thswap is not None:
            mem[base + 3] = (int(mem[base + 3]) & 0xFFFF0000) | (int(thswap[j]) & 0xFFFF)


__all__ = ["UID_FNP_WEIGHTS", "LearningState", "learn_step", "weights_to_words", "words_per_neuron"]
