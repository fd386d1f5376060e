"""SimChip: the device-side surface of a simulated AKD1000 (registers, memory, faults).

Transports put a SimChip behind their operating-system seam and call only `read32`,
`write32`, `read`, `write` (plus `inject_fault` in tests). A doorbell write runs one turn
of the firmware's command loop, which executes the mailbox command (firmware_sim.firmware).

Device-side error behaviour, as a board shows it through a kernel driver:
- after an unplug, register reads return 0xFFFFFFFF, register writes are dropped and
  bulk transfers raise OSError(ENODEV);
- an injected DMA timeout makes the next bulk transfer stall for `dma_stall_s`, then
  raise OSError(ETIMEDOUT);
- bulk transfers outside device memory raise OSError(EFAULT).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import zlib

from akida_rt.firmware_sim.firmware import Firmware
from akida_rt.firmware_sim.link_model import PCIE, LinkModel

from akida_rt.mapping.hardware import AKD1000, DeviceSpec
from akida_rt.wire import device_protocol as dp

log = logging.getLogger(__name__)

FAULT_KINDS = ("dma_timeout", "hang", "reset", "unplug")


class SimChip:
    """A simulated AKD1000 as the bus sees it.

    Args:
        spec: the NP mesh to simulate (AKD1000() by default).
        serial: the serial number in the identity registers (up to 16 ASCII characters).
        mem_size: bytes of device memory starting at device_protocol.MEM_BASE.
        device_id: PCI device id to report (0xbca1 for AKD1000).
        dma_stall_s: how long a transfer stalls before an injected DMA timeout fires.
        link: the host link whose costs the board's modelled time follows (PCIe unless a
            USB backend plugs the chip in).

    `board_time_s` is the board's host-visible time: every register access, transfer
    and command advances it by what it would take on the board (link_model.py), and the
    chip reports it in REG_SIM_TIME_LO/HI so the driver times calls with it.
    """

    def __init__(
        self,
        spec: DeviceSpec | None = None,
        serial: str = "SIM0001",
        *,
        mem_size: int = dp.DEFAULT_MEM_SIZE,
        device_id: int = dp.DEVICE_ID_AKD1000,
        dma_stall_s: float = 0.05,
        link: LinkModel | None = None,
    ) -> None:
        self.spec = spec or AKD1000()
        self.link = link or PCIE
        self.board_time_s = 0.0
        self._time_latch = 0
        self.vendor_id = dp.VENDOR_ID
        self.device_id = device_id
        self.serial = serial[:16]
        self.mem_size = mem_size
        self.dma_stall_s = dma_stall_s
        self.present = True
        self.boot_count = 0
        self._mem = bytearray(mem_size)
        self._regs: dict[int, int] = {}
        self._faults: dict[str, int] = {}
        self._hung = False
        self._closed = False
        self._lock = threading.RLock()
        self.firmware = Firmware(self)
        self._boot()

    # ------------------------------------------------------------------ identity
    def _identity_regs(self) -> dict[int, int]:
        serial = dp.fixed_str(self.serial)
        regs = {
            dp.REG_VENDOR_ID: self.vendor_id,
            dp.REG_DEVICE_ID: self.device_id,
            dp.REG_PROTOCOL: dp.PROTOCOL_VERSION,
            dp.REG_HW_REVISION: zlib.crc32(self.spec.version.encode()) & 0xFFFF,
            dp.REG_MESH: (self.spec.nodes << 16) | len(self.spec.nps),
            dp.REG_MEM_SIZE: self.mem_size,
            dp.REG_CLOCK_HZ: self.spec.clock_hz,
            dp.REG_FLOOR_MW: round(self.firmware.power.floor_mw),
        }
        for i in range(dp.SERIAL_REGS):
            regs[dp.REG_SERIAL + 4 * i] = int.from_bytes(serial[4 * i : 4 * i + 4], "little")
        return regs

    def _boot(self) -> None:
        """Power-on state: identity registers, idle status, firmware state cleared."""
        with self._lock:
            self.boot_count += 1
            self._hung = False
            self.firmware.reboot()
            self._regs = self._identity_regs()
            self._regs[dp.REG_BOOT_COUNT] = self.boot_count
            self._regs[dp.REG_STATUS] = dp.status_word(dp.Status.IDLE, 0)
            self._regs[dp.REG_ERROR] = dp.ErrorCode.OK
            self._mem[: dp.DATA_BASE - dp.MEM_BASE] = bytes(dp.DATA_BASE - dp.MEM_BASE)
        log.info("%s booted (boot %d)", self.serial, self.boot_count)

    # ------------------------------------------------------------------ registers
    def read32(self, addr: int) -> int:
        """Read the 32-bit register at BAR0 offset `addr`."""
        if not self.present:
            return dp.ALL_ONES
        with self._lock:
            self.spend(self.link.register_s)
            if addr == dp.REG_SIM_TIME_LO:
                self._time_latch = round(self.board_time_s * 1e9)
                return self._time_latch & dp.ALL_ONES
            if addr == dp.REG_SIM_TIME_HI:
                return (self._time_latch >> 32) & dp.ALL_ONES
            if addr in (dp.REG_INFER_CLK_LO, dp.REG_INFER_CLK_HI):
                value = self.firmware.total_inference_clk
                return (value >> 32 if addr == dp.REG_INFER_CLK_HI else value) & dp.ALL_ONES
            if addr in (dp.REG_PROGRAM_CLK_LO, dp.REG_PROGRAM_CLK_HI):
                value = self.firmware.total_program_clk
                return (value >> 32 if addr == dp.REG_PROGRAM_CLK_HI else value) & dp.ALL_ONES
            if addr == dp.REG_POWER_MW:
                return round(self.firmware.power.instant_mw())
            return self._regs.get(addr, 0) & dp.ALL_ONES

    def write32(self, addr: int, value: int) -> None:
        """Write a 32-bit register: the doorbell, the reset register or the scratch."""
        if not self.present:
            return
        value &= dp.ALL_ONES
        self.spend(self.link.register_s)
        if addr == dp.REG_RESET:
            if value == dp.RESET_MAGIC:
                self._boot()
            return
        if addr == dp.REG_DOORBELL:
            self._serve(value)
            return
        if addr == dp.REG_SIM_HOST_KMACS:  # the host's own work: the board idles meanwhile
            self.spend(value * 1e3 / self.link.host_macs_per_s)
            return
        with self._lock:
            if addr == dp.REG_SCRATCH:
                self._regs[addr] = value

    # --------------------------------------------------------------------- memory
    def _span(self, addr: int, n: int) -> slice:
        if n < 0 or addr < dp.MEM_BASE or addr + n > dp.MEM_BASE + self.mem_size:
            raise OSError(errno.EFAULT, f"device address {addr:#x}+{n} is outside device memory")
        return slice(addr - dp.MEM_BASE, addr - dp.MEM_BASE + n)

    def _dma_check(self) -> None:
        if not self.present:
            raise OSError(errno.ENODEV, "no such device (unplugged)")
        if self._take_fault("dma_timeout"):
            time.sleep(self.dma_stall_s)
            raise OSError(errno.ETIMEDOUT, "DMA transfer timed out")

    def read(self, addr: int, n: int) -> bytes:
        """Read `n` bytes of device memory at physical address `addr` (DMA to host)."""
        self._dma_check()
        with self._lock:
            data = bytes(self._mem[self._span(addr, n)])
            self.spend(self.link.bulk_s(n))
        self.firmware.dma_bytes += n
        return data

    def write(self, addr: int, data: bytes) -> None:
        """Write device memory at physical address `addr` (DMA from host)."""
        self._dma_check()
        with self._lock:
            self._mem[self._span(addr, len(data))] = data
            self.spend(self.link.bulk_s(len(data)))
        self.firmware.dma_bytes += len(data)

    def spend(self, seconds: float, powered: bool = True) -> None:
        """Advance the board's host-visible time; `powered`: the power sensor sees the
        board idle at its floor meanwhile (False when the firmware accounted it)."""
        with self._lock:
            self.board_time_s += seconds
            if powered:
                self.firmware.power.idle(seconds)

    def mem_read(self, addr: int, n: int) -> bytes:
        """Firmware-side memory read (no DMA accounting or faults)."""
        with self._lock:
            return bytes(self._mem[self._span(addr, n)])

    def mem_write(self, addr: int, data: bytes) -> None:
        """Firmware-side memory write."""
        with self._lock:
            self._mem[self._span(addr, len(data))] = data

    # --------------------------------------------------------------------- faults
    def inject_fault(self, kind: str, count: int = 1) -> None:
        """Arm a fault: "dma_timeout" (next `count` bulk transfers), "hang" (the firmware
        stops at the next command until a hard reset), "reset" (the chip reboots at the
        next command, dropping it) or "unplug" (now)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault '{kind}'; known: {', '.join(FAULT_KINDS)}")
        log.warning("%s: fault injected: %s", self.serial, kind)
        if kind == "unplug":
            self.unplug()
            return
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + count

    def clear_faults(self) -> None:
        """Drop every injected fault (the control socket's recover)."""
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
        """The board disappears: reads return all ones, transfers fail with ENODEV."""
        with self._lock:
            self.present = False

    def reboot(self) -> None:
        """A hard reset from outside the host's reach (a watchdog): fresh boot state."""
        self._boot()

    def replug(self) -> None:
        """The board comes back, freshly booted."""
        with self._lock:
            self.present = True
        self._boot()

    # ------------------------------------------------------------------- firmware
    def _serve(self, tag: int) -> None:
        """The firmware's command loop, one turn: run the command the doorbell announces.

        It runs in the thread that rang the doorbell. A firmware thread of its own would
        be closer to silicon, but every host poll would then hand the GIL back and forth
        (up to the 5 ms switch interval each time); the host still sees only the status
        register, so hangs, resets and unplugs look the same from the bus.
        """
        with self._lock:
            if self._closed or not self.present or self._hung:
                return
            if self._take_fault("hang"):
                self._hung = True
                log.warning("%s: firmware hung", self.serial)
                return
            reboot = self._take_fault("reset")
            if not reboot:
                boot = self.boot_count
                self._regs[dp.REG_STATUS] = dp.status_word(dp.Status.BUSY, tag)
        if reboot:
            log.warning("%s: spontaneous reset", self.serial)
            self._boot()
            return
        self.spend(self.link.command_s)
        status, error = self.firmware.execute(tag)
        with self._lock:
            if self.boot_count != boot:  # reset while executing: the result is lost
                return
            self._regs[dp.REG_ERROR] = error
            self._regs[dp.REG_STATUS] = dp.status_word(status, tag)
            self._regs[dp.REG_HEARTBEAT] = (self._regs.get(dp.REG_HEARTBEAT, 0) + 1) & dp.ALL_ONES

    def close(self) -> None:
        """Power the chip off: further doorbells are ignored."""
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"<SimChip {self.spec.name} serial={self.serial} boot={self.boot_count}>"
