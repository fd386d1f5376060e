"""The learning FNP3 of an AKD1000 program: the register words that switch it to
learning mode and the settings of akida's AkidaUnsupervised optimizer they come from.

The learning registers are the NP's inference registers with words 36-38 set (measured
against akida 2.19.3 over num_weights, num_classes, initial_plasticity, min_plasticity,
plasticity_decay and learning_competition; docs/program-binary.md, "Learning").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from akida_rt.akd1000.np_registers import RegField
from akida_rt.akd1000.np_state import MeshState, NpState
from akida_rt.errors import LearningError

LEARN = {
    f.name: f
    for f in (
        RegField("LEARN_ON", 36, 28, 1, "learning mode"),
        RegField("COMPETITION", 36, 0, 16, "num_weights x (1 - learning_competition), rounded"),
        RegField("MIN_PLASTICITY", 37, 0, 24, "num_weights x min_plasticity, rounded up"),
        RegField("DECAY", 38, 0, 16, "plasticity_decay x initial thswap, rounded up"),
    )
}
# akida's defaults; min_plasticity's is a float32 0.1 (ceil(20 x it) is 3, not 2)
DEFAULTS = {
    "initial_plasticity": 1.0,
    "learning_competition": 0.0,
    "min_plasticity": float(np.float32(0.1)),
    "plasticity_decay": 0.25,
}


def learning_for(
    num_weights: int, num_classes: int, units: int, **settings: float
) -> dict[str, Any]:
    """The `learning` np_state_for takes for a FullyConnected of `units` compiled with
    akida's AkidaUnsupervised(num_weights, num_classes, **settings): each unit's class
    (units split evenly; -1 with one class) and the learning register values."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise LearningError(f"learning settings {sorted(unknown)}: use {', '.join(DEFAULTS)}")
    if num_classes < 1 or units % num_classes:
        raise LearningError(
            f"learning: {units} units do not split into {num_classes} classes: give a "
            "num_classes that divides the layer's units"
        )
    s = {**DEFAULTS, **settings}
    per = units // num_classes if num_classes > 1 else 0
    classes = [i // per if per else -1 for i in range(units)]
    thswap = math.floor(num_weights * s["initial_plasticity"] + 0.5)
    return {
        "num_weights": num_weights,
        "classes": classes,
        "registers": {
            "COMPETITION": math.floor(num_weights * (1 - s["learning_competition"]) + 0.5),
            "MIN_PLASTICITY": math.ceil(num_weights * s["min_plasticity"]),
            "DECAY": math.ceil(s["plasticity_decay"] * thswap),
        },
    }


def read_learning_registers(registers: np.ndarray) -> dict[str, int]:
    """The learning register values (LEARN's fields but LEARN_ON) of an NP's learning
    registers."""
    return {name: f.get(registers) for name, f in LEARN.items() if name != "LEARN_ON"}


def learning_mesh(
    mesh: MeshState, ident: tuple[int, int, int], learning: dict[str, Any]
) -> MeshState:
    """The learning NP `ident` of `mesh` with its learning-mode registers: what the
    program's learning-registers track sends (`learning["registers"]`: LEARN's values)."""
    words = mesh.nps[ident].registers.copy()
    LEARN["LEARN_ON"].put(words, 1)
    for name, value in learning["registers"].items():
        LEARN[name].put(words, int(value))
    return MeshState({ident: NpState(ident, words)})
