"""The host side of the command protocol: mailbox, doorbell, status polling, responses.

Written only against the Bus. Every wait is bounded by a deadline; device error codes
become DeviceCommandError, a stuck command TransportTimeout, a vanished device
DeviceLost and a reboot under our feet DeviceResetError (docs/device-protocol.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from akida_rt.driver.bus import Bus

from akida_rt.errors import (
    CommandTimeout,
    DeviceCommandError,
    DeviceError,
    DeviceLost,
    DeviceResetError,
    TransportTimeout,
)
from akida_rt.wire import device_protocol as dp

log = logging.getLogger(__name__)

POLL_MIN_S = 0.0001
POLL_MAX_S = 0.002
T = TypeVar("T")


@dataclass(frozen=True)
class Response:
    """A finished command: its two result values and payload."""

    value0: int
    value1: int
    payload: bytes


class CommandChannel:
    """Issues mailbox commands one at a time (callers serialise; the device object locks).

    Args:
        bus: the transport.
        url: for messages.
        retries: how often a bulk transfer that timed out is retried.
    """

    def __init__(self, bus: Bus, url: str, retries: int = 1) -> None:
        self.bus = bus
        self.url = url
        self.retries = retries
        self.retried = 0
        self._tag = 0
        self.boot_count = -1

    # ------------------------------------------------------ bulk transfers
    def _retry(self, fn: Callable[[], T], what: str) -> T:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except CommandTimeout:
                raise
            except TransportTimeout as exc:
                if attempt >= self.retries:
                    raise
                self.retried += 1
                log.warning("%s: %s timed out (%s); retrying", self.url, what, exc)
        raise AssertionError("unreachable")

    def write(self, addr: int, data: bytes) -> None:
        """Bulk write to device memory, retried on transfer timeouts."""
        self._retry(lambda: self.bus.write(addr, data), f"DMA write of {len(data)} bytes")

    def read(self, addr: int, n: int) -> bytes:
        """Bulk read from device memory, retried on transfer timeouts."""
        return self._retry(lambda: self.bus.read(addr, n), f"DMA read of {n} bytes")

    # ----------------------------------------------------------- registers
    def read_reg(self, addr: int) -> int:
        value = self.bus.read32(addr)
        if value == dp.ALL_ONES and self.bus.read32(dp.REG_VENDOR_ID) == dp.ALL_ONES:
            raise DeviceLost(f"{self.url}: device does not answer (unplugged or powered off)")
        return value

    def check_boot(self) -> bool:
        """True when the device rebooted since we last looked (state on it was lost)."""
        boot = self.read_reg(dp.REG_BOOT_COUNT)
        rebooted = self.boot_count not in (-1, boot)
        self.boot_count = boot
        return rebooted

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the firmware reports a state other than BOOTING."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, _ = dp.split_status(self.read_reg(dp.REG_STATUS))
            if status is not dp.Status.BOOTING:
                return
            if time.monotonic() > deadline:
                raise TransportTimeout(f"{self.url}: device did not boot within {timeout_s:.2f} s")
            time.sleep(POLL_MAX_S)

    # ------------------------------------------------------------ commands
    def call(
        self,
        opcode: dp.Opcode,
        timeout_s: float,
        *,
        arg0: int = 0,
        arg1: int = 0,
        addr0: int = 0,
        len0: int = 0,
        addr1: int = 0,
        len1: int = 0,
    ) -> Response:
        """Run one command; raise on error, reboot, loss or timeout."""
        self._tag = self._tag % 0xFF_FFFF + 1
        tag = self._tag
        block = dp.COMMAND.pack(opcode, tag, arg0, arg1, addr0, len0, addr1, len1)
        self.write(dp.MAILBOX_CMD, block)
        self.bus.write32(dp.REG_DOORBELL, tag)
        self._wait(opcode, tag, timeout_s)
        raw = self.read(dp.MAILBOX_RSP, dp.RESPONSE.size)
        rtag, status, error, length, v0, v1 = dp.RESPONSE.unpack(raw)
        if rtag != tag:
            raise DeviceError(f"{self.url}: response to command {tag} carries tag {rtag}")
        length = min(length, dp.MAILBOX_RSP_PAYLOAD)
        payload = self.read(dp.MAILBOX_RSP + dp.RESPONSE.size, length) if length else b""
        if status == dp.Status.ERROR:
            code = dp.ErrorCode(error) if error in dp.ErrorCode._value2member_map_ else None
            name = code.name if code else f"error {error}"
            detail = payload.decode("utf-8", "replace")
            raise DeviceCommandError(
                f"{self.url}: {opcode.name} failed: {name}: {detail}",
                code or dp.ErrorCode.INTERNAL,
            )
        return Response(v0, v1, payload)

    def _wait(self, opcode: dp.Opcode, tag: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pause = POLL_MIN_S
        while True:
            status, done_tag = dp.split_status(self.read_reg(dp.REG_STATUS))
            if done_tag == tag & 0xFF_FFFF and status in (dp.Status.DONE, dp.Status.ERROR):
                return
            if self.check_boot():
                raise DeviceResetError(
                    f"{self.url}: device reset itself during {opcode.name}; the command was "
                    "lost and sequences must be loaded again (retry the call)"
                )
            if time.monotonic() > deadline:
                raise CommandTimeout(
                    f"{self.url}: {opcode.name} did not complete within {timeout_s:.2f} s "
                    "(firmware hung?); reset the device"
                )
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX_S)
