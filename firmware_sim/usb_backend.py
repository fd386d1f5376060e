"""Simulated USB boards as a pyusb backend: simulated chips answer `usb.core.find` and transfers.

`SimUsbBackend` is a `usb.backend.IBackend`: pyusb enumerates, reads descriptors (string
descriptors included, so `dev.serial_number` is a real GET_DESCRIPTOR), and performs
control and bulk transfers through it exactly as through libusb. Registers are vendor
control requests; memory moves on the bulk endpoints after a DMA setup request (see
akida_rt.wire.transport_wire). Chip errors come out as the USBError libusb would raise:
unplugged -> NO_DEVICE (ENODEV), DMA timeout -> USBTimeoutError, bad address -> stall.
This module never imports the driver.
"""

from __future__ import annotations

import array
import errno
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import usb.backend
from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip
from akida_rt.firmware_sim.link_model import USB
from usb.core import USBError, USBTimeoutError

from akida_rt.wire import transport_wire as tw

log = logging.getLogger(__name__)

# libusb error codes, so errors look like the libusb1 backend's.
_LIBUSB = {
    errno.ENODEV: (-4, "No such device (it may have been disconnected)"),
    errno.ETIMEDOUT: (-7, "Operation timed out"),
    errno.EPIPE: (-9, "Pipe error"),
    errno.EACCES: (-3, "Access denied (insufficient permissions)"),
    errno.EIO: (-1, "Input/Output Error"),
}
_GET_DESCRIPTOR = 0x06
_DESC_STRING = 3
_LANG_EN_US = 0x0409

#: Called with (board, chunk index) before each bulk transfer; tests fault mid-transfer.
ChunkHook = Callable[["SimUsbBoard", int], None]


def usb_error(code: int) -> USBError:
    """The USBError libusb raises for an errno."""
    backend_code, text = _LIBUSB.get(code, _LIBUSB[errno.EIO])
    cls = USBTimeoutError if code == errno.ETIMEDOUT else USBError
    return cls(text, backend_code, code)


@dataclass
class SimUsbBoard:
    """One simulated USB board on the virtual bus (the device id pyusb passes back)."""

    chip: Akd1000Chip
    bus: int
    address: int
    manufacturer: str = "BrainChip (simulated)"
    product: str = "AKD1000 USB"
    chunk_hook: ChunkHook | None = None
    plugged: bool = True
    #: Model a /dev/bus/usb node this user may not open (no udev rule): open fails EACCES.
    deny_access: bool = False
    _dma: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def strings(self) -> dict[int, str]:
        return {1: self.manufacturer, 2: self.product, 3: self.chip.serial}


@dataclass
class _Handle:
    board: SimUsbBoard
    configuration: int = 1
    claimed: set[int] = field(default_factory=set)


