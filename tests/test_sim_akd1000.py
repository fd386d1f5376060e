"""The simulated AKD1000 at the real host interface, driven by a host written for the
tests (the engine's protocol) with real program binaries from akida's compiler: config
DMA, inference, error behaviour, faults, the PCIe node. Skips without akida."""

from __future__ import annotations

import logging

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip  # noqa: E402

from akida_rt.akd1000.packets import packet_header  # noqa: E402
from akida_rt.akd1000.registers import CONFIG_DMA  # noqa: E402
from tests.akd1000_programs import cnp_model  # noqa: E402
from tests.akd1000_test_host import Host, HostTimeout, digits_case, expected_state  # noqa: E402

TOP = 0xFCC00000


@pytest.fixture(scope="module")
def digits() -> tuple[bytes, np.ndarray, np.ndarray]:
    return digits_case()


@pytest.fixture
def chip() -> Akd1000Chip:
    return Akd1000Chip("TEST0001")


def test_identifies_as_an_akd1000(chip) -> None:
    host = Host(chip)
    assert host.identify() == (0, 2)  # IP_VERSION 0: the engine falls back to NSoC_v2


def test_config_dma_puts_every_packet_of_the_program_in_np_memory(chip, digits) -> None:
    blob, _, _ = digits
    host = Host(chip)
    host.load(blob)
    expected = expected_state(blob)
    assert len({k[0] for k in expected}) == 57  # 55 CNPs + 1 FNP3 + the HRC
    for (ident, uid), words in expected.items():
        got = chip.mesh.nps[ident].words(uid, 0, words.size)
        assert np.array_equal(got, words), (ident, uid)
    assert chip.config.bad_packets == 0


def test_config_read_returns_the_words_written(chip) -> None:
    host = Host(chip)
    host.init_ring(CONFIG_DMA, 8, 2, header=False)
    data = np.arange(1, 41, dtype=np.uint32) * 0x01010101
    host.config_write(np.concatenate([packet_header(3, 2, 0, 6, 40, start=12), data]))
    back = host.config_read(packet_header(3, 2, 0, 6, 40, start=12), 40)
    assert np.array_equal(back, data)


def test_test_host_runs_digits_bit_exact(chip, digits) -> None:
    blob, x, y = digits
    host = Host(chip)
    host.load(blob)
    host.set_batch_size(4)
    out = host.forward(x)
    assert np.array_equal(out, y)  # akida's own software forward
    assert chip.read32(TOP + 0x28000 + 0x10) >> 16 == 4  # HRC DMA DESC_STATUS: last job id
    assert chip.frames == 4 and chip.inference_clk > 0 and chip.synops > 0


def test_packets_past_np_memory_are_dropped_and_logged(chip, caplog) -> None:
    host = Host(chip)
    host.init_ring(CONFIG_DMA, 8, 2, header=False)
    too_far = np.concatenate([packet_header(3, 2, 1, 8, 4, start=62), np.ones(4, np.uint32)])
    no_np = np.concatenate([packet_header(3, 1, 0, 8, 1), np.ones(1, np.uint32)])  # a DMA
    with caplog.at_level(logging.ERROR):
        host.config_write(too_far)  # still completes: the host is not left waiting
        host.config_write(no_np)
    assert "run past the end of its registers" in caplog.text
    assert "AKD1000 has no such NP" in caplog.text
    assert (3, 2, 1) not in chip.mesh.nps or not chip.mesh.nps[(3, 2, 1)].memories


def test_a_program_for_another_device_is_refused_packet_by_packet(chip, caplog) -> None:
    model = cnp_model()
    model.map(akida.TwoNodesIPv1())
    blob = bytes(model.sequences[0].program)
    host = Host(chip)
    with caplog.at_level(logging.ERROR):
        host.load(blob, check=False)  # the engine would refuse it; the chip must cope
    assert "(1, 2, 1): AKD1000 has no such NP (a program for another device?)" in caplog.text
    assert chip.config.bad_packets > 0
    assert (1, 2, 1) not in chip.mesh.nps


def test_bad_descriptor_stops_the_dma_until_a_reset(chip, caplog) -> None:
    host = Host(chip, timeout_s=0.05)
    host.init_ring(CONFIG_DMA, 8, 2, header=False)
    bad = np.zeros(8, np.uint32)
    bad[0] = 1 << 28 | 1
    bad[1], bad[2] = 0x10000000, 4  # input outside DDR
    with caplog.at_level(logging.ERROR):
        host.enqueue(CONFIG_DMA, bad)
        host.run(CONFIG_DMA, True)
        with pytest.raises(HostTimeout):
            host.wait(CONFIG_DMA, "bad descriptor")
    assert "is not in DDR" in caplog.text
    host.init_ring(CONFIG_DMA, 8, 2, header=False)  # soft reset: usable again
    host.config_write(np.concatenate([packet_header(3, 2, 1, 8, 1), np.ones(1, np.uint32)]))


