"""The socket wire between the sim:// transport and a simulated chip in a child process.

One request, one response, in order: the Bus calls (read32, write32, read, write) plus
fault injection and close. Both ends import this module; nothing else uses it.
"""

from __future__ import annotations

import enum
import socket
import struct

# Request: op, count (faults), address, value or length, payload length; payload follows.
REQUEST = struct.Struct("<BxxxIQQQ")
# Response: errno (0 = ok), value, payload length; payload (data or message) follows.
RESPONSE = struct.Struct("<iQQ")


class Op(enum.IntEnum):
    READ32 = 1
    WRITE32 = 2
    READ = 3
    WRITE = 4
    FAULT = 5  # payload: fault kind (ASCII); "crash" ends the child process at once
    CLOSE = 6
    PING = 7


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly `n` bytes from `sock`; EOFError if the peer closed the connection."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("peer closed the connection")
        got += k
    return bytes(buf)
