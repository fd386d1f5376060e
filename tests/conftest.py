"""Shared fixtures: small random models built from the public layer API."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from akida_rt.model import zoo


@pytest.fixture(scope="session")
def digits_model():
    return zoo.digits_cnn(seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def run_akida(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    """The `akida` command line in a real subprocess (as a user runs it)."""
    cmd = [sys.executable, "-m", "akida_rt.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def ds_cnn_program(tmp_path_factory) -> str:
    """A saved DS-CNN program file (random calibrated weights)."""
    path = tmp_path_factory.mktemp("p") / "ds_cnn.akp"
    zoo.ds_cnn_kws(seed=0).save(path)
    return str(path)
