"""Every AKD1000 register the Akida Engine touches, as data: blocks at offsets from the
top-level register base, registers at offsets in their block, bit fields in a register.

Read from BrainChip's Akida Engine headers (registers_top_level.h, registers_dma_engine.h,
fnp2_mem_conf_reg.h, device_programmer.cpp for the EPG) as the specification.
"""

from __future__ import annotations

from dataclasses import dataclass

from akida_rt.akd1000.memory_map import TOP_LEVEL_REG_BASE


@dataclass(frozen=True)
class Field:
    """`width` bits of a 32-bit register starting at bit `lsb`."""

    name: str
    lsb: int
    width: int = 1

    @property
    def max(self) -> int:
        return (1 << self.width) - 1

    @property
    def mask(self) -> int:
        return self.max << self.lsb

    def get(self, word: int) -> int:
        """The field's value in `word`."""
        return (word >> self.lsb) & self.max

    def set(self, word: int, value: int) -> int:
        """`word` with this field set to `value` (ValueError if it does not fit)."""
        if not 0 <= value <= self.max:
            raise ValueError(f"{value} does not fit the {self.width}-bit field {self.name}")
        return (word & ~self.mask & 0xFFFFFFFF) | (value << self.lsb)


@dataclass(frozen=True)
class Register:
    """A 32-bit register at `offset` bytes into its block."""

    name: str
    offset: int
    fields: tuple[Field, ...] = ()

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name}")

    def get(self, word: int, name: str) -> int:
        """Field `name` of `word`."""
        return self.field(name).get(word)

    def set(self, word: int = 0, **values: int) -> int:
        """`word` with the named fields set, e.g. `CTRL.set(w, RUN=1, INT_EN=1)`."""
        for name, value in values.items():
            word = self.field(name).set(word, value)
        return word

    def decode(self, word: int) -> dict[str, int]:
        """Every field of `word` by name."""
        return {f.name: f.get(word) for f in self.fields}


@dataclass(frozen=True)
class Block:
    """A register block `base` bytes after the top-level register base."""

    name: str
    base: int
    registers: tuple[Register, ...]

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"block {self.name} has no register {name}")

    def addr(self, name: str, top: int = TOP_LEVEL_REG_BASE) -> int:
        """Physical address of register `name` for a chip whose top level is at `top`."""
        return top + self.base + self[name].offset

    def at(self, offset: int) -> Register | None:
        """The register at `offset` bytes into this block, if it is one we know."""
        for r in self.registers:
            if r.offset == offset:
                return r
        return None


F = Field
R = Register

TOP = Block(
    "top_level",
    0x0,
    (
        R("IP_VERSION", 0x0, (F("MINOR_REV", 0, 8), F("MAJOR_REV", 8, 8), F("PROD_ID", 16, 8),
                              F("VENDOR_ID", 24, 8))),
        R("GENERAL_CONTROL", 0x4, (
            F("REWIND_MODE", 0), F("PR_MESH_RST_END", 1, 2), F("AK_LOGIC_RST", 8),
            F("AK_CORE_RST", 9), F("AK_MESH_RST", 10), F("SCC_CORE_RESET", 12),
            F("AK_CORE_CLKPD", 16), F("AK_C2C_USP_CLKPD", 17), F("AK_C2C_DSP_CLKPD", 18),
            F("SCC_CORE_CLKPD", 20),
        )),
        # DDR address of each FNP2's weights (one register per NP id 0-3 of the FNP2 node).
        R("FNP2_DDR_CONF0", 0x10), R("FNP2_DDR_CONF1", 0x14),
        R("FNP2_DDR_CONF2", 0x18), R("FNP2_DDR_CONF3", 0x1C),
        R("MESH_INFO1", 0x50, (F("MESH_ROWS", 0, 8), F("MESH_COLS", 8, 8),
                               F("R1_START_COL", 16, 8), F("R2_START_COL", 24, 8))),
        R("MESH_INFO2", 0x54, (F("NP_PER_NODE", 0, 3), F("DMA_NODE_EMPTY", 4),
                               F("DMA_NODE_ROW", 8, 8), F("DMA_NODE_COL", 16, 8),
                               F("DMA_AE_NP", 24, 2), F("DMA_CFG_NP", 28, 2))),
        R("MESH_INFO3", 0x58, (F("FNP2_ROW", 0, 8), F("FNP2_COL", 8, 8), F("FNP2_NUM", 16, 2),
                               F("COL_NUM_LAST_NP", 24, 8))),
        R("SKIPS_DMA_INFO", 0x64, (F("SKIPDMA_COL_INST", 0, 16), F("SKIPDMA_CH_NUM", 24, 8))),
        R("INSTALL_OPTIONS", 0x68, (
            F("AEDMA_INSTALL", 0), F("NPDMA_INSTALL", 1), F("HRC_INSTALL", 4),
            F("SCC_INSTALL", 5), F("HRC_LUT_INSTALL", 6), F("NP_SPI_INSTALL", 8),
            F("SINGLE_NP_IP", 12), F("RPOT_NUM", 24, 8),
        )),
    ),
)  # fmt: skip

