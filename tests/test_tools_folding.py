"""Folding arithmetic: float BN + quantized ReLU against the chip's fixed-point threshold/step."""

from __future__ import annotations

import numpy as np
import pytest
from akida_rt.tools.folding import (
    EXACT_LIMIT,
    batchnorm_affine,
    choose_shift,
    float_activation,
    fold_activation,
    integer_activation,
    round_half_up,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from akida_rt import FullyConnected, InputData, Model


def _away_from_ties(acc: np.ndarray, a: np.ndarray, c: np.ndarray, step: float) -> np.ndarray:
    """Elements whose float value is not within 1e-9 of a rounding boundary."""
    y = acc.astype(np.float64) * a / step + c / step + 0.5
    return np.abs(y - np.rint(y)) > 1e-9


def test_round_half_up_rounds_ties_up_not_to_even() -> None:
    assert round_half_up(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.4999])).tolist() == [
        1, 2, 3, 0, -1, 1,
    ]  # fmt: skip


def test_batchnorm_affine_matches_the_formula() -> None:
    a, b = batchnorm_affine(np.array([2.0]), np.array([1.0]), np.array([3.0]), np.array([4.0]), 0.0)
    assert a.tolist() == [1.0] and b.tolist() == [-2.0]  # y = 2 (x - 3) / 2 + 1 = x - 2


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), bits=st.sampled_from([1, 2, 4]), bound=st.integers(1, 2**20))
def test_folded_thresholds_reproduce_the_quantized_relu(seed: int, bits: int, bound: int) -> None:
    rng = np.random.default_rng(seed)
    n = 16
    a = rng.uniform(1e-6, 1.0, n) * rng.choice([-1.0, 1.0], n) * 4 / bound
    c = rng.normal(0, 3, n)
    step = float(rng.uniform(0.05, 2.0))
    folded = fold_activation(a, c, step, bound)
    acc = rng.integers(-bound, bound + 1, size=(64, n))
    want = float_activation(acc, a, c, step, bits)
    # Negated channels see -acc (their weights were negated by the converter).
    signed = np.where(folded.negate, -acc, acc)
    got = integer_activation(signed, folded.act_scale, folded.act_offset, folded.act_shift, bits)
    mask = _away_from_ties(acc, a, c, step)
    assert np.array_equal(got[mask], want[mask])
    assert np.all(folded.act_scale > 0)
    assert 0 <= folded.act_shift <= 62
    top = bound * int(folded.act_scale.max()) + int(np.abs(folded.act_offset).max())
    assert top < 2**53  # the engine's float64 path stays exact


def test_zero_scale_channel_is_constant() -> None:
    folded = fold_activation(np.array([0.0, 1.0]), np.array([2.2, 0.0]), 1.0, 100)
    assert folded.constant.tolist() == [True, False]
    out = integer_activation(np.zeros(2), folded.act_scale, folded.act_offset, folded.act_shift, 4)
    assert out.tolist() == [2, 0]  # clip(floor(2.2 + 0.5)) and floor(0 + 0.5)


def test_choose_shift_bounds_the_fixed_point_product() -> None:
    for a_max, c_max, bound, positions in ((1e-3, 5.0, 1000, 1), (10.0, 100.0, 2**20, 16)):
        shift = choose_shift(a_max, c_max, bound, positions)
        assert (bound * positions * a_max + c_max + 1) * 2.0**shift < EXACT_LIMIT
        assert (bound * positions * a_max + c_max + 1) * 2.0 ** (shift + 1) >= EXACT_LIMIT
    assert choose_shift(1e-30, 0.0, 1) == 52  # top >= 1: at most 2^52 headroom


def test_engine_runs_a_folded_layer_like_the_float_model() -> None:
    """The folded variables, run by akida_rt's engine, equal the float quantized ReLU."""
    rng = np.random.default_rng(7)
    k, units, bits, step = 24, 6, 4, 0.37
    w = rng.integers(-7, 8, size=(1, 1, k, units))
    a = rng.uniform(0.01, 0.2, units) * rng.choice([-1.0, 1.0], units)
    c = rng.normal(0.5, 1.0, units)
    layer = FullyConnected("fc", units, weight_bits=4, activation_bits=bits)
    model = Model(layers=[InputData("in", (1, 1, k), 4), layer])
    folded = fold_activation(a, c, step, bound=15 * 7 * k)
    layer.set_variable("weights", np.where(folded.negate, -w, w))
    layer.act_shift = folded.act_shift
    layer.set_variable("act_scale", folded.act_scale)
    layer.set_variable("act_offset", folded.act_offset)
    x = rng.integers(0, 16, size=(200, 1, 1, k)).astype(np.uint8)
    acc = x.reshape(200, k).astype(np.int64) @ w.reshape(k, units)
    want = float_activation(acc, a, c, step, bits)
    got = model.forward(x).reshape(200, units)
    mask = _away_from_ties(acc, a, c, step)
    assert mask.mean() > 0.99
    assert np.array_equal(got[mask], want[mask])


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_integer_activation_clips_to_the_bit_range(bits: int) -> None:
    out = integer_activation(
        np.array([-(10**6), 10**6]), np.array([1, 1]), np.array([0, 0]), 0, bits
    )
    assert out.tolist() == [0, 2**bits - 1]
