"""Serial console: the line protocol on pyserial's loop://, then a simulated chip's console on a pty.

Nothing here opens a port that is not identified as ours; /dev/ttyS0 (the VM console) is
refused before pyserial is called.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import serial
from akida_rt.driver import serial_console as sc
from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip
from akida_rt.firmware_sim.console import SimConsole

from akida_rt.errors import DeviceError, DeviceLost, DeviceNotFound, TransportTimeout
from tests import chip_addresses as ca


def _answer_later(console: sc.Console, line: bytes, delay: float = 0.05) -> None:
    threading.Timer(delay, lambda: console._port.write(line)).start()


def test_line_protocol_on_loop(caplog: pytest.LogCaptureFixture) -> None:
    with sc.open_console("loop://") as con, caplog.at_level(logging.DEBUG, "akida_rt.firmware"):
        con._port.write(b"log WARNING temperature high\r\nlog DEBUG tick\nbootloader v2\n")
        _answer_later(con, b"ok identify vendor=1e7c device=bca1 serial=B1 fw=1.2\n")
        assert con.identify(timeout=2) == {
            "vendor": "1e7c", "device": "bca1", "serial": "B1", "fw": "1.2",
        }  # fmt: skip
        _answer_later(con, b"err reset watchdog busy\n")
        with pytest.raises(DeviceError, match="watchdog busy"):
            con.reset(timeout=2)
    records = {(r.levelname, r.getMessage()) for r in caplog.records}
    assert ("WARNING", "temperature high") in records and ("DEBUG", "tick") in records
    assert ("INFO", "bootloader v2") in records  # unstructured output is still forwarded
    assert ("INFO", "identify") in records  # loop:// echoes our command back


def test_no_reply_is_a_timeout() -> None:
    with sc.open_console("loop://") as con, pytest.raises(TransportTimeout, match="no reply"):
        con.command("identify", timeout=0.2)


def test_ports_not_identified_as_ours_are_never_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"pyserial was asked to open {args}")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    for url in ("serial:///dev/ttyS0", "/dev/ttyS0", "serial:///dev/ttyUSB7"):
        with pytest.raises(DeviceNotFound, match="not identified as an Akida console"):
            sc.open_console(url)
    assert "/dev/ttyS0" not in sc.console_ports()


@pytest.fixture
def board():
    chip = Akd1000Chip("C1")
    console = SimConsole(chip)
    yield chip, console
    sc.untrust_port(console.path)
    console.close()
    chip.close()


def test_sim_console_on_a_real_pty(board, caplog: pytest.LogCaptureFixture) -> None:
    chip, console = board
    assert console.path.startswith("/dev/pts/")
    with pytest.raises(DeviceNotFound):
        sc.open_console(f"serial://{console.path}")  # a pty is not ours until trusted
    sc.trust_port(console.path)
    assert console.path in sc.console_ports()
    with (
        sc.open_console(f"serial://{console.path}") as con,
        caplog.at_level(logging.INFO, "akida_rt.firmware"),
    ):
        assert isinstance(con._port, serial.Serial)  # pyserial's own tty class
        ident = con.identify()
        assert (ident["vendor"], ident["device"], ident["serial"]) == ("1e7c", "bca1", "C1")
        boots = chip.boot_count
        assert con.reset() == {"boot": str(boots + 1)} and chip.boot_count == boots + 1
        console.log("ERROR", "NP (1, 2, 0) parity error")
        deadline = time.monotonic() + 2
        while "parity" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "reset from console: boot" in caplog.text
    assert any(r.levelname == "ERROR" and "parity" in r.getMessage() for r in caplog.records)


def test_unplugged_board_loses_its_console(board) -> None:
    chip, console = board
    sc.trust_port(console.path)
    with sc.open_console(console.path) as con:
        con.identify()
        chip.inject_fault("unplug")
        with pytest.raises(DeviceLost):
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                con.identify(timeout=0.3)


def test_a_usb_board_and_its_console_are_the_same_board(tmp_path) -> None:
    from akida_rt.driver.bus import open_bus
    from akida_rt.driver.sim_rack import SimRack

    with SimRack(tmp_path) as rack:
        bus = open_bus(rack.add_usb("U7", mem=1 << 20))
        (port,) = [p for p in sc.console_ports() if p == rack.consoles["U7"].path]
        with sc.open_console(f"serial://{port}") as con:
            assert con.identify()["serial"] == "U7"
            bus.write32(ca.RW_REG, 0x40)  # over USB
            chip = rack.chip("U7")
            before = chip.boot_count
            con.reset()
            assert chip.boot_count == before + 1
            assert bus.read32(ca.RW_REG) == 0  # registers back at their reset values
