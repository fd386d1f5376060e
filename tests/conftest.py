"""Shared fixtures: small random models built from the public layer API."""

from __future__ import annotations

import numpy as np
import pytest

from akida_rt import zoo


@pytest.fixture(scope="session")
def digits_model():
    return zoo.digits_cnn(seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
