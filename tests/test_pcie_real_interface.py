"""The PCIe transport speaks akida_dw_edma's real interface: pread/pwrite of at most 1 KiB
at chip physical addresses on /dev/akidaN, registers included, never mmap or ioctl, and
the kernel's reserved eDMA window refused before the kernel would.

The mmap/ioctl checks run in a child process with a Python audit hook, which sees every
`mmap.mmap` and `fcntl.ioctl` call whoever makes it; os.pread/os.pwrite are wrapped there
to record each transfer's size."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from akida_rt.driver import fileio, pcie

from akida_rt.errors import TransportError, TransportTimeout

# Installed first in each child: records mmap/ioctl audit events and transfer sizes.
_PRELUDE = """
import json, os, sys
EVENTS, SIZES = [], []
def _hook(event, args):
    if event in ("mmap.__new__", "fcntl.ioctl"):
        EVENTS.append(event)
sys.addaudithook(_hook)
_pread, _pwrite = os.pread, os.pwrite
def _rec_pread(fd, n, off):
    SIZES.append(n)
    return _pread(fd, n, off)
def _rec_pwrite(fd, data, off):
    SIZES.append(len(data))
    return _pwrite(fd, data, off)
os.pread, os.pwrite = _rec_pread, _rec_pwrite
"""


def _child(body: str, tmp_path: Path) -> dict:
    code = _PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(OUT))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=str(Path(__file__).parent.parent))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pcie_bus_on_a_real_node_uses_pread_pwrite_only(tmp_path: Path) -> None:
    node = tmp_path / "akida0"
    node.touch()  # a sparse file stands for the node: the OS path end to end
    out = _child(f"""
        from akida_rt.driver.pcie import PcieBus
        bus = PcieBus({str(node)!r})
        bus.write32(0xFCC00004, 0x1200)
        reg = bus.read32(0xFCC00004)
        data = bytes(range(250)) * 20
        bus.write(0x24000003, data)
        back = bus.read(0x24000003, len(data))
        bus.close()
        OUT = dict(events=EVENTS, sizes=SIZES, reg=reg, same=back == data)
    """, tmp_path)  # fmt: skip
    assert out["events"] == [], "the PCIe path mapped or ioctl'd the node"
    assert out["reg"] == 0x1200 and out["same"]
    assert max(out["sizes"]) <= 1024 and out["sizes"][:2] == [4, 4]
    assert out["sizes"][2:] == ([1024] * 4 + [904]) * 2
    fd = os.open(node, os.O_RDONLY)  # the register landed at its physical address
    try:
        assert os.pread(fd, 4, 0xFCC00004) == (0x1200).to_bytes(4, "little")
    finally:
        os.close(fd)


def test_host_protocol_over_pcie_never_maps_or_ioctls(tmp_path: Path) -> None:
    """The whole host protocol (program, batch, inference) over the PCIe transport, the
    node answered by a memory-backed chip behind the file-io seam."""
    akida = pytest.importorskip("akida")
    from tests.akd1000_programs import cnp_model, programs

    del akida
    prog = tmp_path / "p.bin"
    prog.write_bytes(programs(cnp_model())[0])
    node = tmp_path / "akida0"
    node.touch()
    out = _child(f"""
        import numpy as np
        from akida_rt.driver import fileio
        from akida_rt.driver.pcie import PcieBus
        from akida_rt.driver.akd1000_host import Akd1000Host
        from tests.brainchip_engine.memory_chip import MemoryChip

        class Node:
            def __init__(self, chip): self.chip, self.sizes = chip, []
            def pread(self, n, off): self.sizes.append(n); return self.chip.read(off, n)
            def pwrite(self, d, off): self.sizes.append(len(d)); self.chip.write(off, d); return len(d)
            def lock(self): pass
            def close(self): pass
            def __getattr__(self, name): raise AssertionError("the PCIe path asked for " + name)

        handle = Node(MemoryChip())
        class Provider:
            def open(self, path, flags): return handle
        fileio.mount({str(node)!r}, Provider())
        host = Akd1000Host(PcieBus({str(node)!r}), desc="NSoC_v2")
        host.program(open({str(prog)!r}, "rb").read())
        host.set_batch_size(4)
        y = host.forward(np.ones((6, 8, 8, 4), np.uint8))
        OUT = dict(events=EVENTS, max=max(handle.sizes), n=len(handle.sizes),
                   shape=list(y.shape), counts={{k: v.accesses for k, v in host.counts.items()}})
    """, tmp_path)  # fmt: skip
    assert out["events"] == []
    assert out["max"] <= 1024 and out["shape"] == [6, 1, 1, 6]
    assert out["counts"]["program"] > 0 and out["counts"]["inference"] > 0


def test_edma_window_refused_before_any_transfer(tmp_path: Path) -> None:
    node = tmp_path / "akida0"
    node.touch()
    bus = pcie.PcieBus(str(node))
    for addr, n in ((0x20000000, 4), (0x203FFFFC, 8), (0x1FFFFFFC, 8)):
        with pytest.raises(TransportError, match="eDMA window 0x20000000-0x203fffff"):
            bus.write(addr, bytes(n))
        with pytest.raises(TransportError, match="eDMA window"):
            bus.read(addr, n)
    assert node.stat().st_size == 0  # nothing reached the node
    bus.write32(0x20400000, 7)  # just past the window: fine
    assert bus.read32(0x20400000) == 7
    bus.close()


class _TimingOut:
    def open(self, path: str, flags: int) -> object:
        class Handle:
            def pread(self, n: int, offset: int) -> bytes:
                raise OSError(errno.ETIMEDOUT, "Connection timed out")

            def pwrite(self, data: bytes, offset: int) -> int:
                raise OSError(errno.ETIMEDOUT, "Connection timed out")

            def lock(self) -> None:
                pass

            def close(self) -> None:
                pass

        return Handle()


def test_kernel_dma_timeout_is_a_transport_timeout(tmp_path: Path) -> None:
    node = str(tmp_path / "akida0")
    fileio.mount(node, _TimingOut())  # type: ignore[arg-type]
    try:
        bus = pcie.PcieBus(node)
        with pytest.raises(TransportTimeout, match="DMA timed out"):
            bus.read(0x24000000, 16)
        with pytest.raises(TransportTimeout):
            bus.write32(0xFCC30000, 1)
    finally:
        fileio.unmount(node)
    assert not hasattr(fileio.OsHandle, "mmap")
    assert os.path.basename(node) == "akida0"


def test_a_mapped_model_on_a_pcie_board_never_maps_or_ioctls(tmp_path: Path) -> None:
    """The user's path: Model.map onto a pcie:// board (the simulated AKD1000 behind the
    file-io seam), forward through the Device object; no mmap, no ioctl, 1 KiB transfers."""
    pytest.importorskip("akida")
    out = _child(f"""
        import numpy as np
        from akida_rt.driver import discovery
        from akida_rt.driver.sim_rack import SimRack
        from akida_rt.model import zoo

        with SimRack({str(tmp_path / "root")!r}) as rack:
            url = rack.add_pcie("P1")
            device = discovery.open_device(url)
            model = zoo.mnist_cnn(seed=1)  # two program binaries around a software step
            x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
            expected = model.forward(x)
            model.map(device)
            same = bool(np.array_equal(model.forward(x), expected))
            OUT = dict(events=EVENTS, same=same, simulated=device.simulated,
                       loads=device.stats().host.loads, version=device.version)
            device.close()
    """, tmp_path)  # fmt: skip
    assert out["events"] == [], "the PCIe path mapped or ioctl'd the node"
    assert out["same"] and out["simulated"] and out["loads"] == 2
    assert out["version"] == "BC.00.000.002"
