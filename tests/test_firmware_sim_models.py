"""The simulated chip's power model."""

from __future__ import annotations

import numpy as np
import pytest
from akida_rt.firmware_sim.clock_model import Phase
from akida_rt.firmware_sim.power_model import PowerModel, PowerSampler

from akida_rt import AKD1000


def _program(model, **kw) -> bytes:
    model.map(AKD1000(), **kw)
    (seq,) = model.sequences
    return seq.program


def test_power_is_floor_plus_energy_sampled_over_time() -> None:
    pm = PowerModel.for_serial("SIM0001")
    assert 912.0 <= pm.floor_mw <= 915.0
    sampler = PowerSampler(pm, 300_000_000)
    phases = [Phase("dma", 30_000, dma_bytes=120_000), Phase("conv", 600_000, synops=5e7)]
    sampler.record(phases[:1], 1)
    assert sampler.read().samples < 2 and np.isnan(sampler.read().avg_mw)  # too short
    sampler.restart()
    sampler.record(phases, 100)
    r = sampler.read()
    seconds = 100 * 630_000 / 300e6
    assert r.samples == pytest.approx(seconds / pm.sample_period_s, abs=1)
    dynamic_mj = (5e7 * pm.pj_per_synop + 120_000 * pm.pj_per_dma_byte) * 100 * 1e-9
    assert r.energy_nj / 1e6 == pytest.approx(pm.floor_mw * seconds + dynamic_mj, rel=1e-6)
    assert r.min_mw < r.avg_mw < r.max_mw and r.std_mw > 0
    assert r.avg_mw == pytest.approx(r.energy_nj / 1e6 / seconds, rel=0.02)
