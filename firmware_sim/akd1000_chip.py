"""Akd1000Chip: the simulated AKD1000 at its real host interface (32-bit physical bus).

The host reads and writes the top-level registers (0xFCC00000: identification, resets,
interrupts, EPG), the config, event and HRC DMA blocks, and DDR (0x20000000, 256 MiB,
the engine's scratch from 0x24000000); nothing else. Programs arrive as config-DMA
tracks, inferences as descriptors: the chip computes with akida_rt's integer engine from
the NP state it was sent. Board time and power follow the traffic (clock_model.py,
power_model.py, link_model.py).

Error behaviour a host sees, never an exception from the chip's own logic:
- unknown registers read 0 and drop writes (logged); bad descriptors stop their DMA
  until a reset (logged); packets that do not fit an NP are dropped (logged);
- after an unplug, register reads return 0xFFFFFFFF, writes are dropped and memory
  transfers raise OSError(ENODEV); addresses outside registers and DDR raise
  OSError(EFAULT); an injected DMA timeout stalls then raises OSError(ETIMEDOUT).
"""

from __future__ import annotations

import errno
import logging
import threading
import time

import numpy as np
from akida_rt.firmware_sim import registers_file as rf
from akida_rt.firmware_sim.clock_model import ClockModel
from akida_rt.firmware_sim.config_dma import ConfigDma
from akida_rt.firmware_sim.dma_engine import CTRL, DmaEngine
from akida_rt.firmware_sim.inference_dma import InferenceDma
from akida_rt.firmware_sim.link_model import PCIE, LinkModel
from akida_rt.firmware_sim.mesh_program import MeshProgram, ProgramError, Work, assemble
from akida_rt.firmware_sim.np_mesh import NpMesh
from akida_rt.firmware_sim.power_model import PowerModel, PowerSampler
from akida_rt.firmware_sim.sim_registers import SimRegisters
from akida_rt.firmware_sim.sparse_memory import SparseMemory

from akida_rt.akd1000.np_state import MeshState

log = logging.getLogger(__name__)

DDR_BASE = 0x20000000
DDR_SIZE = 256 << 20
ALL_ONES = 0xFFFFFFFF
FAULT_KINDS = ("dma_timeout", "hang", "reset", "unplug")
DMA_BLOCKS = {0x20000: "event", 0x28000: "hrc", 0x30000: "config"}
DMA_BLOCK_SIZE = 0x100
WR_INFO_EN = 1 << 24  # DMA control: write the output header