def test_an_internal_error_stops_the_dma_not_the_host(chip, digits, monkeypatch, caplog) -> None:
    import akida_rt.firmware_sim.akd1000_chip as chip_module

    def broken(*_args: object) -> None:
        raise RuntimeError("simulated decoder bug")

    monkeypatch.setattr(chip_module, "assemble", broken)
    blob, x, _ = digits
    host = Host(chip, timeout_s=0.05)
    host.load(blob)
    host.set_batch_size(2)
    with caplog.at_level(logging.ERROR), pytest.raises(HostTimeout):
        host.forward(x[:1])
    assert "hrc DMA internal error" in caplog.text and "simulated decoder bug" in caplog.text


def test_unknown_registers_read_zero_and_writes_are_dropped(chip, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        chip.write32(TOP + 0x100, 0x1234)
        assert chip.read32(TOP + 0x100) == 0
        chip.write32(TOP + 0x30000 + 0xFC, 7)
    assert "unknown register" in caplog.text
    with pytest.raises(OSError):
        chip.read(0x10000000, 4)  # neither DDR nor registers


def test_simulator_only_registers_report_board_time_and_power(chip, digits) -> None:
    sim = TOP + 0x7F000
    assert chip.read(sim, 4) == b"SIMU"

    def board_ns() -> int:
        lo = chip.read32(sim + 0x4)
        return lo | chip.read32(sim + 0x8) << 32

    start = board_ns()
    chip.write32(sim + 0x1C, 1)  # a new power window
    blob, x, _ = digits
    host = Host(chip)
    host.load(blob)
    host.set_batch_size(4)
    before = board_ns()
    chip.write32(sim + 0x30, 1)  # the host starts a request: its runtime's fitted cost
    assert board_ns() - before >= round(chip.link.request_s * 1e9)
    host.forward(x)
    chip.write32(sim + 0x30, 1)
    assert board_ns() > start
    assert chip.read32(sim + 0x18) == 4  # frames
    floor_uw = chip.read32(sim + 0x2C)
    assert 912_000 <= floor_uw <= 915_000  # the board floor of docs/clock-and-power-model
    assert chip.read32(sim + 0x1C) >= 2  # power samples in the window (10 ms period)
    assert chip.read32(sim + 0x20) >= floor_uw - 5_000  # average power near or above it


def test_ddr_is_sparse(chip) -> None:
    chip.write(0x2FFFFFF0, b"x" * 16)  # the last bytes of 256 MiB
    chip.write(0x24000000, bytes(1 << 20))  # zeros take no pages
    assert chip.read(0x2FFFFFF0, 16) == b"x" * 16
    assert chip.ddr.resident_bytes <= 1 << 16


def test_faults_unplug_timeout_hang_and_reset(chip, digits) -> None:
    blob, x, _ = digits
    host = Host(chip, timeout_s=0.05)
    host.load(blob)
    host.set_batch_size(2)
    chip.inject_fault("dma_timeout")
    with pytest.raises(OSError, match="timed out"):
        chip.write(0x24000000, b"\0" * 4)
    chip.inject_fault("hang")
    with pytest.raises(HostTimeout):
        host.forward(x[:1])
    host.load(blob)  # the core reset of a new program clears the hang
    host.set_batch_size(2)
    host.forward(x[:1])
    boots = chip.boot_count
    chip.inject_fault("reset")
    with pytest.raises(HostTimeout):
        host.forward(x[:1])
    assert chip.boot_count == boots + 1 and not chip.mesh.nps
    chip.inject_fault("unplug")
    assert chip.read32(TOP) == 0xFFFFFFFF
    with pytest.raises(OSError):
        chip.read(0x24000000, 4)


def test_pcie_node_serves_pread_pwrite_at_physical_addresses_only(tmp_path, digits) -> None:
    import errno
    import os

    from akida_rt.firmware_sim.pcie_node import SimPcieHost

    chip = Akd1000Chip("PCIE0001")
    slot = SimPcieHost(tmp_path).add(chip)
    chunks: list[int] = []
    slot.chunk_hook = lambda _slot, index: chunks.append(index)
    node = slot.provider.open(str(slot.node_path), os.O_RDWR)
    assert int.from_bytes(node.pread(4, 0xF0000010), "little") == 2  # CHIP_INFO: NSoC_v2
    chunks.clear()
    assert node.pwrite(bytes(range(256)) * 12, 0x24000000) == 3072
    assert chunks == [0, 1, 2]  # 1 KiB DMA chunks
    assert node.pread(3072, 0x24000000) == bytes(range(256)) * 12
    for call in (lambda: node.pread(8, 0x203FFFFC), lambda: node.pwrite(b"x", 0x20000000)):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.EINVAL  # the reserved eDMA window
    with pytest.raises(OSError) as err:
        node.mmap(4096)
    assert err.value.errno == errno.ENODEV  # akida_dw_edma has no mmap

    class NodeBus:  # the bus a PCIe transport gives a host: pread/pwrite only
        def read(self, addr: int, n: int) -> bytes:
            return node.pread(n, addr)

        def write(self, addr: int, data: bytes) -> None:
            node.pwrite(data, addr)

        def read32(self, addr: int) -> int:
            return int.from_bytes(self.read(addr, 4), "little")

        def write32(self, addr: int, value: int) -> None:
            self.write(addr, value.to_bytes(4, "little"))

    blob, x, _ = digits
    host = Host(NodeBus())
    host.load(blob)
    host.set_batch_size(2)
    host.forward(x[:2])
    assert chip.hrc.jobs == 2
    node.close()