# One bit per interrupt source, the same layout in the mask, source and status registers.
_IRQ_SOURCES = (F("AEDMA", 0), F("AEIF", 1), F("CFGDMA", 2), F("CFGIF", 3), F("SCC_HRC", 5),
                F("PICO_ANOMALY", 12))  # fmt: skip

INTERRUPTS = Block(
    "interrupt_controller",
    0x70000,
    (
        R("GENERAL_CONTROL", 0x0, (F("GLB_INT_EN", 0),)),
        R("SOURCE_MASK", 0x4, _IRQ_SOURCES),
        R("SOURCE", 0x8, _IRQ_SOURCES),
        R("SOURCE_STATUS", 0xC, _IRQ_SOURCES),
        R("CLEAR_SOURCE_STATUS", 0x10, (F("PICO_ANOMALY", 8),)),
    ),
)

# The three DMA controllers share one register layout.
_DMA_REGISTERS = (
    R("CTRL", 0x0, (
        F("VERSION", 0, 4), F("RUN", 8), F("SOFT_RESET", 9), F("INT_EN", 10),
        F("RUN_HW_EN", 11), F("OB_BIG_ENDIAN", 20), F("IB_BIG_ENDIAN", 21),
        F("VALID_FIFO_EN", 23), F("WR_INFO_EN", 24), F("WR_INFO_HDR", 25),
        F("WR_INFO_HDR_SZ", 26, 6),
    )),
    # Ring indices: the DMA processes descriptors from CUR up to LAST (0xFF after reset).
    R("DESC_CONT", 0x4, (F("CUR_DESC_CONT", 0, 8), F("LAST_DESC_CONT", 16, 8),
                         F("CHAINED_DESC_BURST", 31))),
    R("CONT_ADDR", 0x8),  # DDR address of the descriptor ring
    # Descriptor size in 32-byte units; ring length - 1.
    R("CONT_SIZE", 0xC, (F("DESC_CONT_SIZE", 0, 5), F("MAX_DESC_CONTS", 16, 8))),
    # JOB_ID: the job id of the last descriptor the DMA finished.
    R("DESC_STATUS", 0x10, (F("DESC_VERSION", 0, 4), F("JOB_ID", 16, 16))),
    R("INPUT_PAYLOAD", 0x14),
    R("OUTPUT_PAYLOAD", 0x18),
    R("OUTPUT_WORD_COUNT", 0x1C),
    R("INPUT_WORD_COUNT", 0x20, (F("INPUT_WORD_COUNT", 0, 16),)),
    R("IB_BUF_MON_CTRL", 0x24, (
        F("STATUS_CLEAR", 0), F("BUFFER_CNTR_CLEAR", 1), F("JOB_ID_FIFO_CLEAR", 2),
        F("BUF_END_SELECT", 8, 2), F("BUF_CNTR_EN", 12), F("BUF_TIMER_EN", 13),
        F("JOB_ID_FIFO_EN", 14), F("MASK_OB_END", 16), F("MASK_IB_END", 17),
        F("MASK_EXT_DMA_END", 18), F("MASK_DESC_BURST_END", 19),
    )),
    R("BUF_MON_STATUS", 0x28, (
        F("END_STATUS_OB", 0), F("END_STATUS_IB", 1), F("END_STATUS_EXT_BUF", 2),
        F("END_STATUS_DESC_BURST_DONE", 3), F("INT_OB", 16), F("INT_IB", 17),
        F("INT_EXT_BUF_END", 18), F("INT_DESC_BURST_DONE", 19),
    )),
    R("BUFFER_COUNTER_STATUS", 0x2C),
    R("BUFFER_TIMER_VALUE", 0x30),  # clock counter while BUF_TIMER_EN
    R("DESC_START_DELAYS", 0x38, (F("DESC_START_DELAY", 0, 10), F("IB_PLD_END_DELAY", 16, 8))),
    R("EXTRA_DESC_CTRL", 0x3C, (F("LAST_EXTRA_DESCRIPTOR", 0, 8), F("EXTRA_DESC_ENABLE", 12))),
    R("JOB_ID_FIFO", 0x50, (F("FIFO_CNT", 0, 8), F("VALID", 8), F("FIFO_OUT", 16, 16))),
    R("DEBUG_BUS0_STATUS", 0x60, (F("CUR_JOB_ID", 0, 16),)),
    R("DEBUG_BUS1_STATUS", 0x64),
    R("DEBUG_BUS2_STATUS", 0x68, (F("PLD_STORE_DEBUG", 0, 16),)),
    R("REPLAY_BUF_CTRL", 0x70, (
        F("MAX_DESC_BURST_MODE", 0), F("HW_OB_ADDR_GEN_MODE", 4), F("HW_OB_ADDR_DYN_MODE", 5),
        F("HW_OB_DESC_WORD5_EN", 6, 2), F("START_HALT_EN", 8), F("INITIAL_START_HALT", 9),
        F("BUFFER_MODE", 16), F("OB_BUFFER_REUSE_MODE", 20), F("IB_BUFFER_REUSE_MODE", 21),
        F("TIMER_MODE", 24), F("OB_PKRAM_CLR_EN", 28), F("MAIN_BUF_EN", 29),
    )),
    R("REPLAY_BURST_VAL", 0x74, (F("MAX_DESC_BURST_VALUE", 0, 8), F("LOOPS", 16, 8),
                                 F("LOOPS_LAYER_PR", 24, 8))),
    R("REPLAY_DESC_MAIN_BUF_ADDR", 0x78),
    R("REPLAY_DESC_SCRATCH_BUF_ADDR", 0x7C),
    R("REPLAY_OB_EVENT_BUF_ADDR", 0x80),
    R("REPLAY_OB_EVENT_SCRATCH_ADDR", 0x84),
    R("REPLAY_OB_BUF_ADDR", 0x88, (F("OB_DESC_BUF_OFFSET", 0, 3), F("OFFSET_UNIT_SIZE", 4),
                                   F("OB_EVENTS_BUF_OFFSET_32B", 8, 8),
                                   F("OB_EVENTS_BUF_OFFSET", 16, 16))),
    R("REPLAY_MAX_OB_BUFFERS", 0x8C, (F("MAX_OB_DESC_BUFFERS", 0, 12),
                                      F("MAX_OB_EVENTS_BUFFERS", 16, 16))),
    # Overrides descriptor word 5 (the learning class) in multipass.
    R("REPLAY_DESC_WORD5", 0x90, (F("LEARN_CLASS", 16, 10),)),
    R("INTERRUPT_INTERVAL", 0x94, (F("INBOUND_INTERVAL", 0, 8), F("OUTBOUND_INTERVAL", 16, 8))),
    R("OB_PLD_CLEAR_SIZE", 0x98, (F("CLR_SIZE", 0, 28), F("CLR_EN", 31))),
    R("REPLAY_STATUS_AND_DEBUG", 0x9C, (F("LOOP_NUM", 0, 8), F("BURST_HALT_ACTIVE", 8),
                                        F("LOOP_BREAK_POINT", 24, 8))),
    R("RESET_CTRL", 0xA0, (F("LOGIC_RESET", 0), F("IB_RESET", 1), F("OB_RESET", 2))),
    R("DEBUG_CTRL", 0xB0, (
        F("LOOPBACK", 0), F("CHECKSUM_EN", 4), F("CHECKSUM_RST", 5), F("FORCE_INTERRUPT", 8),
        F("FORCE_BURST_RESUME", 9), F("DEBUG_PORT_SELECT", 24, 3), F("EXT_VLD_ID_EN", 30),
        F("VLD_ID_BYPASS_EN", 31),
    )),
    R("DEBUG_AXI_STATUS", 0xB4, (F("AXI_WR", 0, 16), F("AXI_RD", 16, 16))),
    R("IB_CHECKSUM", 0xB8),
    R("OB_CHECKSUM", 0xBC),
)  # fmt: skip

