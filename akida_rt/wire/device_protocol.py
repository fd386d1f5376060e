"""The AKD1000 register map and mailbox command layouts, as data.

Shared by the host driver (akida_rt.driver) and the simulated chip (akida_rt.firmware_sim),
which must not import each other's code. docs/device-protocol.md describes the protocol.
"""

from __future__ import annotations

import enum
import struct

# ----------------------------------------------------------------- identity
VENDOR_ID = 0x1E7C  # BrainChip
DEVICE_ID_AKD1000 = 0xBCA1
DEVICE_ID_AKD1500 = 0xA500
PROTOCOL_VERSION = 1
FIRMWARE_VERSION = "simfw-1.0.0"

# ------------------------------------------------- registers (BAR0 offsets, 32-bit each)
REG_VENDOR_ID = 0x000  # read-only: 0x1e7c
REG_DEVICE_ID = 0x004  # read-only: 0xbca1 for AKD1000
REG_PROTOCOL = 0x008  # read-only: PROTOCOL_VERSION
REG_HW_REVISION = 0x00C  # read-only: silicon revision
REG_SERIAL = 0x010  # read-only: 16 ASCII bytes, NUL padded, in 4 registers 0x010..0x01C
SERIAL_REGS = 4
REG_MESH = 0x020  # read-only: nodes << 16 | usable NPs
REG_MEM_SIZE = 0x024  # read-only: bytes of device memory
REG_CLOCK_HZ = 0x028  # read-only: core clock frequency
REG_BOOT_COUNT = 0x02C  # read-only: increments at every (re)boot
REG_DOORBELL = 0x040  # write a command tag to execute the command in the mailbox
REG_STATUS = 0x044  # read-only: Status in bits 0..7, tag of the last finished command << 8
REG_ERROR = 0x048  # read-only: ErrorCode of the last finished command
REG_RESET = 0x04C  # write RESET_MAGIC: hard reset, handled by hardware even if firmware hangs
REG_HEARTBEAT = 0x050  # read-only: firmware loop counter
REG_INFER_CLK_LO = 0x060  # read-only: total inference clocks since reset (64-bit, LO then HI)
REG_INFER_CLK_HI = 0x064
REG_PROGRAM_CLK_LO = 0x068  # read-only: total programming clocks since reset
REG_PROGRAM_CLK_HI = 0x06C
# Simulated chips only (identity flag IDENT_FLAG_SIMULATED): the board's modelled
# host-visible time in ns (64-bit; reading LO latches HI). The driver times calls with it.
REG_SIM_TIME_LO = 0x070
REG_SIM_TIME_HI = 0x074
# write-only, simulated chips only: the host just ran this many thousand multiply-accumulates
# of a software sequence during a call; the board's time advances by the modelled host
# time (its link model's host rate), idle at floor power meanwhile
REG_SIM_HOST_KMACS = 0x078
REG_POWER_MW = 0x080  # read-only: instantaneous board power in milliwatts (power sensor)
REG_FLOOR_MW = 0x084  # read-only: board floor power in milliwatts
REG_SCRATCH = 0x0F0  # read/write: scratch, for bus tests
REG_SPACE = 0x1000  # size of the register window

RESET_MAGIC = 0x5EED_0001
ALL_ONES = 0xFFFF_FFFF  # what reads return when the device is gone (PCIe semantics)

# ------------------------------------------------------ device memory (physical addresses)
MEM_BASE = 0x2000_0000
DEFAULT_MEM_SIZE = 32 << 20
MAILBOX_CMD = MEM_BASE  # one Command block
MAILBOX_RSP = MEM_BASE + 0x1000  # one Response header + payload
MAILBOX_RSP_PAYLOAD = 0xF00  # bytes of payload after the response header
LEARN_BASE = MEM_BASE + 0x2000  # firmware-owned: the learning layer's plasticity and weights
DATA_BASE = MEM_BASE + 0x1_0000  # host-managed: program staging, inputs, outputs
LEARN_BYTES = DATA_BASE - LEARN_BASE
DMA_ALIGN = 1024  # the kernel driver moves data in 1 KiB chunks


class Status(enum.IntEnum):
    """Firmware state in the low byte of REG_STATUS."""

    BOOTING = 0
    IDLE = 1
    BUSY = 2
    DONE = 3
    ERROR = 4


