"""USB transport: pyusb end to end with simulated chips behind a `usb.backend.IBackend`.

`usb.core.find`, descriptors (string descriptors included), vendor control transfers and
bulk transfers all run through pyusb; the transport under test is the one that drives a
board through libusb.
"""

from __future__ import annotations

import array
import os
from pathlib import Path

import pytest
import usb.core
import usb.util
from akida_rt.driver import discovery, usb_ids
from akida_rt.driver import usb as usb_transport
from akida_rt.driver.bus import open_bus
from akida_rt.driver.sim_rack import SimRack

from akida_rt.errors import DeviceLost, DeviceNotFound, TransportError, TransportTimeout
from akida_rt.wire import transport_wire as tw
from tests import chip_addresses as ca

MEM = 4 << 20


@pytest.fixture
def rack(tmp_path: Path):
    made = SimRack(tmp_path)
    yield made
    made.close()


def test_pyusb_finds_the_board_and_reads_its_descriptors(rack: SimRack) -> None:
    rack.add_usb("U1", mem=MEM, console=False)
    dev = usb.core.find(backend=rack.usb, idVendor=0x1E7C, idProduct=0xBCA1)
    assert dev is not None
    assert (dev.serial_number, dev.product) == ("U1", "AKD1000 USB")
    intf = dev.get_active_configuration()[(0, 0)]
    assert intf.bInterfaceClass == 0xFF
    addrs = sorted(e.bEndpointAddress for e in intf)
    assert addrs == [tw.USB_EP_OUT, tw.USB_EP_IN]
    assert all(usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK for e in intf)


def test_vid_pid_table_matches_the_udev_rule() -> None:
    rules = (Path(__file__).parents[1] / "udev" / "99-akida.rules").read_text()
    for model in usb_ids.USB_MODELS:
        assert f'ATTR{{idVendor}}=="{model.vid:04x}", ATTR{{idProduct}}=="{model.pid:04x}"' in rules
    assert 'MODE="0666"' not in rules and rules.count('GROUP="akida", MODE="0660"') >= 3
    assert usb_ids.parse_vid_pid("1e7c:a500") == (0x1E7C, 0xA500)
    with pytest.raises(ValueError):
        usb_ids.parse_vid_pid("1e7c")


def test_libusb_is_available_from_the_system_or_libusb_package() -> None:
    assert usb_transport.libusb_backend() is not None


def test_registers_by_control_transfer_memory_by_chunked_bulk(rack: SimRack) -> None:
    bus = open_bus(rack.add_usb("U1", mem=MEM, console=False))
    assert isinstance(bus, usb_transport.UsbBus)
    chunks: list[int] = []
    rack.usb.board("U1").chunk_hook = lambda board, i: chunks.append(i)
    assert ca.chip_version(bus.read32(ca.CHIP_INFO)) == 2  # AKD1000
    bus.write32(ca.RW_REG, 0x12345660)
    assert bus.read32(ca.RW_REG) == 0x12345660
    data = os.urandom(2 * tw.USB_DMA_CHUNK + 100)
    bus.write(ca.DATA + 3, data)
    assert chunks == [0, 1, 2]
    assert bus.read(ca.DATA + 3, len(data)) == data
    with pytest.raises(TransportError, match="stalled"):
        bus.read(0x10, 4)  # outside device memory: the device stalls the pipe


def test_board_is_chosen_by_serial(rack: SimRack) -> None:
    rack.add_usb("U1", mem=MEM, console=False)
    rack.add_usb("U2", mem=MEM, console=False)
    assert {b.serial for b in usb_transport.discover()} >= {"U1", "U2"}
    with pytest.raises(DeviceNotFound, match="add \\?serial"):
        open_bus("usb://1e7c:bca1")
    with pytest.raises(DeviceNotFound, match="no such board"):
        open_bus("usb://1e7c:bca1?serial=NOPE")
    with pytest.raises(DeviceNotFound, match="not an Akida"):
        open_bus("usb://0403:6001")
    bus = open_bus("usb://1e7c:bca1?serial=U2")
    assert bus.serial == "U2"  # the USB serial-number string


