"""Zoo models in v1 form (integer thresholds, act_step in sixteenths) as akida_rt Models:
what BrainChip's compiler turns into AKD1000 program binaries, so what a device runs.

Built once per (name, seed) through akida (tests/metatf_models.v1_zoo) and the importer;
each call returns a fresh Model.
"""

from __future__ import annotations

import functools

from akida_rt.model import zoo
from akida_rt.model.model import Model


@functools.cache
def _program(name: str, seed: int) -> bytes:
    from akida_rt.tools import metatf

    from tests.metatf_models import v1_zoo

    src, _ = v1_zoo(getattr(zoo, name)(), seed=seed)
    return metatf.import_model(src, name=name).to_bytes()


def v1_model(name: str = "digits_cnn", seed: int = 0) -> Model:
    """A fresh akida_rt Model of zoo model `name` in v1 form (random weights, `seed`)."""
    return Model(_program(name, seed))
