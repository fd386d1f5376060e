"""AKD1000 physical addresses the transport tests read and write (the real memory map)."""

from __future__ import annotations

from akida_rt.akd1000 import registers as regs
from akida_rt.akd1000.memory_map import SCRATCH_BASE, TOP_LEVEL_REG_BASE

DATA = SCRATCH_BASE  # the host's scratch in the chip's DDR
CHIP_INFO = regs.CHIP_INFO_ADDR  # chip version in bits 3:0 (AKD1000: 2)
RW_REG = regs.CONFIG_DMA.addr("CONT_ADDR", TOP_LEVEL_REG_BASE)  # a register that keeps a value
BAR_SIZE = 0x80000  # the top-level register block a simulated function's BAR decodes
PCI_AKD1500 = 0xA500


def chip_version(word: int) -> int:
    return int(regs.CHIP_INFO.get(word, "CHIP_VERSION"))