def test_timeout_is_a_transport_timeout(rack: SimRack) -> None:
    bus = open_bus(rack.add_usb("U1", mem=MEM, console=False))
    rack.chip("U1").inject_fault("dma_timeout")
    with pytest.raises(TransportTimeout):
        bus.write(ca.DATA, b"x" * 64)
    bus.write(ca.DATA, b"x" * 64)


def test_unplug_mid_transfer_then_reattach_by_serial(rack: SimRack) -> None:
    url = rack.add_usb("U1", mem=MEM, console=False)
    discovery.register_discoverer("akida_rt.driver.usb:discover_urls")
    device = discovery.open_device(url)
    board = rack.usb.board("U1")
    old_address = board.address

    def pull(b: object, index: int) -> None:
        if index == 1:
            rack.usb.unplug("U1")

    board.chunk_hook = pull
    with pytest.raises(DeviceLost):
        device.bus.read(ca.DATA, 3 * tw.USB_DMA_CHUNK)
    with pytest.raises(DeviceLost):
        device.identify()
    assert device.lost and url not in usb_transport.discover_urls()
    new_board = rack.usb.replug("U1")
    assert new_board.address != old_address  # re-enumerated elsewhere on the bus
    assert url in usb_transport.discover_urls()
    again = discovery.open_device(url)
    assert again is not device and again.id == device.id and again.serial == "U1"
    again.close()


def test_protocol_bytes_of_register_and_dma_requests() -> None:
    """Recording fake of a pyusb Device: the exact setup packets the transport sends."""

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[tuple] = []

        def ctrl_transfer(self, rt, req, value, index, data, timeout):
            self.sent.append(
                (rt, req, value, index, bytes(data) if not isinstance(data, int) else data)
            )
            return array.array("B", (0x78, 0x56, 0x34, 0x12)) if rt == 0xC0 else len(data)

        def write(self, ep, data, timeout):
            self.sent.append(("bulk", ep, len(data)))
            return len(data)

    bus = usb_transport.UsbBus.__new__(usb_transport.UsbBus)
    rec = Recorder()
    bus._dev, bus._where, bus._closed = rec, "recorder", False
    assert bus.read32(0x2001_0044) == 0x12345678
    bus.write32(0x44, 7)
    bus.write(0x2000_0000, bytes(tw.USB_DMA_CHUNK + 1))
    assert rec.sent == [
        (0xC0, tw.REQ_READ32, 0x0044, 0x2001, 4),
        (0x40, tw.REQ_WRITE32, 0x0044, 0x0000, b"\x07\0\0\0"),
        (
            0x40,
            tw.REQ_DMA,
            0,
            0,
            tw.DMA_SETUP.pack(tw.DMA_TO_DEVICE, 0x2000_0000, tw.USB_DMA_CHUNK),
        ),
        ("bulk", tw.USB_EP_OUT, tw.USB_DMA_CHUNK),
        (0x40, tw.REQ_DMA, 1, 0, tw.DMA_SETUP.pack(tw.DMA_TO_DEVICE, 0x2000_4000, 1)),
        ("bulk", tw.USB_EP_OUT, 1),
    ]


def test_board_this_user_may_not_open(rack: SimRack, caplog: pytest.LogCaptureFixture) -> None:
    """libusb's ACCESS error (no udev rule) becomes PermissionDeniedError naming the rule."""
    from akida_rt.cli import doctor_cmds
    from akida_rt.errors import PermissionDeniedError

    rack.add_usb("U1", mem=MEM, console=False)
    rack.usb.board("U1").deny_access = True
    assert "U1" not in {b.serial for b in usb_transport.discover()}
    assert "99-akida.rules" in caplog.text
    with pytest.raises(PermissionDeniedError, match=r"99-akida\.rules"):
        open_bus("usb://1e7c:bca1")
    (denied,) = [b for b in doctor_cmds._probe_usb() if b[1] is not None]
    assert "permission denied" in (denied[1] or "")
