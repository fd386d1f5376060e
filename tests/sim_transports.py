"""Contract-suite factories for the real PCIe and USB transports with simulated AKD1000 chips behind them.

Each factory plugs a fresh simulated board into a SimRack (a fake sysfs root plus node
served through the file-io seam, or a pyusb backend) and opens it by URL through
`open_bus`, so the device under test runs the pcie/usb transport code a board would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from akida_rt.driver.bus import open_bus
from akida_rt.driver.device import Device, Timeouts
from akida_rt.driver.sim_rack import SimRack

_serials = itertools.count(1)


def _factory(kind: str) -> Callable[..., object]:
    def make(spec: str = "AKD1000", timeouts: Timeouts | None = None, retries: int = 1):
        from tests.device_urls import FAST, TEST_MEM, DeviceUnderTest

        rack = SimRack()
        serial = f"{kind[0].upper()}{next(_serials):05d}"
        add = rack.add_pcie if kind == "pcie" else rack.add_usb
        url = add(serial=serial, spec=spec, mem=TEST_MEM)
        try:
            device = Device(
                open_bus(url), url=url, kind=kind, timeouts=timeouts or FAST, retries=retries
            )
        except BaseException:
            rack.close()
            raise
        return DeviceUnderTest(device, rack.chip(serial).inject_fault, [rack.close], simulated=True)

    return make


pcie_factory = _factory("pcie")
usb_factory = _factory("usb")
