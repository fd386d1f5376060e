"""Where things live in the AKD1000's 32-bit physical address space, as the host sees it.

Figures from BrainChip's Akida Engine (api/akd1000/memory_mapping.h) and the kernel driver
akida_dw_edma (reserved eDMA window, transfer chunking, timeout).
"""

from __future__ import annotations

# Every Akida register block is at a fixed offset from this base (IP_VERSION is at +0).
TOP_LEVEL_REG_BASE = 0xFCC00000
# Size of the top-level register space reached from the host (the largest block offset,
# the interrupt controller at +0x70000, plus one 64 KiB block).
TOP_LEVEL_REG_SIZE = 0x80000

# The chip's DDR as seen by the Akida DMA engines.
DDR_BASE = 0x20000000
# The engine keeps the first 64 MiB of DDR for the kernel driver's own use...
DDR_RESERVED_SIZE = 64 * 1024 * 1024
# ...and works in the scratch area after it: descriptors, tracks, inputs and outputs.
SCRATCH_BASE = DDR_BASE + DDR_RESERVED_SIZE
SCRATCH_SIZE = 192 * 1024 * 1024
DDR_SIZE = DDR_RESERVED_SIZE + SCRATCH_SIZE

# akida_dw_edma refuses (EINVAL) any pread/pwrite that touches the eDMA controller's RAM
# window, which overlaps the start of DDR.
EDMA_WINDOW_START = 0x20000000
EDMA_WINDOW_END = 0x203FFFFF  # inclusive

# The kernel driver moves data by DMA in chunks of at most this many bytes...
CHUNK_SIZE = 1024
# ...and gives ETIMEDOUT for a DMA that does not finish in this many seconds.
DMA_TIMEOUT_S = 2.0

# Registers are 32-bit words; DMA buffers and descriptors are 32-bit aligned.
WORD = 4


def touches_edma_window(addr: int, size: int) -> bool:
    """True if [addr, addr + size) overlaps the kernel's reserved eDMA window."""
    return size > 0 and addr <= EDMA_WINDOW_END and addr + size - 1 >= EDMA_WINDOW_START


def in_scratch(addr: int, size: int) -> bool:
    """True if [addr, addr + size) lies inside the scratch area."""
    return addr >= SCRATCH_BASE and addr + size <= SCRATCH_BASE + SCRATCH_SIZE