EVENT_DMA = Block("event_dma", 0x20000, _DMA_REGISTERS)  # sparse inputs (AEDMA)
HRC_DMA = Block("hrc_dma", 0x28000, _DMA_REGISTERS)  # dense 8-bit images through the HRC
CONFIG_DMA = Block("config_dma", 0x30000, _DMA_REGISTERS)  # NP configuration packets

# The EPG block: the program's EPG writes land at EPG_BASE + their register offset. Its
# registers are not named in the engine source; a program only gives offsets and values.
EPG_BASE = 0x40000
EPG_SIZE = 0x10000

BLOCKS = (TOP, EVENT_DMA, HRC_DMA, CONFIG_DMA, INTERRUPTS)
DMA_BLOCKS = (EVENT_DMA, HRC_DMA, CONFIG_DMA)

# SoC system configuration, at absolute addresses (outside the Akida top level). The
# engine's bare-metal driver names the chip "NSoC_v<CHIP_VERSION>" from CHIP_INFO.
SOC_SYS_CONF_BASE = 0xF0000000
CHIP_INFO = R("CHIP_INFO", 0x10, (F("CHIP_VERSION", 0, 4),))
CHIP_INFO_ADDR = SOC_SYS_CONF_BASE + CHIP_INFO.offset

# The value IP_VERSION reads on an AKD1000: 0. The engine then identifies the chip from the
# driver's description, which must contain this string (HwVersion {0xBC, 0, 0, 2}).
AKD1000_DESC = "NSoC_v2"


def fnp2_ddr_conf(np_id: int) -> Register:
    """The register holding the DDR address of FNP2 `np_id`'s weights (ids 0-3)."""
    if not 0 <= np_id <= 3:
        raise ValueError(f"FNP2 NP id {np_id} is not 0-3")
    return TOP[f"FNP2_DDR_CONF{np_id}"]


def describe(addr: int, top: int = TOP_LEVEL_REG_BASE) -> str:
    """A readable name for register address `addr` ('config_dma.CTRL', 'epg+0x1c', ...)."""
    off = addr - top
    if EPG_BASE <= off < EPG_BASE + EPG_SIZE:
        return f"epg+{off - EPG_BASE:#x}"
    for block in sorted(BLOCKS, key=lambda b: -b.base):
        if off >= block.base:
            reg = block.at(off - block.base)
            if reg is not None:
                return f"{block.name}.{reg.name}"
            break
    return f"{addr:#010x}"
