"""A simulated chip in its own process, serving the sim:// wire on an inherited socket.

Started by the sim:// transport as `python -m akida_rt.firmware_sim.server --fd N ...`, so
a crash of the simulated device is isolated from the host process.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from akida_rt.firmware_sim import wire
from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

log = logging.getLogger(__name__)


def _handle(chip: Akd1000Chip, op: int, count: int, addr: int, value: int, payload: bytes) -> bytes:
    """Execute one request; return the response payload (OSError propagates)."""
    if op == wire.Op.READ32:
        return chip.read32(addr).to_bytes(4, "little")
    if op == wire.Op.WRITE32:
        chip.write32(addr, value)
        return b""
    if op == wire.Op.READ:
        return chip.read(addr, value)
    if op == wire.Op.WRITE:
        chip.write(addr, payload)
        return b""
    if op == wire.Op.FAULT:
        kind = payload.decode("ascii", "replace")
        if kind == "crash":
            os._exit(70)  # the simulated device dies without a word
        chip.inject_fault(kind, max(1, count))
        return b""
    if op == wire.Op.PING:
        return b""
    raise ValueError(f"unknown wire op {op}")


def serve(sock: socket.socket, chip: Akd1000Chip) -> None:
    """Answer requests until the peer closes the connection or sends CLOSE."""
    while True:
        try:
            header = wire.recv_exact(sock, wire.REQUEST.size)
            op, count, addr, value, length = wire.REQUEST.unpack(header)
            payload = wire.recv_exact(sock, length) if length else b""
        except (EOFError, OSError):
            return
        if op == wire.Op.CLOSE:
            with contextlib.suppress(OSError):
                sock.sendall(wire.RESPONSE.pack(0, 0, 0))
            return
        try:
            data = _handle(chip, op, count, addr, value, payload)
            reply = wire.RESPONSE.pack(0, 0, len(data)) + data
        except OSError as exc:
            msg = str(exc.strerror or exc).encode()
            reply = wire.RESPONSE.pack(exc.errno or 5, 0, len(msg)) + msg
        except ValueError as exc:
            msg = str(exc).encode()
            reply = wire.RESPONSE.pack(22, 0, len(msg)) + msg
        try:
            sock.sendall(reply)
        except OSError:
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulated AKD1000 in a child process")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket descriptor")
    parser.add_argument("--serial", default="SIM0001")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="simchip %(levelname)s %(message)s")
    sock = socket.socket(fileno=args.fd)
    chip = Akd1000Chip(args.serial)
    # A control path from outside the owning process (the daemon's simulators in tests):
    # SIGUSR1 arms a firmware hang, SIGUSR2 a spontaneous reset, at the next descriptor.
    signal.signal(signal.SIGUSR1, lambda *_: chip.inject_fault("hang"))
    signal.signal(signal.SIGUSR2, lambda *_: chip.inject_fault("reset"))
    try:
        serve(sock, chip)
    finally:
        chip.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
