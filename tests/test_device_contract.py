"""The device contract: the Device object against every transport in tests/device_urls.py,
and against a real board when one is present (the `hardware` case skips, saying why, when
there is none)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from akida_rt import AKD1000
from akida_rt.errors import DeviceBusy, DeviceError, InputError, ProgramFormatError
from tests import chip_addresses as ca
from tests.device_urls import CONTRACT_FACTORIES, CONTRACT_PARAMS, DeviceUnderTest
from tests.v1_forms import v1_model

pytest.importorskip("akida")  # a device runs BrainChip's program binaries ([metatf])


@pytest.fixture(params=CONTRACT_PARAMS)
def dut(request):
    made = CONTRACT_FACTORIES[request.param]()
    yield made
    made.close()


@pytest.fixture
def digits():
    return v1_model("digits_cnn", seed=3)


def _batch(model, n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *model.input_shape), dtype=np.uint8)


def test_identify_reports_the_akd1000(dut: DeviceUnderTest) -> None:
    dev = dut.device
    ident = dev.identify()
    assert (ident.name, ident.nodes, ident.nps, ident.hrc) == ("AKD1000", 20, 78, True)
    assert dev.spec == AKD1000() and dev.version == AKD1000().version
    assert ca.chip_version(dev.bus.read32(ca.CHIP_INFO)) == 2  # NSoC_v2: an AKD1000
    # Simulated or not is what the chip says in its identity, whatever the transport.
    assert ident.simulated is dut.simulated and dev.simulated is dut.simulated
    desc = dev.describe()
    assert desc["kind"] in ("sim", "pcie", "usb") and desc["simulated"] is dut.simulated
    assert {"id", "url", "kind", "simulated", "version", "nodes", "nps", "firmware"} <= set(desc)


def test_bus_round_trips_registers_and_memory(dut: DeviceUnderTest) -> None:
    bus = dut.device.bus
    bus.write32(ca.RW_REG, 0xDEADBEE0)
    assert bus.read32(ca.RW_REG) == 0xDEADBEE0
    data = bytes(range(256)) * 9
    bus.write(ca.DATA + 4096, data)
    assert bus.read(ca.DATA + 4096, len(data)) == data


def test_event_input_model_runs_on_device(dut: DeviceUnderTest) -> None:
    """A model fed by InputData (events through the event DMA) matches the software backend."""
    from akida_rt.tools import metatf

    from tests.akd1000_programs import cnp_model

    model = metatf.import_model(cnp_model(seed=5))
    x = np.random.default_rng(5).integers(0, 16, (3, *model.input_shape), dtype=np.uint8)
    expected = model.forward(x)
    model.map(dut.device)
    try:
        np.testing.assert_array_equal(model.forward(x), expected)
    finally:
        model.map(None)


def test_forward_on_device_is_bit_identical_to_software(dut: DeviceUnderTest, digits) -> None:
    x = _batch(digits, 5)
    expected_int, expected_float = digits.forward(x), digits.predict(x)
    digits.map(dut.device)
    try:
        np.testing.assert_array_equal(digits.forward(x), expected_int)
        np.testing.assert_array_equal(digits.predict(x), expected_float)
        stats = digits.statistics
        assert stats.backend == "Hardware" and stats.frames == 10
        assert stats.inference_clk > 0 and stats.program_clk > 0
        clock_hz = dut.device.identity.clock_hz
        assert stats.device_fps == pytest.approx(10 * clock_hz / stats.inference_clk)
        # fps is host-visible: the wall clock of the calls (a simulated board's modelled
        # one), which includes the link and the host, so it is below the clock figure.
        assert stats.elapsed_s > 0 and stats.fps == pytest.approx(10 / stats.elapsed_s)
        assert stats.fps < stats.device_fps
    finally:
        digits.map(None)


def test_resident_sequence_is_not_loaded_again(dut: DeviceUnderTest, digits) -> None:
    dev = dut.device
    digits.map(dev)
    try:
        x = _batch(digits, 2)
        digits.forward(x)
        first = digits.statistics.program_clk
        digits.forward(x)
        assert digits.statistics.program_clk == first  # nothing reloaded
        stats = dev.stats()
        assert stats.host.loads == 1 and stats.host.reloads_skipped == 1
        assert stats.loads == 1 and stats.frames == 4
        assert stats.host.bytes_programmed == len(digits.sequences[0].program)
        assert stats.resident is not None
    finally:
        digits.map(None)


def test_chain_loads_sequences_per_batch(dut: DeviceUnderTest) -> None:
    """Two program binaries chain-loaded over each whole batch (AKD1000 has no multipass)."""
    from tests.akd1000_programs import programs, split_models
    from tests.metatf_models import sample

    first, second = split_models()
    x = sample(first, 3, 0)
    expected = second.forward(first.forward(x))
    p0, p1 = programs(first)[0], programs(second)[0]
    dev = dut.device
    for _ in range(2):
        dev.load_sequence(p0)
        y, _clk = dev.infer(x)
        dev.load_sequence(p1)
        got, _clk = dev.infer(y)
        np.testing.assert_array_equal(got.astype(np.int64), expected.astype(np.int64))
    host = dev.stats().host
    assert host.loads == 4 and host.frames == 4 * 3


def test_power_measurement_reports_floor_and_range(dut: DeviceUnderTest) -> None:
    model = v1_model("ds_cnn_kws")
    dut.device.soc.power_measurement_enabled = True
    model.map(dut.device)
    model.forward(_batch(model, 1))
    short = model.statistics
    if dut.simulated:  # the simulator's power model (docs/clock-and-power-model.md)
        assert 912.0 <= short.floor_power_mw <= 915.0
        if short.elapsed_s < 0.02:  # PCIe: one ~16 ms call, under two 10 ms sensor samples
            assert short.power_mw is None
    else:
        assert short.floor_power_mw > 0
    first_s = short.elapsed_s
    model.forward(_batch(model, 40))
    stats = model.statistics
    p = stats.power_mw
    assert p is not None and p["min"] <= p["avg"] <= p["max"] and p["std"] > 0
    assert p["avg"] > stats.floor_power_mw
    per_frame_s = (stats.elapsed_s - first_s) / 40  # host-visible time of the last call
    assert stats.energy_mj_per_frame == pytest.approx(p["avg"] * per_frame_s, rel=1e-6)
    model.map(None)


def test_device_errors_are_clear(dut: DeviceUnderTest, digits) -> None:
    dev = dut.device
    with pytest.raises(ProgramFormatError, match="program"):
        dev.load_sequence(b"\xff\xff not a program")
    assert dev.resident is None
    digits.map(dev)
    dev.load_sequence(digits.sequences[0].program)
    with pytest.raises((InputError, DeviceError), match="expects"):
        dev.infer(np.zeros((1, 8, 8, 1), np.uint8))
    digits.map(None)


def test_concurrent_users_get_their_own_results(dut: DeviceUnderTest) -> None:
    models = [v1_model("digits_cnn", seed=s) for s in (1, 2)]
    xs = [_batch(m, 3, seed=i) for i, m in enumerate(models)]
    expected = [m.forward(x) for m, x in zip(models, xs, strict=True)]
    for m in models:
        m.map(dut.device)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                np.testing.assert_array_equal(models[i].forward(xs[i]), expected[i])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    seen: list[BaseException] = []

    def other_user() -> None:
        try:
            with dut.device.claim():
                pass
        except DeviceBusy as exc:
            seen.append(exc)

    with dut.device.claim():
        other = threading.Thread(target=other_user)
        other.start()
        other.join(timeout=10)
    assert len(seen) == 1 and "busy" in str(seen[0])
    for m in models:
        m.map(None)


def test_device_counts_the_same_synops_as_the_software_backend(dut: DeviceUnderTest) -> None:
    model = v1_model("digits_cnn", seed=4)
    x = _batch(model, 3, seed=4)
    model.forward(x)
    software = model.statistics.synops
    model.map(dut.device)
    try:
        model.forward(x)
        assert model.statistics.synops == software > 0
    finally:
        model.map(None)
