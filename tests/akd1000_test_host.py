"""A minimal AKD1000 host written for the tests: it drives a chip through its registers and
DDR the way BrainChip's Akida Engine does (resets, config DMA of every track through
scratch, EPG, interrupts, a descriptor ring per input DMA, job ids, output headers).

Independent of the simulated chip's code: it uses only the bus and akida_rt.akd1000's
layouts, so a test that passes with it says the chip answers the real protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from akida_rt.akd1000 import descriptors as d
from akida_rt.akd1000.memory_map import SCRATCH_BASE, SCRATCH_SIZE, TOP_LEVEL_REG_BASE
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.akd1000.program_info import IoType, Track, read_program_info
from akida_rt.akd1000.registers import CONFIG_DMA, EVENT_DMA, HRC_DMA, INTERRUPTS, TOP, Block

TOP_BASE = TOP_LEVEL_REG_BASE
OB_INT = 1 << 16
STATUS_CLEAR = 1 << 0


class HostTimeout(Exception):
    """The chip did not signal completion in time."""


@dataclass
class Scratch:
    """A bump allocator over the engine's scratch area."""

    next: int = SCRATCH_BASE

    def alloc(self, n: int) -> int:
        addr = self.next
        self.next += (n + 31) // 32 * 32
        assert self.next <= SCRATCH_BASE + SCRATCH_SIZE
        return addr


