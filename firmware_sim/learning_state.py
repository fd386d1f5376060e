"""The simulated AKD1000's learning FNP3 state, as its registers and weight SRAM hold it.

Read from the FNP3's registers and weight-SRAM metadata when a program decodes; the
learning step (learning_step.py) writes what it learns back into the SRAM, so nothing
lives outside what the host can read (learn_mem) and write back (update_learn_mem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from akida_rt.firmware_sim.np_mesh import UID_FNP_WEIGHTS

from akida_rt.engine.learning_rule import RuleParams

NEURON_HEADER_WORDS = 4


@dataclass
class LearningState:
    """What the chip's learning FNP3 holds (decoded from its registers and weight SRAM).

    Attributes:
        ident: (col, row, id) of the learning FNP3.
        params: the learning rule's parameters, in whole weights (the registers').
        swaps: int32 per neuron, its plasticity in whole weights (SRAM word 3, thswap).
        enabled: the learning register track is loaded (else labels are ignored).
        input_order: hardware input bit of each of the layer's K inputs (identity if None).
    """

    ident: tuple[int, int, int]
    params: RuleParams
    swaps: np.ndarray
    enabled: bool = True
    input_order: np.ndarray | None = None
    _bits: np.ndarray | None = field(default=None, repr=False)


LEARN_ENABLE_WORD = 36  # FNP3 register: bit 28 learning on; low 16 bits the competition bar
MIN_PLASTICITY_WORD = 37  # low 24 bits: minimum plasticity, in weights
DECAY_WORD = 38  # plasticity lost per learning step, in weights


def learning_state(state: Any, layer: Any, info: dict[str, Any]) -> LearningState:
    """The learning FNP3's state from its registers and weight-SRAM metadata: the floor,
    the decay step and the competition bar in whole weights, as BrainChip's compiler wrote
    them (held to 0..num_weights, where the NP's fields saturate), and each neuron's
    plasticity in whole weights (thswap)."""
    ident = tuple(layer.nps[0])
    regs_words = state.nps[ident].registers
    nw = max(int(info["num_weights"]), 1)
    # Weight-SRAM word 1 of each neuron: (class + 1) << 20; 0 when unlabelled.
    per = words_per_neuron(int(np.prod(layer.input_shape)))
    meta = np.asarray(state.nps[ident].memory(UID_FNP_WEIGHTS, 0), np.uint32)
    n = min(layer.filters, meta.size // per)
    labels = {int(v) >> 20 for v in meta[: n * per].reshape(n, per)[:, 1]} - {0}

    def weights_of(value: int) -> int:
        return min(max(value, 0), nw)

    params = RuleParams(
        num_weights=nw,
        num_classes=len(labels),
        min_swaps=weights_of(int(regs_words[MIN_PLASTICITY_WORD]) & 0xFFFFFF),
        decay_swaps=weights_of(int(regs_words[DECAY_WORD])),
        competition_bar=weights_of(int(regs_words[LEARN_ENABLE_WORD]) & 0xFFFF),
    )
    thswap = np.asarray(layer.variables.get("thswap", np.full(layer.filters, nw)), np.int64)
    h, w, c = layer.input_shape
    order = np.arange(h * w * c).reshape(c, w, h).transpose(2, 1, 0).reshape(-1)
    return LearningState(
        ident,  # type: ignore[arg-type]
        params,
        np.clip(thswap, 0, nw).astype(np.int32),
        enabled=bool(int(regs_words[LEARN_ENABLE_WORD]) >> 28 & 1),
        input_order=order,
    )


def words_per_neuron(inputs: int) -> int:
    return NEURON_HEADER_WORDS + (inputs + 31) // 32
