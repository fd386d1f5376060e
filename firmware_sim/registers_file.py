"""The top-level register file of the simulated AKD1000 (base 0xFCC00000).

Identification (IP_VERSION, mesh info, install options), general control (core and mesh
resets), the FNP2 external-memory address registers, the interrupt controller, the EPG
register block and the SoC's chip-info register, as the Akida Engine reads and writes
them (api/akida/registers_top_level.h). The simulator-only block at SIM_BASE is
sim_registers.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

TOP_BASE = 0xFCC00000
TOP_SIZE = 0x80000
CHIP_INFO = 0xF0000010  # SoC configuration: chip version in bits 3:0 (AKD1000: 2)

IP_VERSION = 0x00
GENERAL_CONTROL = 0x04
FNP2_CONF = range(0x10, 0x20, 4)  # DDR address of each FNP2's weights (NP ids 0-3)
MESH_INFO1 = 0x50
MESH_INFO2 = 0x54
MESH_INFO3 = 0x58
SKIP_DMA_INFO = 0x64
INSTALL_OPTIONS = 0x68
IRQ_BASE = 0x70000
IRQ_GENERAL_CONTROL = IRQ_BASE + 0x0
IRQ_SOURCE_MASK = IRQ_BASE + 0x4
IRQ_SOURCE = IRQ_BASE + 0x8
IRQ_SOURCE_STATUS = IRQ_BASE + 0xC
IRQ_CLEAR = IRQ_BASE + 0x10
EPG_BASE = 0x40000
EPG_SIZE = 0x10000
SIM_BASE = 0x7F000  # simulator-only registers (sim_registers.py)
SIM_SIZE = 0x100

# GENERAL_CONTROL fields.
PR_MESH_RST_END = 0b11 << 1
AK_LOGIC_RST = 1 << 8
AK_CORE_RST = 1 << 9
AK_MESH_RST = 1 << 10
SCC_CORE_RESET = 1 << 12


@dataclass(frozen=True)
class Identity:
    """What the chip reports about itself."""

    ip_version: int = 0  # AKD1000 predates IP_VERSION: it reads 0, the host uses CHIP_INFO
    chip_version: int = 2  # NSoC_v2
    mesh_rows: int = 5
    mesh_cols: int = 5
    np_per_node: int = 4
    dma_node: tuple[int, int] = (3, 1)
    fnp2_node: tuple[int, int] = (4, 1)
    fnp2_count: int = 4

    def mesh_info(self) -> dict[int, int]:
        col, row = self.dma_node
        fcol, frow = self.fnp2_node
        return {
            MESH_INFO1: self.mesh_rows | (self.mesh_cols << 8) | (1 << 16) | (1 << 24),
            MESH_INFO2: self.np_per_node | (row << 8) | (col << 16) | (0 << 24) | (1 << 28),
            MESH_INFO3: frow | (fcol << 8) | ((self.fnp2_count - 1) << 16) | (4 << 24),
            SKIP_DMA_INFO: 0,
            # AE DMA, NP DMA and HRC installed; no SCC, no HRC LUT, no skip DMA.
            INSTALL_OPTIONS: 0b1 | 0b10 | (1 << 4),
        }


class TopRegisters:
    """Plain storage for the top-level registers plus the reset side effects.

    `on_core_reset` and `on_mesh_reset` are called when the host pulses those bits.
    """

    def __init__(self, identity: Identity | None = None) -> None:
        self.identity = identity or Identity()
        self.regs: dict[int, int] = {}
        self.epg: dict[int, int] = {}
        self.reset()

    def reset(self) -> None:
        """Power-on values."""
        self.regs = {IP_VERSION: self.identity.ip_version, **self.identity.mesh_info()}
        self.epg = {}

    def known(self, offset: int) -> bool:
        return (
            offset in (IP_VERSION, GENERAL_CONTROL)
            or offset in FNP2_CONF
            or offset in self.identity.mesh_info()
            or IRQ_BASE <= offset <= IRQ_CLEAR
            or EPG_BASE <= offset < EPG_BASE + EPG_SIZE
        )

    def read(self, offset: int) -> int:
        if EPG_BASE <= offset < EPG_BASE + EPG_SIZE:
            return self.epg.get(offset - EPG_BASE, 0)
        if not self.known(offset):
            log.warning("top-level: read of unknown register +%#x returns 0", offset)
            return 0
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> tuple[bool, bool]:
        """Store a host write; returns (core reset pulsed, mesh reset pulsed)."""
        if EPG_BASE <= offset < EPG_BASE + EPG_SIZE:
            self.epg[offset - EPG_BASE] = value
            return False, False
        if not self.known(offset):
            log.warning("top-level: write %#x to unknown register +%#x dropped", value, offset)
            return False, False
        if offset in (IP_VERSION, *self.identity.mesh_info()):
            log.warning("top-level: write to read-only register +%#x dropped", offset)
            return False, False
        if offset == IRQ_CLEAR:
            self.regs[IRQ_SOURCE_STATUS] = self.regs.get(IRQ_SOURCE_STATUS, 0) & ~value
            return False, False
        old = self.regs.get(offset, 0)
        self.regs[offset] = value
        if offset != GENERAL_CONTROL:
            return False, False
        rising = value & ~old
        core = bool(rising & (AK_CORE_RST | SCC_CORE_RESET))
        mesh = bool(rising & (AK_MESH_RST | AK_LOGIC_RST))
        if value & PR_MESH_RST_END:
            log.error(
                "top-level: partial reconfiguration (multi-pass) requested; AKD1000 has "
                "no multi-pass: ignored"
            )
        return core, mesh

    def fnp2_address(self, np_id: int) -> int:
        """The DDR address the host gave FNP2 `np_id` for its weights."""
        return self.regs.get(FNP2_CONF[np_id], 0)
