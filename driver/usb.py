"""USB transport: an Akida board through pyusb (libusb).

Registers are vendor control transfers; device memory moves on the bulk endpoints, one DMA
setup request per chunk of at most `USB_DMA_CHUNK` bytes (akida_rt.wire.transport_wire).
Boards are found on every pyusb backend in use: libusb (the system's, else the one from
the `libusb-package` wheel) plus any added with `add_backend()` (the simulated boards).

URL: `usb://1e7c:bca1?serial=SN` (serial optional when one board matches). The serial
number is the board's identity: after an unplug, opening the same URL finds it again at
its new bus address.
"""

from __future__ import annotations

import array
import errno
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import usb.core
import usb.util
from akida_rt.driver import udev, usb_ids
from akida_rt.driver.bus import Bus

from akida_rt.errors import (
    DeviceBusy,
    DeviceLost,
    DeviceNotFound,
    PermissionDeniedError,
    TransportError,
    TransportTimeout,
)
from akida_rt.wire import transport_wire as tw

log = logging.getLogger(__name__)
TIMEOUT_MS = 2000
_LIBUSB_FIX = (
    "pip install libusb-package (a wheel with libusb inside), or install the system "
    "library: sudo apt install libusb-1.0-0"
)
_extra: list[Any] = []
_lock = threading.Lock()
_libusb: Any = None
_libusb_probed = False


def libusb_backend() -> Any:
    """The libusb1 pyusb backend: system libusb, else libusb-package's; None if neither."""
    global _libusb, _libusb_probed
    with _lock:
        if not _libusb_probed:
            _libusb_probed = True
            import usb.backend.libusb1 as libusb1

            _libusb = libusb1.get_backend()
            if _libusb is None:
                try:
                    import libusb_package
                except ImportError:
                    log.debug("no system libusb and no libusb-package")
                else:
                    _libusb = libusb1.get_backend(find_library=libusb_package.find_library)
        return _libusb


def add_backend(backend: Any) -> None:
    """Also look for boards on `backend` (a `usb.backend.IBackend`)."""
    with _lock:
        if backend not in _extra:
            _extra.append(backend)


def remove_backend(backend: Any) -> None:
    """Undo `add_backend()`."""
    with _lock:
        if backend in _extra:
            _extra.remove(backend)


def backends() -> list[Any]:
    """Every pyusb backend searched for boards."""
    base = libusb_backend()
    with _lock:
        return ([base] if base is not None else []) + list(_extra)


def _raise_translated(exc: Exception, where: str, op: str) -> NoReturn:
    """The one place pyusb errors of this transport become akida_rt errors."""
    if isinstance(exc, usb.core.USBTimeoutError):
        raise TransportTimeout(f"{where}: {op} timed out") from exc
    if isinstance(exc, usb.core.NoBackendError):
        raise TransportError(f"{where}: no libusb found. Fix: {_LIBUSB_FIX}") from exc
    code = getattr(exc, "errno", None)
    if code in (errno.ENODEV, errno.ENOENT, errno.ESHUTDOWN):
        raise DeviceLost(f"{where}: device lost during {op} (unplugged?)") from exc
    if code in (errno.EACCES, errno.EPERM):
        raise PermissionDeniedError(udev.permission_message(where)) from exc
    if code == errno.EBUSY:
        raise DeviceBusy(f"{where}: interface claimed by another process ({op})") from exc
    if code == errno.EPIPE:
        raise TransportError(f"{where}: the device stalled {op} (bad address or request)") from exc
    raise TransportError(f"{where}: {op} failed: {exc}") from exc


@contextmanager
def _translated(where: str, op: str) -> Iterator[None]:
    try:
        yield
    except (usb.core.USBError, usb.core.NoBackendError) as exc:
        _raise_translated(exc, where, op)


@dataclass(frozen=True)
class UsbBoard:
    """A board found on a USB bus."""

    model: usb_ids.UsbModel
    serial: str
    bus: int | None
    address: int | None

    @property
    def url(self) -> str:
        return f"usb://{self.model.vid_pid}?serial={self.serial}"


def iter_devices(vid: int | None = None, pid: int | None = None) -> Iterator[Any]:
    """pyusb Devices with an Akida VID:PID (optionally this one) on every backend."""
    for backend in backends():
        try:
            found = usb.core.find(find_all=True, backend=backend)
            for dev in found or ():
                if usb_ids.lookup(dev.idVendor, dev.idProduct) is None:
                    continue
                if (vid is None or dev.idVendor == vid) and (pid is None or dev.idProduct == pid):
                    yield dev
        except usb.core.USBError as exc:
            log.debug("usb enumeration on %s failed: %s", type(backend).__name__, exc)


def serial_of(dev: Any) -> str:
    """The serial number string of a pyusb Device (PermissionDeniedError if unreadable)."""
    where = f"usb {dev.idVendor:04x}:{dev.idProduct:04x} at {dev.bus}:{dev.address}"
    with _translated(where, "reading the serial number"):
        try:
            return str(dev.serial_number or "")
        except ValueError as exc:  # pyusb: no langid, in practice no access to the device
            raise PermissionDeniedError(udev.permission_message(where)) from exc


def discover() -> list[UsbBoard]:
    """Every Akida board on every backend."""
    boards = []
    for dev in iter_devices():
        model = usb_ids.lookup(dev.idVendor, dev.idProduct)
        assert model is not None
        try:
            serial = serial_of(dev)
        except (PermissionDeniedError, DeviceLost) as exc:
            log.warning("%s", exc)
            continue
        boards.append(UsbBoard(model, serial, dev.bus, dev.address))
    return boards


