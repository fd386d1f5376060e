"""The devices the contract tests run against, one factory per transport.

Each factory opens a fresh device on the simulated `spec` through its transport's real
code path and returns a DeviceUnderTest with a way to inject faults on the chip behind
it. To add a transport (pcie, usb, ...), append a factory to FACTORIES.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from akida_rt.driver import sim_transport
from akida_rt.driver.bus import open_bus
from akida_rt.driver.device import Device, Timeouts

TEST_MEM = 8 << 20  # small device memory keeps the simulated chips cheap
FAST = Timeouts(command_s=2.0, reset_s=2.0, load_s=5.0, run_s=10.0, run_per_frame_s=1.0)
_serials = itertools.count(1)


@dataclass
class DeviceUnderTest:
    """A device, how to inject faults behind it, and what to close afterwards."""

    device: Device
    inject: Callable[..., None]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.device.close()
        for fn in self.closers:
            fn()


def _sim(mode: str) -> Callable[..., DeviceUnderTest]:
    def make(spec: str = "AKD1000", timeouts: Timeouts = FAST, retries: int = 1) -> DeviceUnderTest:
        serial = f"T{next(_serials):05d}"
        url = f"sim://{spec.lower()}/0?serial={serial}&mem={TEST_MEM}&mode={mode}"
        bus = open_bus(url)
        device = Device(
            bus, url=url, kind="sim", simulated=True, timeouts=timeouts, retries=retries
        )
        chip = getattr(bus, "chip", None)
        closers = [lambda: sim_transport.drop_chip(chip)] if chip is not None else []
        return DeviceUnderTest(device, bus.inject_fault, closers)  # type: ignore[attr-defined]

    return make


FACTORIES: dict[str, Callable[..., DeviceUnderTest]] = {
    "sim-inproc": _sim("inproc"),
    "sim-process": _sim("process"),
}


def _add_real_transports() -> None:
    # The pcie and usb transports with SimChips behind their OS seams (tests/sim_transports.py).
    from tests.sim_transports import pcie_factory, usb_factory

    FACTORIES["pcie-sim"] = pcie_factory
    FACTORIES["usb-sim"] = usb_factory


_add_real_transports()
