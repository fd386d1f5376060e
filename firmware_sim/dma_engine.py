"""One DMA engine block of the simulated AKD1000: its registers and its descriptor ring.

The host puts descriptors in a ring in DDR (container address and size registers), sets
RUN and advances LAST_DESC_CONT; the engine fetches each new descriptor, hands it to its
unit (config_dma.py, inference_dma.py) and reports completion as the Akida Engine reads
it: DESC_STATUS job id, BUF_MON_STATUS end bits (cleared by the host), buffer counter and
timer. Offsets and fields as in the engine's registers_dma_engine.h.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from akida_rt.akd1000 import registers as regs
from akida_rt.akd1000.descriptors import DESC_VERSION

log = logging.getLogger(__name__)

# Register offsets inside a DMA block (the layout akida_rt.akd1000.registers holds).
_AT = {r.name: r.offset for r in regs.CONFIG_DMA.registers}
CTRL = _AT["CTRL"]
DESC_CONT = _AT["DESC_CONT"]
CONT_ADDR = _AT["CONT_ADDR"]
CONT_SIZE = _AT["CONT_SIZE"]
DESC_STATUS = _AT["DESC_STATUS"]
INPUT_PAYLOAD = _AT["INPUT_PAYLOAD"]
OUTPUT_PAYLOAD = _AT["OUTPUT_PAYLOAD"]
OUTPUT_WORD_COUNT = _AT["OUTPUT_WORD_COUNT"]
INPUT_WORD_COUNT = _AT["INPUT_WORD_COUNT"]
BUF_MON_CTRL = _AT["IB_BUF_MON_CTRL"]
BUF_MON_STATUS = _AT["BUF_MON_STATUS"]
BUFFER_COUNTER = _AT["BUFFER_COUNTER_STATUS"]
BUFFER_TIMER = _AT["BUFFER_TIMER_VALUE"]
REPLAY_BUF_CTRL = _AT["REPLAY_BUF_CTRL"]
KNOWN = frozenset(_AT.values())
READ_ONLY = frozenset(
    _AT[name]
    for name in (
        "DESC_STATUS", "INPUT_PAYLOAD", "OUTPUT_PAYLOAD", "OUTPUT_WORD_COUNT", "BUF_MON_STATUS",
        "BUFFER_COUNTER_STATUS", "BUFFER_TIMER_VALUE", "DEBUG_BUS0_STATUS", "DEBUG_BUS1_STATUS",
        "DEBUG_BUS2_STATUS", "REPLAY_STATUS_AND_DEBUG", "DEBUG_AXI_STATUS", "IB_CHECKSUM",
        "OB_CHECKSUM",
    )
)  # fmt: skip

# Fields.
CTRL_RUN = 1 << 8
CTRL_SOFT_RESET = 1 << 9
IDLE_DESC = 0xFF  # CUR/LAST_DESC_CONT after a reset: nothing processed yet
MON_STATUS_CLEAR = 1 << 0
MON_COUNTER_CLEAR = 1 << 1
MON_TIMER_EN = 1 << 13
MON_MASK_OB = 1 << 16
STATUS_OB_END = 1 << 0
INT_OB_END = 1 << 16
REPLAY_BURST_MODE = 1 << 0


@dataclass
class Completion:
    """What a unit reports for one descriptor: job id, payload addresses and word counts,
    and the NP clocks the job took (for the buffer timer)."""

    job_id: int = 0
    input_addr: int = 0
    output_addr: int = 0
    output_words: int = 0
    input_words: int = 0
    clk: int = 0


#: A unit's descriptor handler: (descriptor words) -> Completion, or None when the
#: descriptor could not run (the unit logged why; the engine stops as hardware would).
Handler = Callable[[np.ndarray], "Completion | None"]
#: Reads `n` bytes of DDR at an address; None when the address is outside DDR.
Fetch = Callable[[int, int], "bytes | None"]


class DmaEngine:
    """The registers and ring walker of one DMA block (config, event or HRC).

    Args:
        name: "config", "event" or "hrc" (log lines and errors name it).
        fetch: reads DDR for descriptors.
        handler: runs one descriptor.
    """

    def __init__(self, name: str, fetch: Fetch, handler: Handler) -> None:
        self.name = name
        self._fetch = fetch
        self._handler = handler
        self.regs: dict[int, int] = {}
        self.stalled = False  # a bad descriptor stopped the ring until a reset
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Soft or core reset: registers to their defaults, ring idle, status clear."""
        self.regs = {
            CTRL: DESC_VERSION,
            DESC_CONT: (IDLE_DESC << 16) | IDLE_DESC,
            DESC_STATUS: DESC_VERSION,
        }
        self.stalled = False

    @property
    def running(self) -> bool:
        return bool(self.regs.get(CTRL, 0) & CTRL_RUN)

    @property
    def ring_size(self) -> int:
        return ((self.regs.get(CONT_SIZE, 0) >> 16) & 0xFF) + 1

    @property
    def desc_bytes(self) -> int:
        return (self.regs.get(CONT_SIZE, 0) & 0x1F) * 32

    def _cur_last(self) -> tuple[int, int]:
        reg = self.regs.get(DESC_CONT, 0)
        return reg & 0xFF, (reg >> 16) & 0xFF

    def pending(self) -> bool:
        """Descriptors the host queued that the engine has not run yet."""
        cur, last = self._cur_last()
        return cur != last

    # ------------------------------------------------------------- registers
    def read(self, offset: int) -> int:
        if offset not in KNOWN:
            log.warning("%s DMA: read of unknown register +%#x returns 0", self.name, offset)
            return 0
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> bool:
        """Store a host write; True when the ring may have work to run now."""
        if offset not in KNOWN:
            log.warning(
                "%s DMA: write %#x to unknown register +%#x dropped", self.name, value, offset
            )
            return False
        if offset in READ_ONLY:
            log.warning("%s DMA: write to read-only register +%#x dropped", self.name, offset)
            return False
        if offset == CTRL:
            if value & CTRL_SOFT_RESET:
                self.reset()
                return False
            self.regs[CTRL] = (value & ~0xF) | DESC_VERSION
            return self.running
        if offset == BUF_MON_CTRL:
            if value & MON_STATUS_CLEAR:
                self.regs[BUF_MON_STATUS] = 0
            if value & MON_COUNTER_CLEAR:
                self.regs[BUFFER_COUNTER] = 0
            was_timing = self.regs.get(BUF_MON_CTRL, 0) & MON_TIMER_EN
            if value & MON_TIMER_EN and not was_timing:
                self.regs[BUFFER_TIMER] = 0
            self.regs[BUF_MON_CTRL] = value & ~(MON_STATUS_CLEAR | MON_COUNTER_CLEAR | 0b100)
            return False
        if offset == REPLAY_BUF_CTRL and value & REPLAY_BURST_MODE:
            log.error(
                "%s DMA: replay (multi-pass) mode requested; AKD1000 has no multi-pass: "
                "the mode is ignored",
                self.name,
            )
        self.regs[offset] = value
        return offset == DESC_CONT and self.running

    # ------------------------------------------------------------------ ring
    def next_index(self) -> int:
        cur, _ = self._cur_last()
        nxt = cur + 1
        return 0 if nxt > self.ring_size - 1 else nxt

    def step(self) -> bool:
        """Run the next queued descriptor; False when there is none or the ring stopped."""
        if self.stalled or not self.running or not self.pending():
            return False
        index = self.next_index()
        addr = self.regs.get(CONT_ADDR, 0) + index * self.desc_bytes
        _, last = self._cur_last()
        size = self.desc_bytes
        raw = self._fetch(addr, size) if size else None
        if raw is None:
            self._stall(f"descriptor {index} at {addr:#x} ({size} bytes) is not in DDR")
            return False
        words = np.frombuffer(raw, "<u4").astype(np.uint32)
        if (int(words[0]) & 0xF) != DESC_VERSION:
            self._stall(f"descriptor {index} at {addr:#x} has version {int(words[0]) & 0xF}")
            return False
        self.regs[DESC_CONT] = (last << 16) | index
        done = self._handler(words)
        if done is None:
            self.stalled = True
            return False
        self.complete(done, int(words[0]))
        return True

    def complete(self, done: Completion, word0: int) -> None:
        """Publish a finished descriptor as the host polls it."""
        regs = self.regs
        regs[DESC_STATUS] = ((done.job_id & 0xFFFF) << 16) | DESC_VERSION
        regs[INPUT_PAYLOAD] = done.input_addr
        regs[OUTPUT_PAYLOAD] = done.output_addr
        regs[OUTPUT_WORD_COUNT] = done.output_words
        regs[INPUT_WORD_COUNT] = done.input_words & 0xFFFF
        regs[BUFFER_COUNTER] = (regs.get(BUFFER_COUNTER, 0) + 1) & 0xFFFFFFFF
        if regs.get(BUF_MON_CTRL, 0) & MON_TIMER_EN:
            regs[BUFFER_TIMER] = min(regs.get(BUFFER_TIMER, 0) + done.clk, 0xFFFFFFFF)
        status = regs.get(BUF_MON_STATUS, 0) | STATUS_OB_END
        ob_irq_disabled = word0 & (1 << 12)
        if not regs.get(BUF_MON_CTRL, 0) & MON_MASK_OB and not ob_irq_disabled:
            status |= INT_OB_END
        regs[BUF_MON_STATUS] = status

    def _stall(self, why: str) -> None:
        log.error("%s DMA: %s; the engine stops until a reset", self.name, why)
        self.stalled = True