@dataclass
class Host:
    """Programs and runs a chip over `bus` (read/write/read32/write32)."""

    bus: Any
    timeout_s: float = 2.0
    scratch: Scratch = field(default_factory=Scratch)
    program: ProgramBinary | None = None
    jobs: int = 0

    # -- registers ---------------------------------------------------------------------
    def addr(self, block: Block, name: str) -> int:
        return block.addr(name, TOP_BASE)

    def rd(self, block: Block, name: str) -> int:
        return self.bus.read32(self.addr(block, name))

    def wr(self, block: Block, name: str, value: int) -> None:
        self.bus.write32(self.addr(block, name), value)

    def pulse(self, **bits: int) -> None:
        """Set then clear GENERAL_CONTROL fields (a reset pulse)."""
        reg = TOP["GENERAL_CONTROL"]
        value = self.rd(TOP, "GENERAL_CONTROL")
        self.wr(TOP, "GENERAL_CONTROL", reg.set(value, **bits))
        self.wr(TOP, "GENERAL_CONTROL", value)

    # -- DMA ring ----------------------------------------------------------------------
    def init_ring(self, block: Block, desc_words: int, count: int, header: bool) -> int:
        ring = self.scratch.alloc(4 * desc_words * count)
        self.wr(block, "CTRL", block["CTRL"].set(0, SOFT_RESET=1))
        self.wr(block, "CONT_ADDR", ring)
        size = block["CONT_SIZE"].set(
            0, DESC_CONT_SIZE=desc_words * 4 // 32, MAX_DESC_CONTS=count - 1
        )
        self.wr(block, "CONT_SIZE", size)
        ctrl = block["CTRL"].set(self.rd(block, "CTRL"), WR_INFO_EN=int(header), WR_INFO_HDR=1)
        self.wr(block, "CTRL", ctrl)
        mon = block["IB_BUF_MON_CTRL"].set(
            self.rd(block, "IB_BUF_MON_CTRL"), MASK_IB_END=1,
            MASK_EXT_DMA_END=1, MASK_DESC_BURST_END=1, BUF_TIMER_EN=1,
        )  # fmt: skip
        self.wr(block, "IB_BUF_MON_CTRL", mon)
        return ring

    def enqueue(self, block: Block, desc: np.ndarray) -> None:
        size = self.rd(block, "CONT_SIZE")
        count = block["CONT_SIZE"].get(size, "MAX_DESC_CONTS") + 1
        unit = block["CONT_SIZE"].get(size, "DESC_CONT_SIZE") * 32
        cont = self.rd(block, "DESC_CONT")
        last = block["DESC_CONT"].get(cont, "LAST_DESC_CONT") + 1
        last = 0 if last > count - 1 else last
        ring = self.rd(block, "CONT_ADDR")
        self.bus.write(ring + unit * last, desc.astype("<u4").tobytes())
        self.wr(block, "DESC_CONT", block["DESC_CONT"].set(cont, LAST_DESC_CONT=last))

    def run(self, block: Block, on: bool) -> None:
        ctrl = self.rd(block, "CTRL")
        self.wr(block, "CTRL", block["CTRL"].set(ctrl, RUN=int(on), INT_EN=1))

    def wait(self, block: Block, what: str) -> None:
        end = time.monotonic() + self.timeout_s
        while not self.rd(block, "BUF_MON_STATUS") & OB_INT:
            if time.monotonic() > end:
                raise HostTimeout(f"{block.name}: {what} did not complete")
        mon = self.rd(block, "IB_BUF_MON_CTRL")
        self.wr(block, "IB_BUF_MON_CTRL", mon | STATUS_CLEAR)

    def config_write(self, words: np.ndarray) -> None:
        addr = self.scratch.alloc(4 * len(words))
        self.bus.write(addr, np.asarray(words, "<u4").tobytes())
        self.enqueue(CONFIG_DMA, d.ConfigDescriptor(True, addr, len(words)).encode())
        self.run(CONFIG_DMA, True)
        self.wait(CONFIG_DMA, "config write")
        self.run(CONFIG_DMA, False)

    def config_read(self, header: np.ndarray, words: int) -> np.ndarray:
        src = self.scratch.alloc(8)
        dst = self.scratch.alloc(4 * words)
        self.bus.write(src, np.asarray(header, "<u4").tobytes())
        self.enqueue(CONFIG_DMA, d.ConfigDescriptor(False, src, 2, dst).encode())
        self.run(CONFIG_DMA, True)
        self.wait(CONFIG_DMA, "config read")
        self.run(CONFIG_DMA, False)
        return np.frombuffer(self.bus.read(dst, 4 * words), "<u4").copy()

    # -- the protocol --------------------------------------------------------------------
    def identify(self) -> tuple[int, int]:
        """(IP_VERSION, chip version from the SoC's CHIP_INFO)."""
        return self.rd(TOP, "IP_VERSION"), self.bus.read32(0xF0000010) & 0xF

    def load(self, blob: bytes, check: bool = True) -> ProgramBinary:
        """Reset the core and mesh, play every track, the EPG writes and interrupts
        (`check`: refuse a program for another device first, as the engine does)."""
        if check:
            prog = ProgramBinary.from_bytes(blob)
        else:
            n = int.from_bytes(blob[:4], "little")
            prog = ProgramBinary(read_program_info(blob[4 : 4 + n]), blob[4 + n :])
        self.scratch = Scratch()
        self.pulse(AK_CORE_RST=1, SCC_CORE_RESET=1)
        self.pulse(AK_LOGIC_RST=1, AK_MESH_RST=1)
        n = max(2, prog.info.max_num_desc or len(prog.info.tracks()))
        self.init_ring(CONFIG_DMA, d.CONFIG_DESC_WORDS, n, header=False)
        tracks: list[Track] = [t for p in prog.info.passes or () for r in p.records or ()
                               for t in r.tracks or ()]  # fmt: skip
        ll = prog.info.learning_layer
        if ll is not None:
            assert ll.inference_registers is not None and ll.ram is not None
            tracks += [ll.inference_registers, *(ll.ram.tracks or ())]
        for track in tracks:
            self.config_write(prog.track_words(track))
        for f in prog.info.fnp2_tracks():
            addr = self.scratch.alloc(4 * f.track.words)
            self.bus.write(addr, prog.track_words(f.track).astype("<u4").tobytes())
            self.bus.write32(TOP_BASE + 0x10 + 4 * f.np.id, addr)
        for offset, value in prog.info.epg_writes or ():
            self.bus.write32(TOP_BASE + 0x40000 + offset, value)
        dense = prog.info.input_type == IoType.DENSE
        self.wr(INTERRUPTS, "SOURCE_MASK", INTERRUPTS["SOURCE_MASK"].set(
            0xFFFFFFFF, **{"SCC_HRC" if dense else "AEDMA": 0}))  # fmt: skip
        self.wr(INTERRUPTS, "GENERAL_CONTROL", 1)
        self.program = prog
        return prog

    @property
    def input_dma(self) -> Block:
        assert self.program is not None
        return HRC_DMA if self.program.info.input_type == IoType.DENSE else EVENT_DMA

    def set_batch_size(self, n: int) -> None:
        dma = self.input_dma
        words = d.HRC_DESC_WORDS if dma is HRC_DMA else d.EVENT_DESC_WORDS
        self.init_ring(dma, words, max(n, 2), header=True)
        self.jobs = self.rd(dma, "DESC_STATUS") >> 16

    def forward(self, x: np.ndarray, labels: list[int] | None = None) -> np.ndarray:
        """(N, h, w, c) uint8 inputs -> (N, *output_dims) int32 outputs, one job each."""
        assert self.program is not None
        info = self.program.info
        dma = self.input_dma
        out = []
        for i, sample in enumerate(x):
            learn_class = 0 if labels is None else labels[i] + 1
            self.jobs = (self.jobs + 1) & 0xFFFF
            out_addr = self.scratch.alloc(0x20 + 8 * int(np.prod(info.output_dims)) + 64)
            if dma is HRC_DMA:
                in_addr = self.scratch.alloc(sample.size)
                self.bus.write(in_addr, np.ascontiguousarray(sample, np.uint8).tobytes())
                desc = d.HrcDescriptor.for_image(
                    self.jobs, in_addr, out_addr, sample.shape, info.dense_window_w,
                    info.dense_window_h, learn_class,
                ).encode()  # fmt: skip
            else:
                fnp = info.input_type == IoType.FNP_SPARSE
                events = (d.fnp_input_events if fnp else d.cnp_input_events)(sample).reshape(-1)
                in_addr = self.scratch.alloc(4 * events.size)
                self.bus.write(in_addr, events.astype("<u4").tobytes())
                desc = d.EventDescriptor(self.jobs, in_addr, events.size, out_addr,
                                         learn_class).encode()  # fmt: skip
            self.run(dma, True)
            self.enqueue(dma, desc)
            end = time.monotonic() + self.timeout_s
            while self.rd(dma, "DESC_STATUS") >> 16 != self.jobs:
                if time.monotonic() > end:
                    raise HostTimeout(f"{dma.name}: job {self.jobs} did not complete")
            self.wr(dma, "IB_BUF_MON_CTRL", self.rd(dma, "IB_BUF_MON_CTRL") | STATUS_CLEAR)
            out.append(self.read_output(out_addr))
        return np.stack(out)

    def read_output(self, addr: int) -> np.ndarray:
        assert self.program is not None
        info = self.program.info
        n = d.decode_output_header(self.bus.read32(addr))
        words = np.frombuffer(self.bus.read(addr + 0x20, 4 * n), "<u4") if n else np.zeros(0, "<u4")
        dims = tuple(info.output_dims or ())
        y = np.zeros(dims, np.int32)
        if info.output_type == IoType.FNP_SPARSE:
            f, v = d.decode_fnp_events(words, signed=not info.activation)
            y.reshape(-1)[f] = v
        elif info.activation:
            x0, x1, f, v = d.decode_cnp_events(words)
            if info.output_type == IoType.HRC_SPARSE:
                x0, x1 = x1, x0
            y[x0, x1, f] = v
        else:
            x0, x1, f, v = d.decode_cnp_potentials(words, hrc=info.output_type == IoType.HRC_SPARSE)
            y[x0, x1, f] = v
        return y


