"""The devices the contract tests run against, one factory per transport.

Each factory in FACTORIES opens a fresh device on the simulated `spec` through its
transport's real code path and returns a DeviceUnderTest with a way to inject faults on
the chip behind it. To add a transport (pcie, usb, ...), append a factory to FACTORIES.
`hardware_factory` opens a real board found by akida_rt.driver discovery instead (and
skips the test, saying why, when there is none); CONTRACT_PARAMS runs the contract suite
over both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from akida_rt.driver import discovery, sim_transport
from akida_rt.driver.bus import open_bus
from akida_rt.driver.device import Device, Timeouts

TEST_MEM = 8 << 20  # small device memory keeps the simulated chips cheap
FAST = Timeouts(command_s=2.0, reset_s=2.0, load_s=5.0, run_s=10.0, run_per_frame_s=1.0)
_serials = itertools.count(1)


@dataclass
class DeviceUnderTest:
    """A device, how to inject faults behind it, what to close afterwards, and whether
    the chip behind it is the simulator (what the device must report about itself)."""

    device: Device
    inject: Callable[..., None]
    closers: list[Callable[[], None]] = field(default_factory=list)
    simulated: bool = True

    def close(self) -> None:
        self.device.close()
        for fn in self.closers:
            fn()


def _sim(mode: str) -> Callable[..., DeviceUnderTest]:
    def make(spec: str = "AKD1000", timeouts: Timeouts = FAST, retries: int = 1) -> DeviceUnderTest:
        serial = f"T{next(_serials):05d}"
        url = f"sim://{spec.lower()}/0?serial={serial}&mem={TEST_MEM}&mode={mode}"
        bus = open_bus(url)
        device = Device(bus, url=url, kind="sim", timeouts=timeouts, retries=retries)
        chip = getattr(bus, "chip", None)
        closers = [lambda: sim_transport.drop_chip(chip)] if chip is not None else []
        return DeviceUnderTest(device, bus.inject_fault, closers)  # type: ignore[attr-defined]

    return make


FACTORIES: dict[str, Callable[..., DeviceUnderTest]] = {
    "sim-inproc": _sim("inproc"),
    "sim-process": _sim("process"),
}


def _add_real_transports() -> None:
    # The pcie and usb transports with simulated AKD1000 chips behind their OS seams (tests/sim_transports.py).
    from tests.sim_transports import pcie_factory, usb_factory

    FACTORIES["pcie-sim"] = pcie_factory
    FACTORIES["usb-sim"] = usb_factory


_add_real_transports()


NO_BOARD = (
    "no Akida board found by akida_rt.driver discovery (PCIe /dev/akidaN or USB); "
    "the hardware contract tests need one"
)


def _no_faults(*_: object, **__: object) -> None:
    pytest.skip("faults cannot be injected on a real board")


def hardware_factory(
    spec: str = "AKD1000", timeouts: Timeouts | None = None, retries: int = 1
) -> DeviceUnderTest:
    """The first real board that akida_rt.driver discovery finds, opened afresh.

    Chips that identify themselves as simulated (for example boards attached by
    `$AKIDA_SIM_BOARDS`) are passed over. Skips when no board is present, or when the
    board is not `spec`. A board that is present but cannot be opened fails the test with
    the driver's message (permissions, busy), which names the fix.
    """
    others: list[str] = []
    for url in discovery.discover_urls():
        kind = discovery.kind_of(url)
        device = Device(open_bus(url), url=url, kind=kind, timeouts=timeouts, retries=retries)
        if device.simulated:
            device.close()
            continue
        if device.identity.name != spec:
            others.append(f"{device.identity.name} at {url}")
            device.close()
            continue
        return DeviceUnderTest(device, _no_faults, simulated=False)
    if others:
        pytest.skip(f"this test needs an {spec} board; found only {', '.join(others)}")
    pytest.skip(NO_BOARD)


# The contract suite: every simulated transport, then a real board (marked `hardware`).
CONTRACT_FACTORIES: dict[str, Callable[..., DeviceUnderTest]] = {
    **FACTORIES,
    "hardware": hardware_factory,
}
CONTRACT_PARAMS = [
    pytest.param(name, marks=pytest.mark.hardware) if name == "hardware" else name
    for name in CONTRACT_FACTORIES
]