def _ns(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(extra_descriptors=[], **fields)


class SimUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    """A virtual USB bus whose devices are simulated chips (pass as `backend=` to pyusb)."""

    def __init__(self, bus: int = 1) -> None:
        super().__init__()
        self._bus = bus
        self._next_address = 1
        self._boards: list[SimUsbBoard] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- plugging boards
    def attach(self, chip: Akd1000Chip, product: str | None = None) -> SimUsbBoard:
        """Plug `chip` in; it enumerates at a new address, as a real re-plug does."""
        with self._lock:
            chip.link = USB  # its modelled time follows the USB link's costs
            board = SimUsbBoard(chip, self._bus, self._next_address)
            if product:
                board.product = product
            self._next_address += 1
            self._boards.append(board)
        log.info("sim usb: %s attached at %d:%d", chip.serial, board.bus, board.address)
        return board

    def board(self, serial: str) -> SimUsbBoard:
        """The attached board whose chip has `serial`."""
        for board in self._boards:
            if board.chip.serial == serial and board.plugged:
                return board
        raise KeyError(serial)

    def unplug(self, serial: str) -> None:
        """Pull the board out: open handles fail with NO_DEVICE, it leaves the bus."""
        self.board(serial).chip.unplug()

    def replug(self, serial: str) -> SimUsbBoard:
        """Plug a pulled board back in: a fresh boot at a new address."""
        old = next(b for b in self._boards if b.chip.serial == serial)
        if old.chip.present and old.plugged:
            return old
        old.plugged = False
        if not old.chip.present:
            old.chip.replug()
        with self._lock:
            self._boards.remove(old)
        return self.attach(old.chip, old.product)

    def _alive(self, handle: _Handle) -> SimUsbBoard:
        board = handle.board
        if not board.chip.present:
            board.plugged = False
        if not board.plugged:
            raise usb_error(errno.ENODEV)
        return board

    # ------------------------------------------------------------------- enumeration
    def enumerate_devices(self) -> Iterator[SimUsbBoard]:
        with self._lock:
            boards = list(self._boards)
        for board in boards:
            if not board.chip.present:
                board.plugged = False
                continue
            if not board.plugged:  # the chip came back by itself: it re-enumerates
                board = self.replug(board.chip.serial)
            yield board

    def get_device_descriptor(self, dev: SimUsbBoard) -> SimpleNamespace:
        return _ns(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=dev.chip.vendor_id,
            idProduct=dev.chip.device_id, bcdDevice=0x0100, iManufacturer=1, iProduct=2,
            iSerialNumber=3, bNumConfigurations=1, address=dev.address, bus=dev.bus,
            port_number=dev.address, port_numbers=(dev.address,), speed=3,
        )  # fmt: skip

    def get_configuration_descriptor(self, dev: SimUsbBoard, config: int) -> SimpleNamespace:
        if config != 0:
            raise usb_error(errno.EIO)
        return _ns(
            bLength=9, bDescriptorType=2, wTotalLength=9 + 9 + 7 + 7, bNumInterfaces=1,
            bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=250,
        )  # fmt: skip

    def get_interface_descriptor(
        self, dev: SimUsbBoard, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        if (intf, alt, config) != (0, 0, 0):
            raise IndexError("no such interface")
        return _ns(
            bLength=9, bDescriptorType=4, bInterfaceNumber=tw.USB_INTERFACE, bAlternateSetting=0,
            bNumEndpoints=2, bInterfaceClass=0xFF, bInterfaceSubClass=0, bInterfaceProtocol=0,
            iInterface=0,
        )  # fmt: skip

    def get_endpoint_descriptor(
        self, dev: SimUsbBoard, ep: int, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        if ep not in (0, 1) or (intf, alt, config) != (0, 0, 0):
            raise IndexError("no such endpoint")
        return _ns(
            bLength=7, bDescriptorType=5, bEndpointAddress=(tw.USB_EP_OUT, tw.USB_EP_IN)[ep],
            bmAttributes=2, wMaxPacketSize=tw.USB_MAX_PACKET, bInterval=0, bRefresh=0,
            bSynchAddress=0,
        )  # fmt: skip

    # ---------------------------------------------------------------------- handles
    def open_device(self, dev: SimUsbBoard) -> _Handle:
        if dev.deny_access:
            raise usb_error(errno.EACCES)
        handle = _Handle(dev)
        self._alive(handle)
        return handle

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.claimed.clear()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        self._alive(dev_handle)
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        self._alive(dev_handle)
        return dev_handle.configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        self._alive(dev_handle)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        self._alive(dev_handle)
        dev_handle.claimed.add(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        return False

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        self._alive(dev_handle).chip.read32(0)

    def reset_device(self, dev_handle: _Handle) -> None:
        self._alive(dev_handle)

    # -------------------------------------------------------------------- transfers
    def ctrl_transfer(
        self,
        dev_handle: _Handle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array[int],
        timeout: int,
    ) -> int:
        board = self._alive(dev_handle)
        if bmRequestType == 0x80 and bRequest == _GET_DESCRIPTOR and wValue >> 8 == _DESC_STRING:
            return _fill(data, _string_descriptor(board, wValue & 0xFF))
        addr = tw.join_addr(wValue, wIndex)
        if bmRequestType == tw.REQTYPE_VENDOR_IN and bRequest == tw.REQ_READ32:
            return _fill(data, board.chip.read32(addr).to_bytes(4, "little"))
        if bmRequestType == tw.REQTYPE_VENDOR_OUT and bRequest == tw.REQ_WRITE32:
            board.chip.write32(addr, int.from_bytes(bytes(data[:4]), "little"))
            return 4
        if bmRequestType == tw.REQTYPE_VENDOR_OUT and bRequest == tw.REQ_DMA:
            direction, address, length = tw.DMA_SETUP.unpack(bytes(data))
            ep = tw.USB_EP_IN if direction == tw.DMA_FROM_DEVICE else tw.USB_EP_OUT
            board._dma[ep] = (address, length, wValue)
            return len(data)
        raise usb_error(errno.EPIPE)  # unknown request: the device stalls

    def _dma(self, dev_handle: _Handle, ep: int, size: int) -> tuple[SimUsbBoard, int]:
        board = self._alive(dev_handle)
        pending = board._dma.pop(ep, None)
        if pending is None or pending[1] != size:
            raise usb_error(errno.EPIPE)
        if board.chunk_hook is not None:
            board.chunk_hook(board, pending[2])
        return board, pending[0]

    def bulk_write(
        self, dev_handle: _Handle, ep: int, intf: int, data: array.array[int], timeout: int
    ) -> int:
        board, address = self._dma(dev_handle, ep, len(data))
        _chip_call(lambda: board.chip.write(address, data.tobytes()))
        return len(data)

    def bulk_read(
        self, dev_handle: _Handle, ep: int, intf: int, buff: array.array[int], timeout: int
    ) -> int:
        board, address = self._dma(dev_handle, ep, len(buff))
        return _fill(buff, _chip_call(lambda: board.chip.read(address, len(buff))))


def _chip_call(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except OSError as exc:
        code = errno.EPIPE if exc.errno == errno.EFAULT else (exc.errno or errno.EIO)
        raise usb_error(code) from exc


def _string_descriptor(board: SimUsbBoard, index: int) -> bytes:
    if index == 0:
        return bytes([4, _DESC_STRING]) + _LANG_EN_US.to_bytes(2, "little")
    text = board.strings.get(index)
    if text is None:
        raise usb_error(errno.EPIPE)
    raw = text.encode("utf-16-le")
    return bytes([2 + len(raw), _DESC_STRING]) + raw


def _fill(buff: array.array[int], payload: bytes) -> int:
    n = min(len(buff), len(payload))
    buff[:n] = array.array("B", payload[:n])
    return n