class Akd1000Chip:
    """A simulated AKD1000 answering `read`, `write`, `read32`, `write32`.

    Args:
        serial: the board's serial number (names it in logs; seeds its power model).
        link: the host link whose costs the board's modelled time follows.
        dma_stall_s: how long a transfer stalls before an injected DMA timeout fires.
    """

    vendor_id = 0x1E7C
    device_id = 0xBCA1

    def __init__(
        self, serial: str = "SIM0001", *, link: LinkModel | None = None, dma_stall_s: float = 0.05
    ) -> None:
        self.serial = serial[:16]
        self.link = link or PCIE
        self.dma_stall_s = dma_stall_s
        self.clocks = ClockModel()
        self.power = PowerSampler(
            PowerModel.for_serial(self.serial), self.clocks.effective_clock_hz
        )
        self.ddr = SparseMemory(DDR_BASE, DDR_SIZE)
        self.top = rf.TopRegisters()
        self.mesh = NpMesh()
        self.state = MeshState()  # the same packets, as the decoder reads them
        self.config = ConfigDma(
            self.mesh, lambda: self.state, self.ddr_read, self.ddr_write, self.clocks
        )
        self.event = InferenceDma("event", self, lambda: self._header_on("event"))
        self.hrc = InferenceDma("hrc", self, lambda: self._header_on("hrc"))
        self.dmas = {
            "config": DmaEngine("config", self.ddr_read, self._config_job),
            "event": DmaEngine("event", self.ddr_read, self.event.run),
            "hrc": DmaEngine("hrc", self.ddr_read, self.hrc.run),
        }
        self._lock = threading.RLock()
        self._faults: dict[str, int] = {}
        self._program: (
            tuple[tuple[int, tuple[int, int] | None], MeshProgram | ProgramError] | None
        ) = None
        self.sim = SimRegisters(self)
        self.present = True
        self.hung = False
        self.closed = False
        self.boot_count = 0
        self.board_time_s = 0.0
        self.frames = 0
        self.synops = 0
        self.inference_clk = 0
        self.program_clk = 0
        self._boot()

    # ------------------------------------------------------------------- power-on
    def _boot(self) -> None:
        """Power-on state: registers, DMAs and NPs reset; DDR keeps its contents."""
        with self._lock:
            self.boot_count += 1
            self.hung = False
            self.top.reset()
            self._mesh_reset()
            for dma in self.dmas.values():
                dma.reset()
            self._program = None
            self.power.restart()
        log.info("%s: AKD1000 powered on (boot %d)", self.serial, self.boot_count)

    def reboot(self) -> None:
        """A board reset (its console's `reset`): powers on again, DDR kept."""
        self._boot()

    # --------------------------------------------------------------------- bus
    def read32(self, addr: int) -> int:
        """The 32-bit register or DDR word at `addr`."""
        if not self.present:
            return ALL_ONES
        if self._in_ddr(addr, 4):
            return int.from_bytes(self.read(addr, 4), "little")
        with self._lock:
            self.spend(self.link.register_s)
            return self._reg_read(addr) & ALL_ONES

    def write32(self, addr: int, value: int) -> None:
        """Write a 32-bit register (or DDR word)."""
        if not self.present:
            return
        if self._in_ddr(addr, 4):
            self.write(addr, (value & ALL_ONES).to_bytes(4, "little"))
            return
        with self._lock:
            self.spend(self.link.register_s)
            self._reg_write(addr, value & ALL_ONES)

    def read(self, addr: int, n: int) -> bytes:
        """`n` bytes at physical address `addr` (DDR by DMA, or whole registers)."""
        if not self.present:
            raise OSError(errno.ENODEV, "no such device (unplugged)")
        if not self._in_ddr(addr, n):
            words = self._reg_span(addr, n)
            return b"".join(self.read32(a).to_bytes(4, "little") for a in words)
        self._dma_check()
        with self._lock:
            self.spend(self.link.bulk_s(n))
            return self.ddr.read(addr, n)

    def write(self, addr: int, data: bytes) -> None:
        """Write `data` at physical address `addr`."""
        if not self.present:
            raise OSError(errno.ENODEV, "no such device (unplugged)")
        data = bytes(data)
        if not self._in_ddr(addr, len(data)):
            for i, a in enumerate(self._reg_span(addr, len(data))):
                self.write32(a, int.from_bytes(data[4 * i : 4 * i + 4], "little"))
            return
        self._dma_check()
        with self._lock:
            self.spend(self.link.bulk_s(len(data)))
            self.ddr.write(addr, data)

    def close(self) -> None:
        """Power the chip off for this host: later DMA descriptors do not run."""
        with self._lock:
            self.closed = True

    # ------------------------------------------------------------- addresses
    def _in_ddr(self, addr: int, n: int) -> bool:
        return self.ddr.contains(addr, n)

    def _reg_span(self, addr: int, n: int) -> range:
        in_top = addr >= rf.TOP_BASE and addr + n <= rf.TOP_BASE + rf.TOP_SIZE
        if not (in_top or addr == rf.CHIP_INFO) or addr % 4 or n % 4 or n <= 0:
            raise OSError(
                errno.EFAULT,
                f"address {addr:#x}+{n} is neither DDR ({DDR_BASE:#x}+{DDR_SIZE:#x}) nor "
                "aligned registers",
            )
        return range(addr, addr + n, 4)

    def ddr_read(self, addr: int, n: int) -> bytes | None:
        """Chip-side DDR read (no link cost); None outside DDR."""
        return self.ddr.read(addr, n) if self._in_ddr(addr, n) else None

    def ddr_write(self, addr: int, data: bytes) -> bool:
        """Chip-side DDR write; False outside DDR."""
        if not self._in_ddr(addr, len(data)):
            return False
        self.ddr.write(addr, data)
        return True

    # ------------------------------------------------------------- registers
    def _dma_at(self, addr: int) -> tuple[DmaEngine, int] | None:
        offset = addr - rf.TOP_BASE
        for base, name in DMA_BLOCKS.items():
            if base <= offset < base + DMA_BLOCK_SIZE:
                return self.dmas[name], offset - base
        return None

    def _reg_read(self, addr: int) -> int:
        if addr == rf.CHIP_INFO:
            return self.top.identity.chip_version
        hit = self._dma_at(addr)
        if hit is not None:
            dma, offset = hit
            return dma.read(offset)
        offset = addr - rf.TOP_BASE
        if rf.SIM_BASE <= offset < rf.SIM_BASE + rf.SIM_SIZE:
            return self.sim.read(offset - rf.SIM_BASE)
        return self.top.read(offset)

    def _reg_write(self, addr: int, value: int) -> None:
        if addr == rf.CHIP_INFO:
            log.warning("%s: write to read-only CHIP_INFO dropped", self.serial)
            return
        hit = self._dma_at(addr)
        if hit is not None:
            dma, offset = hit
            if dma.write(offset, value):
                self._run_ring(dma)
            return
        offset = addr - rf.TOP_BASE
        if rf.SIM_BASE <= offset < rf.SIM_BASE + rf.SIM_SIZE:
            self.sim.write(offset - rf.SIM_BASE, value)
            return
        core, mesh = self.top.write(offset, value)
        if core:
            for dma in self.dmas.values():
                dma.reset()
            if self.hung:
                log.warning("%s: core reset clears the hang", self.serial)
            self.hung = False
        if mesh:
            self._mesh_reset()

    def _mesh_reset(self) -> None:
        self.mesh.reset()
        self.state = MeshState()

    def _header_on(self, name: str) -> bool:
        return bool(self.dmas[name].regs.get(CTRL, 0) & WR_INFO_EN)

    # ------------------------------------------------------------------ rings
    def _run_ring(self, dma: DmaEngine) -> None:
        """Run every descriptor the host queued on `dma` (in the host's thread: a host
        only sees status registers, so a hang looks the same as on silicon)."""
        while not self.closed and not self.hung and dma.running and dma.pending():
            if self._take_fault("hang"):
                self.hung = True
                log.warning("%s: %s DMA hung (until a core reset)", self.serial, dma.name)
                return
            if self._take_fault("reset"):
                log.warning("%s: spontaneous reset during a %s descriptor", self.serial, dma.name)
                self._boot()
                return
            try:
                stepped = dma.step()
            except Exception:  # the chip's own fault must not reach the host's call
                log.exception("%s: %s DMA internal error; the engine stops", self.serial, dma.name)
                dma.stalled = True
                return
            if not stepped:
                return

    def _config_job(self, desc: np.ndarray):
        done = self.config.run(desc)
        if done is not None:
            self.program_clk += done.clk
            self.spend(self.clocks.seconds(done.clk))
        return done

    def mesh_program(self, image: tuple[int, int] | None = None) -> MeshProgram:
        """The program the NPs hold, decoded once per change of NP state (and per image
        geometry of the HRC descriptors)."""
        key = (self.mesh.generation, image)
        if self._program is None or self._program[0] != key:
            try:
                found: MeshProgram | ProgramError = assemble(
                    self.state, self.clocks, image, self._fnp2_words
                )
            except ProgramError as exc:
                found = exc
            self._program = (key, found)
        result = self._program[1]
        if isinstance(result, ProgramError):
            raise result
        return result

    def _fnp2_words(self, np_id: int, words: int) -> np.ndarray:
        """The `words` weight words FNP2 `np_id` reads from DDR at the host's address."""
        addr = self.top.fnp2_address(np_id)
        raw = self.ddr_read(addr, 4 * words)
        if raw is None:
            raise ProgramError(
                f"FNP2 {np_id}: its {words} weight words at {addr:#x} are not in DDR"
            )
        return np.frombuffer(raw, "<u4").astype(np.uint32)

    def learn_step(
        self, program: MeshProgram, x: np.ndarray, label: int
    ) -> tuple[np.ndarray, Work]:
        """A labelled inference on a learning program (learning_unit.py)."""
        from akida_rt.firmware_sim.learning_step import learn_step

        return learn_step(self, program, x, label)

    def store_learned(
        self, ident: tuple[int, int, int], per_neuron: int, words: np.ndarray, thswap: np.ndarray
    ) -> None:
        """Write learned weights and plasticity into an FNP3's weight SRAM (the NP updating
        itself: the decoded program already computes with them, so it is not decoded
        again; a later decode reads them back)."""
        from akida_rt.firmware_sim.learning_step import write_weight_words
        from akida_rt.firmware_sim.np_mesh import UID_FNP_WEIGHTS, NpState

        state = self.mesh.nps.setdefault(ident, NpState(ident))
        write_weight_words(
            state.memory(UID_FNP_WEIGHTS, per_neuron * len(words)), per_neuron, words, thswap
        )
        np_state = self.state.nps.get(ident)
        if np_state is not None:
            mem = np_state.memory(UID_FNP_WEIGHTS, 0)
            if mem.size >= per_neuron * len(words):
                write_weight_words(mem, per_neuron, words, thswap)

    def account_inference(self, work: Work) -> None:
        """Clocks, power and board time of one inference job."""
        self.frames += 1
        self.synops += work.synops
        self.inference_clk += work.clk
        self.power.record(work.phases, 1, gap_s=self.link.frame_s)
        self.spend(self.link.frame_s + self.clocks.seconds(work.clk), powered=False)

    def spend(self, seconds: float, powered: bool = True) -> None:
        """Advance the board's modelled time (`powered`: idle at the floor meanwhile)."""
        self.board_time_s += seconds
        if powered:
            self.power.idle(seconds)

    # ----------------------------------------------------------------- faults
    def _dma_check(self) -> None:
        if self._take_fault("dma_timeout"):
            time.sleep(self.dma_stall_s)
            raise OSError(errno.ETIMEDOUT, "DMA transfer timed out")

    def inject_fault(self, kind: str, count: int = 1) -> None:
        """Arm a fault: "dma_timeout" (the next `count` DDR transfers), "hang" (the next
        descriptor never completes, until a core reset), "reset" (the chip powers on
        again at the next descriptor, dropping it) or "unplug" (now)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault '{kind}'; known: {', '.join(FAULT_KINDS)}")
        log.warning("%s: fault injected: %s", self.serial, kind)
        if kind == "unplug":
            self.unplug()
            return
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + count

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, kind: str) -> bool:
        with self._lock:
            left = self._faults.get(kind, 0)
            if left <= 0:
                return False
            self._faults[kind] = left - 1
            return True

    def unplug(self) -> None:
        """The board disappears."""
        with self._lock:
            self.present = False

    def replug(self) -> None:
        """The board comes back, freshly powered on (DDR cleared)."""
        with self._lock:
            self.present = True
            self.closed = False
            self.ddr.clear()
        self._boot()

    def __repr__(self) -> str:
        return f"<Akd1000Chip serial={self.serial} boot={self.boot_count}>"
