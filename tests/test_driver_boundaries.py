"""The driver's boundaries: production modules never load the simulator, simulated boards
register through the discovery registry, a device says itself whether it is simulated,
and the driver's errors live in the one exception tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from akida_rt.driver.bus import open_bus
from akida_rt.driver.device import Device

from akida_rt import errors
from tests.device_urls import FAST

PRODUCTION = (
    "bus, device, discovery, fileio, pcie, akd1000_host, serial_console, sysfs, udev, usb, usb_ids"
)


def _child(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "AKIDA_SIM_BOARDS"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, env={**clean, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_production_driver_modules_load_no_simulator() -> None:
    """Importing the transports and discovery, and discovering, loads no simulator code
    when $AKIDA_SIM_BOARDS is unset; the transports' own discovery never reaches it."""
    out = _child(
        f"""
        import sys
        from akida_rt.driver import {PRODUCTION}

        def sim():
            return sorted(m for m in sys.modules
                          if m.startswith(("akida_rt.firmware_sim", "akida_rt.driver.sim")))

        assert not sim(), sim()
        pcie.discover_urls(), usb.discover_urls()
        assert not sim(), sim()
        discovery.discover_urls()
        assert not [m for m in sim() if m.startswith("akida_rt.firmware_sim")], sim()
        print("clean")
        """
    )
    assert out.split() == ["clean"]


def test_configured_sim_boards_register_through_the_discovery_registry() -> None:
    """$AKIDA_SIM_BOARDS boards are plugged in by the sim transport's discoverer, behind
    the pcie and usb seams; the pcie and usb transports alone do not attach them."""
    out = _child(
        """
        import json, sys
        from akida_rt.driver import discovery, pcie, usb

        before = pcie.discover_urls() + usb.discover_urls()
        assert "akida_rt.firmware_sim.akd1000_chip" not in sys.modules
        urls = [u for u in discovery.discover_urls() if u not in before]
        found = [discovery.open_device(u).describe() for u in urls]
        print(json.dumps([[d["kind"], d["serial"], d["simulated"]] for d in found]))
        """,
        AKIDA_SIM_BOARDS="pcie:1,usb:2",
    )
    assert [tuple(d) for d in json.loads(out)] == [
        ("pcie", "0000:01:00.0", True),  # a board has no serial register: its PCI address
        ("usb", "SIMU0001", True),
        ("usb", "SIMU0002", True),
    ]


def test_simulated_is_what_the_chip_reports_not_the_url_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from akida_rt.driver import sim_transport
    from akida_rt.firmware_sim.sim_registers import SimRegisters

    def open_sim(serial: str) -> Device:
        url = f"sim://akd1000/0?serial={serial}"
        return Device(open_bus(url), url=url, kind="sim", timeouts=FAST)

    sim = open_sim("BOUND1")
    assert sim.simulated is True and sim.identity.simulated is True
    assert sim.describe()["simulated"] is True

    read = SimRegisters.read

    def like_a_board(self: SimRegisters, offset: int) -> int:
        return 0 if offset == 0 else read(self, offset)  # no "SIMU" magic: a real AKD1000

    monkeypatch.setattr(SimRegisters, "read", like_a_board)
    board = open_sim("BOUND2")  # still sim://, but the chip no longer says it is simulated
    assert board.kind == "sim" and board.simulated is False
    assert board.describe()["simulated"] is False
    for dev in (sim, board):
        chip = dev.bus.chip  # type: ignore[attr-defined]
        dev.close()
        sim_transport.drop_chip(chip)


def test_driver_errors_live_in_the_one_exception_tree() -> None:
    tree = {
        errors.DeviceResetError: errors.DeviceError,
        errors.ConversionError: errors.ToolchainError,
    }
    for cls, base in tree.items():
        assert issubclass(cls, base) and issubclass(cls, errors.AkidaError), cls
        assert cls.__module__ == "akida_rt.errors"
