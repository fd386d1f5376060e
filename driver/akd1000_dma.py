"""One AKD1000 DMA controller (config, event or HRC) driven over the bus: soft reset,
descriptor ring, output header, interrupt masks, run/stop, enqueue, completion.

Each operation makes the register accesses BrainChip's Akida Engine makes for it, in the
same order (read-modify-write where the engine reads first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from akida_rt.driver.bus import Bus

from akida_rt.akd1000 import registers as regs
from akida_rt.akd1000.descriptors import OUTPUT_HEADER_BYTES
from akida_rt.errors import TransportTimeout

COMPLETION_TIMEOUT_S = 5.0  # the engine's polling budget for a config descriptor
_FAST_POLLS = 64  # polls before the loop starts yielding the CPU


@dataclass
class DmaEngine:
    """The DMA controller `block` of the chip whose registers start at `top`."""

    bus: Bus
    block: regs.Block
    desc_bytes: int
    top: int
    ring: int = 0  # DDR address of the descriptor ring, 0 when none is allocated
    timeout_s: float = COMPLETION_TIMEOUT_S  # completion polling budget

    def addr(self, name: str) -> int:
        return self.top + self.block.base + self.block[name].offset

    def read(self, name: str) -> int:
        return self.bus.read32(self.addr(name))

    def write(self, name: str, value: int) -> None:
        self.bus.write32(self.addr(name), value)

    def modify(self, name: str, **fields: int) -> None:
        """Read the register, set `fields`, write it back."""
        self.write(name, self.block[name].set(self.read(name), **fields))

    # -- set-up -----------------------------------------------------------------------
    def soft_reset(self) -> None:
        self.write("CTRL", self.block["CTRL"].set(SOFT_RESET=1))

    def configure_ring(self, n_descriptors: int) -> None:
        self.write("CONT_ADDR", self.ring)
        self.write(
            "CONT_SIZE",
            self.block["CONT_SIZE"].set(
                DESC_CONT_SIZE=self.desc_bytes // 32, MAX_DESC_CONTS=n_descriptors - 1
            ),
        )

    def output_header(self, enable: bool) -> None:
        self.modify("CTRL", WR_INFO_EN=int(enable), WR_INFO_HDR=1,
                    WR_INFO_HDR_SZ=OUTPUT_HEADER_BYTES)  # fmt: skip

    def mask_interrupts(self, multipass: bool = False) -> None:
        """Only the outbound-buffer end interrupt (single pass) stays unmasked."""
        self.modify("IB_BUF_MON_CTRL", MASK_OB_END=int(multipass), MASK_IB_END=1,
                    MASK_EXT_DMA_END=1, MASK_DESC_BURST_END=int(not multipass))  # fmt: skip

    def toggle(self, run: bool) -> None:
        self.modify("CTRL", RUN=int(run), INT_EN=1)

    def init_default(self, n_descriptors: int, output_header: bool = True) -> None:
        """An input (or read-only config) DMA ready for `n_descriptors` in its ring, off."""
        self.soft_reset()
        self.configure_ring(n_descriptors)
        self.output_header(output_header)
        self.mask_interrupts(False)
        self.toggle(False)

    def toggle_timer(self, enabled: bool) -> None:
        self.modify("IB_BUF_MON_CTRL", BUF_TIMER_EN=int(enabled))

    def toggle_pipeline(self, enabled: bool) -> None:
        # buffer end select 1: the inbound end frees the next job (full pipelining)
        self.modify("IB_BUF_MON_CTRL", BUF_END_SELECT=int(enabled))

    def read_timer(self) -> int:
        return self.read("BUFFER_TIMER_VALUE")

    # -- jobs -------------------------------------------------------------------------
    def enqueue(self, descriptor: np.ndarray) -> int:
        """Write `descriptor` into the next ring slot and hand it to the DMA; returns the
        slot's address."""
        size_reg = self.read("CONT_SIZE")
        n = self.block["CONT_SIZE"].get(size_reg, "MAX_DESC_CONTS") + 1
        cont = self.read("DESC_CONT")
        # after a reset LAST_DESC_CONT reads 0xFF: the next slot is then 0
        last = self.block["DESC_CONT"].get(cont, "LAST_DESC_CONT") + 1
        if last > n - 1:
            last = 0
        slot = self.ring + self.desc_bytes * last
        self.bus.write(slot, np.asarray(descriptor, "<u4").tobytes())
        self.write("DESC_CONT", self.block["DESC_CONT"].set(cont, LAST_DESC_CONT=last))
        return slot

    def last_job_id(self) -> int:
        return self.block["DESC_STATUS"].get(self.read("DESC_STATUS"), "JOB_ID")

    def interrupt(self, flag: str) -> bool:
        return bool(self.block["BUF_MON_STATUS"].get(self.read("BUF_MON_STATUS"), flag))

    def clear_interrupts(self) -> None:
        self.modify("IB_BUF_MON_CTRL", STATUS_CLEAR=1)

    def wait(self, flag: str, what: str) -> None:
        """Poll BUF_MON_STATUS until `flag` is set, then clear the status."""
        timeout = self.timeout_s
        start = time.monotonic()
        polls = 0
        while not self.interrupt(flag):
            polls += 1
            if time.monotonic() - start > timeout:
                raise TransportTimeout(
                    f"AKD1000 {self.block.name} did not finish {what} in {timeout:g} s "
                    f"(BUF_MON_STATUS.{flag} never set): reset the device"
                )
            if polls > _FAST_POLLS:
                time.sleep(0.0001)
        self.clear_interrupts()

    def run_to_completion(self, what: str) -> None:
        """Run the (config) DMA until its outbound-buffer end, then stop it."""
        self.toggle(True)
        self.wait("INT_OB", what)
        self.toggle(False)
