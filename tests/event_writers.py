"""Event files for the reader tests, written independently of akida_rt's codecs.

EVT2 files come from expelliarmus's writer (a third party; its EVT3 writer leaves out
EVT_TIME_HIGH words, measured, so it cannot serve for EVT3). EVT3 files come from
`spec_evt3`, a word-by-word writer written here from the format table alone: it shares
nothing with akida_rt.stream.evt3, uses VECT_8 as well as VECT_12, sets the ADDR_Y
system bit, emits a time high every 4 ms like a sensor, and sprinkles the words that
carry no CD event (EXT_TRIGGER, OTHERS, CONTINUED_4/12).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def expelliarmus_evt2(path: Path, ev: np.ndarray) -> None:
    from expelliarmus import Wizard

    dt = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.uint8)])
    arr = np.zeros(len(ev), dt)
    for name in ("t", "x", "y", "p"):
        arr[name] = ev[name]
    Wizard(encoding="evt2").save(str(path), arr)


def spec_evt3(path: Path, ev: np.ndarray, width: int = 640, height: int = 480) -> None:
    """EVT3 words per the spec table, written one at a time."""
    words: list[int] = []

    def put(kind: int, payload: int) -> None:
        words.append((kind << 12) | (payload & 0xFFF))

    time_high_sent = -1  # full (unwrapped) bits 23+ of the last EVT_TIME_HIGH sent
    low_sent = y_sent = -1
    rows = ev[["t", "x", "y", "p"]].tolist()
    i = 0
    while i < len(rows):
        t, x, y, p = rows[i]
        # a sensor sends the time high every 4096 us, whether events come or not
        while time_high_sent < t >> 12:
            time_high_sent += 1
            put(0x8, time_high_sent)
            low_sent = -1
            if time_high_sent % 5 == 0:
                put(0xA, 0x101)  # EXT_TRIGGER: id 1, value 1
                put(0xE, 0x123)  # OTHERS
                put(0xF, 0xABC)  # CONTINUED_12
                put(0x7, 0x5)  # CONTINUED_4
        if t & 0xFFF != low_sent:
            low_sent = t & 0xFFF
            put(0x6, low_sent)
        if y != y_sent:
            y_sent = y
            put(0x0, (1 << 11) | y)  # system type bit set: still this row
        run = [x]
        while (i + len(run) < len(rows) and rows[i + len(run)][0] == t
               and rows[i + len(run)][2] == y and rows[i + len(run)][3] == p
               and rows[i + len(run)][1] > run[-1]):  # fmt: skip
            run.append(rows[i + len(run)][1])
        if len(run) == 1:
            put(0x2, (p << 11) | x)
        else:
            base = run[0]
            put(0x3, (p << 11) | base)
            members = set(run)
            while base <= run[-1]:
                size = 8 if run[-1] - base < 8 else 12  # a short tail takes a VECT_8
                mask = 0
                for bit in range(size):
                    if base + bit in members:
                        mask |= 1 << bit
                put(0x5 if size == 8 else 0x4, mask)
                base += size
        i += len(run)
    header = f"% evt 3.0\n% format EVT3;height={height};width={width}\n% end\n".encode()
    path.write_bytes(header + struct.pack(f"<{len(words)}H", *words))
