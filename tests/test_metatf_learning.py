"""akida's edge-learning state through `akida import`: learned connections, plasticity.

The oracle is BrainChip's `akida` 2.19.3 learning on a v1 model (AkidaUnsupervised);
skips when the `akida` package (the [metatf] extra) is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402

from akida_rt.format import v1_rules  # noqa: E402
from akida_rt.learning.edge import plasticity_of  # noqa: E402
from akida_rt.model.model import Model  # noqa: E402

K, NUM_WEIGHTS = 64, 8


def _learned(classes: int, per_class: int, samples: int, seed: int = 0):
    """An akida v1 model (1-bit inputs, 1-bit FullyConnected) that learned `samples`."""
    m = akida.Model()
    m.add(akida.InputData(input_shape=(1, 1, K), input_bits=1, name="spikes"))
    m.add(akida.FullyConnected(units=classes * per_class, name="learn", weights_bits=1,
                               activation=False))  # fmt: skip
    m.compile(akida.AkidaUnsupervised(num_weights=NUM_WEIGHTS, num_classes=classes,
                                      initial_plasticity=1.0, min_plasticity=0.1,
                                      plasticity_decay=0.25))  # fmt: skip
    rng = np.random.default_rng(seed)
    x = (rng.random((samples, 1, 1, K)) < 0.3).astype(np.uint8)
    if samples:
        m.fit(x, rng.integers(0, classes, samples))
    return m, rng


def _swaps(model) -> np.ndarray:
    return v1_rules.swaps_of_plasticity(
        plasticity_of(model.learning, model.layers[-1].filters), NUM_WEIGHTS
    )


@pytest.mark.parametrize("samples", [0, 1, 12, 40])
def test_learned_state_imports_with_akidas_predictions(samples: int, tmp_path) -> None:
    theirs, rng = _learned(classes=3, per_class=4, samples=samples)
    ours = import_model(theirs)
    x = (rng.random((16, 1, 1, K)) < 0.3).astype(np.uint8)
    np.testing.assert_array_equal(ours.forward(x), theirs.forward(x))
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))
    cfg, opt = ours.learning, theirs.learning
    assert (cfg.num_weights, cfg.num_classes) == (opt.num_weights, opt.num_classes)
    np.testing.assert_array_equal(_swaps(ours), theirs.layers[-1].get_variable("thswap"))
    ours.save(tmp_path / "learned.akp")
    again = Model(tmp_path / "learned.akp")
    np.testing.assert_array_equal(again.forward(x), theirs.forward(x))
    np.testing.assert_array_equal(_swaps(again), _swaps(ours))


def test_further_learning_steps_plasticity_as_akida() -> None:
    """One neuron per class, so the label picks the winner in both rules. akida learns a
    sample only when the winner's potential exceeds its `threshold_learning` (then set to
    that potential); our rule has no such gate (docs/semantics.md, section 8). On the
    samples akida learns, our plasticity takes the same steps from the imported state."""
    theirs, rng = _learned(classes=4, per_class=1, samples=6)
    ours = import_model(theirs)
    layer = theirs.layers[-1]
    learned = 0
    for _ in range(24):
        x = (rng.random((1, 1, 1, K)) < 0.3).astype(np.uint8)
        y = rng.integers(0, 4, 1)
        gate = layer.get_variable("threshold_learning")[y[0]]
        opens = theirs.forward(x).ravel()[y[0]] > gate
        theirs.fit(x, y)
        if opens:
            ours.fit(x, y)
            learned += 1
        np.testing.assert_array_equal(_swaps(ours), layer.get_variable("thswap"))
    assert 0 < learned < 24
    connections = np.count_nonzero(ours.layers[-1].get_variable("weights"), axis=(0, 1, 2))
    assert connections.max() <= NUM_WEIGHTS


def test_edge_learned_toolchain_model(tmp_path) -> None:
    """BrainChip's flow: a converted float-input model whose classifier became a 1-bit
    learning layer, compiled and taught 40 samples in akida (tests/data/metatf). The
    import predicts the same classes and keeps each neuron's plasticity."""
    from tests.metatf_fixtures import inputs, unpack

    path = unpack("edge_learned_cnn", tmp_path)
    theirs = akida.Model(str(path))
    ours = import_model(path)
    x = inputs(theirs, n=16, seed=2)
    np.testing.assert_array_equal(ours.forward(x), theirs.forward(x))
    np.testing.assert_array_equal(ours.predict_classes(x), theirs.predict_classes(x, num_classes=3))
    swaps = theirs.layers[-1].get_variable("thswap")
    assert len(set(swaps.tolist())) > 1  # neurons learned different amounts
    units = ours.layers[-1].filters
    got = v1_rules.swaps_of_plasticity(
        plasticity_of(ours.learning, units), theirs.learning.num_weights
    )
    np.testing.assert_array_equal(got, swaps)