def parse_url(url: str) -> tuple[int, int, str | None]:
    """`usb://1e7c:bca1?serial=SN` -> (vid, pid, serial or None)."""
    parts = urlsplit(url)
    try:
        vid, pid = usb_ids.parse_vid_pid(parts.netloc)
    except ValueError as exc:
        raise DeviceNotFound(f"{url}: {exc}") from exc
    serial = parse_qs(parts.query).get("serial", [None])[0]
    return vid, pid, serial


def find_device(vid: int, pid: int, serial: str | None) -> Any:
    """The pyusb Device of the board with this VID:PID (and serial, when given)."""
    matches = [d for d in iter_devices(vid, pid) if serial is None or serial_of(d) == serial]
    what = f"usb {vid:04x}:{pid:04x}" + (f" serial {serial}" if serial else "")
    if not matches:
        if usb_ids.lookup(vid, pid) is None:
            raise DeviceNotFound(f"{what}: not an Akida VID:PID (see akida_rt.driver.usb_ids)")
        fix = "" if backends() else f" (no libusb: {_LIBUSB_FIX})"
        raise DeviceNotFound(f"{what}: no such board connected{fix}")
    if len(matches) > 1:
        raise DeviceNotFound(f"{what}: {len(matches)} boards match; add ?serial=... to the URL")
    return matches[0]


class UsbBus(Bus):
    """A Bus on one USB board (vendor interface 0, bulk endpoints 0x01/0x81)."""

    def __init__(self, vid: int, pid: int, serial: str | None = None) -> None:
        self._dev = find_device(vid, pid, serial)
        self.serial = serial or serial_of(self._dev)
        self.url = f"usb://{vid:04x}:{pid:04x}?serial={self.serial}"
        self._where = f"usb {vid:04x}:{pid:04x} serial {self.serial}"
        self._closed = False
        with self._translate("claiming the interface"):
            if self._dev.get_active_configuration() is None:
                self._dev.set_configuration()
            usb.util.claim_interface(self._dev, tw.USB_INTERFACE)
        log.debug("opened %s at %s:%s", self._where, self._dev.bus, self._dev.address)

    @contextmanager
    def _translate(self, op: str) -> Iterator[None]:
        if self._closed:
            raise DeviceLost(f"{self._where}: bus is closed")
        with _translated(self._where, op):
            yield

    def read32(self, addr: int) -> int:
        w_value, w_index = tw.split_addr(addr)
        with self._translate(f"register read 0x{addr:x}"):
            raw = self._dev.ctrl_transfer(
                tw.REQTYPE_VENDOR_IN, tw.REQ_READ32, w_value, w_index, 4, TIMEOUT_MS
            )
        if len(raw) != 4:
            raise TransportError(f"{self._where}: short register read ({len(raw)} bytes)")
        return int.from_bytes(bytes(raw), "little")

    def write32(self, addr: int, value: int) -> None:
        w_value, w_index = tw.split_addr(addr)
        payload = (value & 0xFFFFFFFF).to_bytes(4, "little")
        with self._translate(f"register write 0x{addr:x}"):
            self._dev.ctrl_transfer(
                tw.REQTYPE_VENDOR_OUT, tw.REQ_WRITE32, w_value, w_index, payload, TIMEOUT_MS
            )

    def _setup(self, direction: int, addr: int, length: int, index: int) -> None:
        setup = tw.DMA_SETUP.pack(direction, addr, length)
        self._dev.ctrl_transfer(tw.REQTYPE_VENDOR_OUT, tw.REQ_DMA, index, 0, setup, TIMEOUT_MS)

    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        with self._translate(f"bulk read of {n} bytes at 0x{addr:x}"):
            for index, start in enumerate(range(0, n, tw.USB_DMA_CHUNK)):
                size = min(tw.USB_DMA_CHUNK, n - start)
                self._setup(tw.DMA_FROM_DEVICE, addr + start, size, index)
                chunk = self._dev.read(tw.USB_EP_IN, size, TIMEOUT_MS)
                if len(chunk) != size:
                    raise TransportError(f"{self._where}: short bulk read ({len(chunk)}/{size})")
                out += chunk.tobytes()
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        view = memoryview(bytes(data))
        with self._translate(f"bulk write of {len(view)} bytes at 0x{addr:x}"):
            for index, start in enumerate(range(0, len(view), tw.USB_DMA_CHUNK)):
                chunk = array.array("B", view[start : start + tw.USB_DMA_CHUNK])
                self._setup(tw.DMA_TO_DEVICE, addr + start, len(chunk), index)
                sent = self._dev.write(tw.USB_EP_OUT, chunk, TIMEOUT_MS)
                if sent != len(chunk):
                    raise TransportError(f"{self._where}: short bulk write ({sent}/{len(chunk)})")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            usb.util.release_interface(self._dev, tw.USB_INTERFACE)
            usb.util.dispose_resources(self._dev)
        except usb.core.USBError as exc:
            log.debug("ignored while closing %s: %s", self._where, exc)


def open_bus(url: str) -> UsbBus:
    """Open `usb://VID:PID[?serial=SN]` (the bus scheme opener)."""
    vid, pid, serial = parse_url(url)
    return UsbBus(vid, pid, serial)


def discover_urls() -> list[str]:
    """`usb://` URLs (serial included) of every board (the discovery module's discoverer)."""
    return [board.url for board in discover()]
