"""The simulated chip's NP mesh checks, clock model and power model."""

from __future__ import annotations

import numpy as np
import pytest
from akida_rt.firmware_sim.clock_model import ClockModel, Phase
from akida_rt.firmware_sim.power_model import PowerModel, PowerSampler

from akida_rt import AKD1000
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.mapper import MapMode
from akida_rt.model import zoo
from akida_rt.wire import device_protocol as dp


def _program(model, **kw) -> bytes:
    model.map(AKD1000(), **kw)
    (seq,) = model.sequences
    return seq.program


def test_program_clk_grows_with_bytes_loaded() -> None:
    mesh = NpMesh(AKD1000(), ClockModel())
    # Minimal mappings (4 and 5 NPs): the digits CNN's 46 kB against DS-CNN's 25 kB.
    small = mesh.load(_program(zoo.ds_cnn_kws(), mode=MapMode.Minimal))
    large = mesh.load(_program(zoo.digits_cnn(), mode=MapMode.Minimal))
    assert 0 < small < large
    model = ClockModel()
    assert model.program_clk(2_000_000, 10) > model.program_clk(1_000_000, 10)


def test_inference_clk_follows_events_and_nps() -> None:
    model = zoo.ds_cnn_kws()
    mesh = NpMesh(AKD1000(), ClockModel())
    x = np.random.default_rng(0).integers(0, 256, (2, *model.input_shape), dtype=np.uint8)
    mesh.load(_program(model))
    _, busy = mesh.run(x)
    _, quiet = mesh.run(np.zeros_like(x))  # no input events, no SynOps
    assert busy.clk > quiet.clk > 0 and quiet.synops == 0
    mesh.load(_program(model, mode=MapMode.Minimal))
    _, minimal = mesh.run(x)
    assert minimal.synops == busy.synops and minimal.clk > busy.clk  # fewer NPs, slower


def test_ds_cnn_inference_clk_within_2x_of_published() -> None:
    model = zoo.ds_cnn_kws()
    mesh = NpMesh(AKD1000(), ClockModel())
    mesh.load(_program(model))
    x = np.random.default_rng(1).integers(0, 256, (1, *model.input_shape), dtype=np.uint8)
    _, work = mesh.run(x)
    assert 93_965 / 2 <= work.clk <= 93_965 * 2


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