class Opcode(enum.IntEnum):
    """Mailbox commands."""

    IDENTIFY = 1
    RESET = 2  # soft reset by the firmware: unloads the sequence, clears counters
    LOAD_SEQUENCE = 3  # addr0/len0: SequenceProgram bytes staged in device memory
    SET_INPUT = 4  # addr0/len0: frames; arg0: frame count; arg1: DType
    RUN = 5  # arg0: frame count; addr1/len1: output buffer
    READ_OUTPUTS = 6  # returns an OutputDescriptor
    READ_STATS = 7  # returns a StatsBlock
    POWER_START = 8  # restart power sampling
    POWER_READ = 9  # returns a PowerBlock
    LEARN_CONFIG = 10  # addr0/len0: LEARN_HEADER + float32 plasticity per neuron
    LEARN = 11  # arg0: frames (after SET_INPUT); addr0/len0: int64 labels; addr1/len1: outputs
    READ_LEARNED = 12  # returns a LEARNED descriptor of the learned state in device memory
    WRITE_LEARNED = 13  # addr0/len0: a learned-state image (the LEARN_BASE layout)


class ErrorCode(enum.IntEnum):
    """Values of REG_ERROR and Response.error."""

    OK = 0
    BAD_COMMAND = 1
    BAD_ADDRESS = 2
    BAD_PROGRAM = 3
    NO_SEQUENCE = 4
    SRAM_OVERFLOW = 5
    SHAPE_MISMATCH = 6
    NO_SPACE = 7
    DMA_TIMEOUT = 8
    NO_INPUT = 9
    WRONG_DEVICE = 10
    INTERNAL = 11
    NOT_LEARNING = (
        12  # LEARN / READ_LEARNED / WRITE_LEARNED before LEARN_CONFIG; a layer that cannot learn
    )


class DType(enum.IntEnum):
    """Element types of input and output buffers."""

    UINT8 = 1
    INT64 = 2


DTYPE_SIZES = {DType.UINT8: 1, DType.INT64: 8}

# ----------------------------------------------------------------- mailbox layouts
# Command: opcode, tag, arg0, arg1, addr0, len0, addr1, len1.
COMMAND = struct.Struct("<IIIIQQQQ")
# Response header: tag, status, error, payload length, value0, value1; payload follows.
RESPONSE = struct.Struct("<IIIIQQ")
# IDENTIFY payload: device name, hw version, firmware version, serial, nodes, NPs, has HRC,
# identity flags, clock Hz, memory bytes, NP input SRAM bytes, NP weight SRAM bytes.
IDENTITY = struct.Struct("<16s16s16s16sHHBBxxIIII")
# Identity flags: the chip behind the bus is the firmware simulator, whatever the transport.
IDENT_FLAG_SIMULATED = 0x01
# READ_OUTPUTS payload: address, bytes, frames, height, width, channels, DType.
OUTPUTS = struct.Struct("<QQIIIII")
# READ_STATS payload: frames, inference clk, program clk, synops, DMA bytes, loads,
# energy (nJ), clock Hz.
STATS = struct.Struct("<QQQQQQQI")
# POWER_READ payload: floor, avg, min, max, std (mW), samples, frames, energy (nJ).
POWER = struct.Struct("<dddddIIQ")
# LEARN_CONFIG header: inputs K, neurons U, num_weights, num_classes, initial, min
# plasticity, decay, competition, seed, samples; U float32 plasticities follow.
LEARN_HEADER = struct.Struct("<IIIIffffQQ")
# READ_LEARNED payload: address, bytes, samples, inputs K, neurons U. At the address:
# U float32 plasticities, then the (K, U) binary weights packed row-major, MSB first.
LEARNED = struct.Struct("<QQQII")


def learned_bytes(inputs: int, units: int) -> int:
    """Bytes of a learned-state image (plasticities, then packed weights)."""
    return 4 * units + (inputs * units + 7) // 8


def status_word(status: Status, tag: int) -> int:
    """The REG_STATUS value for `status` after the command `tag`."""
    return (int(status) & 0xFF) | ((tag & 0xFF_FFFF) << 8)


def split_status(word: int) -> tuple[Status, int]:
    """(Status, tag) from a REG_STATUS value."""
    return Status(word & 0xFF) if (word & 0xFF) in Status._value2member_map_ else Status.ERROR, (
        word >> 8
    )


def fixed_str(text: str, size: int = 16) -> bytes:
    """ASCII, NUL-padded to `size` bytes (truncated if longer)."""
    return text.encode("ascii", "replace")[:size].ljust(size, b"\0")


def from_fixed(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("ascii", "replace")


def align(n: int, to: int = DMA_ALIGN) -> int:
    return (n + to - 1) // to * to