def digits_case() -> tuple[bytes, np.ndarray, np.ndarray]:
    """(program binary, inputs, akida's software outputs) of the digits CNN (needs akida)."""
    import akida

    from akida_rt.model import zoo
    from tests.metatf_models import calibrate, from_zoo, sample

    model = from_zoo(zoo.digits_cnn(seed=0))
    x = sample(model, 4, 0)
    calibrate(model, x, 0)
    y = model.forward(x)
    model.map(akida.AKD1000(), hw_only=True)
    return bytes(model.sequences[0].program), x, y


def expected_state(blob: bytes) -> dict[tuple, np.ndarray]:
    """What each NP memory must hold after every track: the program's own packets."""
    prog = ProgramBinary.from_bytes(blob)
    tracks = [t for p in prog.info.passes for r in p.records for t in r.tracks or ()]
    state: dict[tuple, np.ndarray] = {}
    for t in tracks:
        for p in prog.packets(t):
            for ident in [(0, 0, 0)] if p.hrc else [(p.col, p.row, i) for i in p.nps]:
                mem = state.setdefault((ident, p.type_id), np.zeros(0, np.uint32))
                if mem.size < p.start + len(p.data):
                    mem = np.concatenate(
                        [mem, np.zeros(p.start + len(p.data) - mem.size, np.uint32)]
                    )
                mem[p.start : p.start + len(p.data)] = p.data
                state[(ident, p.type_id)] = mem
    return state
