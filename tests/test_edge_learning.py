"""Edge learning in the software backend: the rule (docs/semantics.md, section 8), the
API (compile, fit, add_classes, predict_classes) and saving/reloading learned state."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt import (
    AkidaUnsupervised,
    FullyConnected,
    InputData,
    InputError,
    Model,
)
from akida_rt.errors import LearningError
from tests.learning_models import images, learnable_cnn


def tiny(units: int = 6, classes: int = 3, inputs: int = 32, **opt) -> Model:
    model = Model(
        layers=[
            InputData("in", (1, 1, inputs), input_bits=1),
            FullyConnected("fc", units, weight_bits=1, activation=False),
        ]
    )
    model.compile(AkidaUnsupervised(opt.pop("num_weights", 6), num_classes=classes, **opt))
    return model


def spikes(*on: list[int], inputs: int = 32) -> np.ndarray:
    x = np.zeros((len(on), 1, 1, inputs), np.uint8)
    for i, idx in enumerate(on):
        x[i, 0, 0, idx] = 1
    return x


def weights(model: Model) -> np.ndarray:
    return model.layers[-1].get_variable("weights")[0, 0]


def test_compile_refuses_layers_that_cannot_learn() -> None:
    base = [InputData("in", (1, 1, 8), input_bits=1)]
    cases = [
        (
            FullyConnected("fc", 4, weight_bits=2, activation=False),
            "2-bit weights; learning needs 1",
        ),
        (FullyConnected("fc", 4, weight_bits=1, activation=True, activation_bits=1), "activation"),
    ]
    for layer, message in cases:
        model = Model(layers=[*base, layer])
        with pytest.raises(LearningError, match=message):
            model.compile(AkidaUnsupervised(2))
    four_bit_in = Model(
        layers=[
            InputData("in", (1, 1, 8), input_bits=4),
            FullyConnected("fc", 4, weight_bits=1, activation=False),
        ]
    )
    with pytest.raises(LearningError, match="4-bit inputs; learning needs 1-bit spikes"):
        four_bit_in.compile(AkidaUnsupervised(2))
    ok = Model(layers=[*base, FullyConnected("fc", 4, weight_bits=1, activation=False)])
    with pytest.raises(LearningError, match="num_weights 9 exceeds the 8 inputs"):
        ok.compile(AkidaUnsupervised(9))
    with pytest.raises(LearningError, match="not a multiple of num_classes 3"):
        ok.compile(AkidaUnsupervised(2, num_classes=3))
    with pytest.raises(LearningError, match=r"min_plasticity must be a number in 0\.\.1"):
        AkidaUnsupervised(2, min_plasticity=1.5)
    with pytest.raises(LearningError, match="not compiled for learning"):
        ok.fit(spikes([1], inputs=8))


def test_first_sample_of_a_class_goes_to_the_first_neuron_of_its_group() -> None:
    model = tiny(num_weights=4)
    pots = model.fit(spikes([0, 1, 2, 3, 4, 5]), 1)  # group of class 1: neurons 2, 3
    assert pots.tolist() == [[0] * 6]  # potentials before learning: no connections yet
    w = weights(model)
    assert w[:, [0, 1, 3, 4, 5]].sum() == 0
    assert w[:, 2].sum() == 4 and set(np.flatnonzero(w[:, 2])) <= {0, 1, 2, 3, 4, 5}
    assert model.learning.samples == 1


def test_competition_zero_fills_fresh_neurons_then_refines_the_best_match() -> None:
    model = tiny(num_weights=4, learning_competition=0.0)
    model.fit(spikes([0, 1, 2, 3]), 0)
    model.fit(spikes([0, 1, 2, 3]), 0)  # same input, but a fresh neuron of the group is left
    w = weights(model)
    assert w[:4, 0].sum() == 4 and w[:4, 1].sum() == 4
    model.fit(spikes([0, 1, 2, 9]), 0)  # group full: the best match (neuron 0) learns
    assert w[:, 1].tolist() == weights(model)[:, 1].tolist()
    assert weights(model)[9, 0] == 1


def test_full_competition_lets_a_matching_neuron_take_the_sample() -> None:
    model = tiny(num_weights=4, learning_competition=1.0)
    model.fit(spikes([0, 1, 2, 3]), 0)
    model.fit(spikes([0, 1, 2, 3, 9]), 0)  # neuron 0 matches (potential 4 > 0): it learns
    w = weights(model)
    assert w[:, 1].sum() == 0 and w[:, 0].sum() == 4


def test_plasticity_decays_to_its_minimum_and_bounds_the_swaps() -> None:
    model = tiny(
        units=3,
        classes=1,
        num_weights=8,
        inputs=64,
        learning_competition=1.0,
        plasticity_decay=0.5,
        min_plasticity=0.25,
    )
    model.fit(spikes(list(range(8)), inputs=64), 0)
    from akida_rt.learning.edge import plasticity_of

    assert plasticity_of(model.learning, 3).tolist() == [0.5, 1.0, 1.0]
    before = weights(model)[:, 0].copy()
    model.fit(spikes([0, 1, 2, 3, 40, 41, 42, 43, 44, 45], inputs=64), 0)  # 4 moves allowed
    after = weights(model)[:, 0]
    assert after.sum() == 8 and int((before & ~after).sum()) == 4
    assert plasticity_of(model.learning, 3)[0] == 0.25
    model.fit(spikes([0, 1, 40, 41, 42, 43, 44, 45, 50, 51, 52], inputs=64), 0)
    assert plasticity_of(model.learning, 3)[0] == 0.25  # never below the minimum


def test_zero_initial_plasticity_never_learns() -> None:
    model = tiny(initial_plasticity=0.0, min_plasticity=0.5)
    model.fit(spikes([0, 1, 2, 3]), 0)
    assert weights(model).sum() == 0


def test_bad_labels_are_refused_and_lose_nothing() -> None:
    model = tiny()
    model.fit(spikes([0, 1, 2]), 2)
    state = weights(model).copy()
    with pytest.raises(InputError, match=r"labels must be in 0..2, got 3..3"):
        model.fit(spikes([4, 5]), 3)
    with pytest.raises(InputError, match="labels required"):
        model.fit(spikes([4, 5]))
    with pytest.raises(InputError, match="labels must be 2 integers"):
        model.fit(spikes([4], [5]), [1.5, 2.0])
    assert np.array_equal(weights(model), state) and model.learning.samples == 1


def test_learns_prototypes_and_predicts_classes() -> None:
    rng = np.random.default_rng(0)
    protos = [rng.choice(32, 8, replace=False) for _ in range(3)]
    model = tiny(units=6, classes=3, num_weights=6)
    for c, p in enumerate(protos):
        model.fit(spikes(list(p)), c)
    noisy = spikes(*[list(p[:6]) for p in protos])
    assert model.predict_classes(noisy).tolist() == [0, 1, 2]


def test_add_classes_appends_fresh_neuron_groups() -> None:
    model = tiny(units=6, classes=3, num_weights=4)
    model.fit(spikes([0, 1, 2, 3]), 0)
    learned = weights(model).copy()
    model.add_classes(2)
    assert model.layers[-1].units == 10 and model.learning.num_classes == 5
    assert np.array_equal(weights(model)[:, :6], learned) and weights(model)[:, 6:].sum() == 0
    model.fit(spikes([20, 21, 22, 23]), 4)
    assert weights(model)[20:24, 8].sum() == 4
    assert model.predict_classes(spikes([20, 21, 22, 23])).tolist() == [4]


def test_saved_model_resumes_learning_bit_identically(tmp_path) -> None:
    x = images(1, 12)
    labels = np.arange(12) % 4
    whole = learnable_cnn(seed=3)
    whole.fit(x, labels)
    half = learnable_cnn(seed=3)
    half.fit(x[:5], labels[:5])
    half.save(tmp_path / "half.akp")
    resumed = Model(tmp_path / "half.akp")
    assert resumed.learning.samples == 5
    resumed.fit(x[5:], labels[5:])
    assert np.array_equal(weights(resumed), weights(whole))
    assert resumed.learning.SerializeToString() == whole.learning.SerializeToString()
    assert np.array_equal(resumed.forward(x), whole.forward(x))


def test_fit_one_by_one_equals_fit_in_a_batch() -> None:
    x = images(2, 10)
    labels = np.arange(10) % 4
    batch, single = learnable_cnn(seed=1), learnable_cnn(seed=1)
    pots = batch.fit(x, labels)
    one = [single.fit(x[i : i + 1], int(labels[i]))[0] for i in range(10)]
    assert np.array_equal(pots, np.stack(one))
    assert np.array_equal(weights(batch), weights(single))
    assert (np.count_nonzero(weights(batch), axis=0) <= 24).all()
