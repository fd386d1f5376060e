"""The rule's whole-weight parameters equal the learning FNP3 registers BrainChip's
compiler writes (akida 2.19.3 programs, decoded from the learning register track): the
floor, the decay step, the competition bar and a fresh neuron's thswap."""

from __future__ import annotations

import random

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.engine.learning_rule import initial_swaps, rule_params  # noqa: E402
from akida_rt.format.v1_rules import learning_fraction  # noqa: E402

K = 64


def _registers(nw: int, fractions: tuple[float, float, float, float]) -> tuple[int, ...]:
    """(bar, floor, step, fresh thswap) of akida's program for these fractions."""
    init, low, decay, competition = fractions
    model = akida.Model()
    model.add(akida.InputData(input_shape=(1, 1, K), input_bits=1, name="spikes"))
    model.add(akida.FullyConnected(units=4, name="learn", weights_bits=1, activation=False))
    model.compile(akida.AkidaUnsupervised(num_weights=nw, num_classes=4, initial_plasticity=init,
                                          min_plasticity=low, plasticity_decay=decay,
                                          learning_competition=competition))  # fmt: skip
    fresh = int(model.layers[-1].get_variable("thswap")[0])
    model.map(akida.AKD1000(), hw_only=True)
    binary = ProgramBinary.from_bytes(model.sequences[-1].program)
    learning = binary.info.learning_layer
    words = binary.packets(learning.learning_registers)[0].data
    return int(words[36]) & 0xFFFF, int(words[37]) & 0xFFFFFF, int(words[38]), fresh


def test_rule_params_are_the_registers_brainchips_compiler_writes() -> None:
    rng = random.Random(7)
    cases = [(24, (1.0, 0.1, 0.25, 0.0)), (10, (0.25, 0.3, 0.25, 0.25)),
             (10, (0.49, 0.1, 0.405, 0.35)), (3, (0.1, 0.1, 0.1, 0.5)),
             (20, (1.0, 0.1, 0.3, 0.35)), (13, (1.0, 0.02, 0.33, 0.65))]  # fmt: skip
    for _ in range(150):
        q = rng.choice([3, 7, 8, 10, 20, 40, 100, 1000])
        cases.append((rng.randint(1, K), tuple(rng.randint(0, q) / q for _ in range(4))))
    for nw, fractions in cases:
        stored = tuple(float(np.float32(v)) for v in fractions)  # a LearningConfig's floats
        given = tuple(learning_fraction(v) for v in stored)  # what akida_rt exports
        bar, floor, step, fresh = _registers(nw, given)  # type: ignore[arg-type]
        params = rule_params(nw, 4, *stored)
        got = (params.competition_bar, params.min_swaps, params.decay_swaps)
        assert got == (bar, floor, step), (nw, fractions)
        assert initial_swaps(nw, stored[0]) == fresh, (nw, fractions)
