"""Imported learned state that would brick a program for its owner (issue 30, finding
10): NaN or out-of-range learning parameters and an absurd sample count are refused at
import with one line; a bad state already in the store (put there by its owner) cannot
stop the owner's forward, info or reset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from akida_rt.client.client import Client
from akida_rt.errors import RemoteError
from akida_rt.learning import edge as learning
from tests.daemon_harness import Akidad
from tests.learning_models import images, learnable_cnn

BAD = {
    "plasticity_decay": math.nan,
    "initial_plasticity": -0.5,
    "learning_competition": math.inf,
    "samples": 2**64 - 1,
}


def _broken(blob: bytes, field: str) -> bytes:
    msg = learning.decode_state(blob)
    setattr(msg.learning, field, BAD[field])
    return learning.STATE_MAGIC + msg.SerializeToString()


@pytest.mark.parametrize("field", sorted(BAD))
def test_a_broken_state_is_refused_at_import_and_the_owner_keeps_working(
    tmp_path, field: str
) -> None:
    x, labels = images(13, 8), np.arange(8) % 4
    with Akidad(tmp_path) as daemon, Client(daemon.socket, timeout=20) as c:
        model = c.load(learnable_cnn(seed=9))
        model.fit(x, labels)
        info, blob = model.learned_state("export")
        with pytest.raises(RemoteError) as err:
            model.learned_state("import", _broken(blob, field))
        line = str(err.value)
        assert "BAD_INPUT" in line and field in line and "\n" not in line
        assert model.learned_state()[0] == info  # nothing changed
        model.fit(x[:2], labels[:2])  # and fits still work
        # The owner writes the broken state straight into the store (put_state): after a
        # restart the program still serves, and reset clears it.
        key = next(k for k in _state_keys(daemon) if k.startswith("learn."))
        c.put_state(key, _broken(blob, field))
    with Akidad(tmp_path) as daemon, Client(daemon.socket, timeout=20) as c:
        again = c.load(learnable_cnn(seed=9))
        assert again.forward(x).shape[0] == 8
        assert again.learned_state("reset")[0]["samples"] == 0
        again.fit(x, labels)
        assert again.learned_state()[0]["samples"] == 8


def _state_keys(daemon: Akidad) -> list[str]:
    return [p.name for p in daemon.state.rglob("learn.*")]
