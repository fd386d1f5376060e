"""The transports against real boards: skipped unless a PCIe or USB Akida board is present.

Only real system locations are scanned (sysfs under `/`, libusb), never simulated boards.
"""

from __future__ import annotations

import os

import pytest
from akida_rt.driver import sysfs
from akida_rt.driver import usb as usb_transport
from akida_rt.driver.bus import open_bus
from akida_rt.driver.device import Device

from akida_rt.errors import AkidaError
from tests import chip_addresses as ca


def _board_urls() -> list[str]:
    urls = [f"pcie://{fn.node}" for fn in sysfs.scan("/") if fn.node is not None]
    backend = usb_transport.libusb_backend()
    if backend is not None:
        import usb.core

        for dev in usb.core.find(find_all=True, backend=backend) or ():
            if usb_transport.usb_ids.lookup(dev.idVendor, dev.idProduct):
                url = f"usb://{dev.idVendor:04x}:{dev.idProduct:04x}"
                try:
                    urls.append(f"{url}?serial={usb_transport.serial_of(dev)}")
                except AkidaError:  # e.g. no permission: the test then fails with the fix
                    urls.append(url)
    return urls


URLS = _board_urls()
pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not URLS, reason="no Akida board (PCIe or USB) present"),
]


@pytest.mark.parametrize("url", URLS or ["none"])
def test_board_identifies_and_round_trips_memory(url: str) -> None:
    bus = open_bus(url)
    try:
        assert ca.chip_version(bus.read32(ca.CHIP_INFO)) == 2  # AKD1000
        device = Device(bus, url=url, kind=url.split(":", 1)[0])
        assert device.identify().nps > 0
        data = os.urandom(4096 + 7)
        bus.write(ca.DATA, data)
        assert bus.read(ca.DATA, len(data)) == data
    finally:
        bus.close()
