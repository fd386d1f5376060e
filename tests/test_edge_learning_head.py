"""akida_rt.tools.edge_learning's helper on a converted program: the spike level and
num_weights it chooses by default, and spikes that are the trained levels thresholded."""

from __future__ import annotations

import numpy as np
from akida_rt.tools.edge_learning import add_learning_head

from akida_rt.model import zoo
from akida_rt.model.placement import spikes_of


def test_default_head_fires_at_level_3_with_three_quarters_of_the_median_spikes() -> None:
    program = zoo.digits_cnn(seed=0)
    x = np.random.default_rng(0).integers(0, 256, (64, *program.input_shape), np.uint8)
    levels = program.engine().run(x, stop=-1).reshape(len(x), -1)
    assert program.layers[-2].activation_bits == 4 and levels.max() > 3
    edge = add_learning_head(program, 5, x, neurons_per_class=4)
    spikes = spikes_of(edge, x)
    assert np.array_equal(spikes, (levels >= 3).astype(np.uint8))
    assert edge.learning.num_weights == int(0.75 * np.median(spikes.sum(axis=1)))
    assert edge.layers[-1].filters == 20 and program.layers[-2].activation_bits == 4
