"""Prophesee EVT 3.0: decoder and writer, written from the published format specification.

16-bit little-endian words; the top 4 bits are the type, and the decoder keeps a state
(y, time, vector base x and polarity) that each word updates:
    0x0 EVT_ADDR_Y    [11] system type, [10:0] y
    0x2 EVT_ADDR_X    [11] polarity, [10:0] x: one CD event at (x, y)
    0x3 VECT_BASE_X   [11] polarity, [10:0] x: base of the vectors that follow
    0x4 VECT_12       [11:0] mask: events at base+i for each set bit i; base += 12
    0x5 VECT_8        [7:0] mask: likewise; base += 8
    0x6 EVT_TIME_LOW  [11:0] time bits 11..0
    0x8 EVT_TIME_HIGH [11:0] time bits 23..12
    0x7 CONTINUED_4, 0xA EXT_TRIGGER, 0xE OTHERS, 0xF CONTINUED_12: no CD event
Types 0x1, 0x9, 0xB, 0xC and 0xD are reserved: unknown words. The 24-bit time wraps
every 16.78 s; a time high that falls by at least half its range is a wrap (a smaller
fall is time going back, which the reader refuses or drops).
"""

from __future__ import annotations

import os

import numpy as np

from akida_rt.native import _kernels
from akida_rt.stream.events import DEFAULT_CHUNK, OnError
from akida_rt.stream.prophesee import Decoder, RawReader, raw_header

ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, TIME_HIGH = 0, 2, 3, 4, 5, 6, 8
WORD = np.dtype("<u2")
HIGH_RANGE = 1 << 12


class Evt3Decoder(Decoder):
    """akida_rt.native._kernels.evt3_decode; its state: y, time low, time high, time-high wraps, vector base x and polarity."""

    kernel = staticmethod(_kernels.evt3_decode)
    state_size = 6
    name, type_shift = "EVT3", 12


def open_evt3(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = DEFAULT_CHUNK,
    on_error: OnError | str = OnError.RAISE,
) -> RawReader:
    """An EVT3 RAW file opened for chunked reading (`chunks()` yields EVENT_DTYPE)."""
    return RawReader(path, Evt3Decoder, WORD, chunk_events=chunk_events, on_error=on_error)


def encode_evt3(ev: np.ndarray) -> np.ndarray:
    """EVT3 words for time-ordered events: TIME_HIGH/TIME_LOW/ADDR_Y when they change, then
    runs of events with the same time, y and polarity as VECT_BASE_X + VECT_12 words (a
    lone event as EVT_ADDR_X)."""
    words: list[int] = []
    high, low, y = 0, -1, -1
    t, xs, ys, ps = (ev[f].tolist() for f in ("t", "x", "y", "p"))
    i, n = 0, len(t)
    while i < n:
        j = i + 1
        while j < n and t[j] == t[i] and ys[j] == ys[i] and ps[j] == ps[i] and xs[j] > xs[j - 1]:
            j += 1
        ti = t[i]
        if (ti >> 12) != high or not words:
            # a decoder counts a wrap when the time high falls by half its range or more,
            # so longer gaps get intermediate time highs
            while (ti >> 12) - high > HIGH_RANGE // 2 - 1:
                high += HIGH_RANGE // 2 - 1
                words.append((TIME_HIGH << 12) | (high & 0xFFF))
            high = ti >> 12
            words.append((TIME_HIGH << 12) | (high & 0xFFF))
            low = -1
        if (ti & 0xFFF) != low:
            low = ti & 0xFFF
            words.append((TIME_LOW << 12) | low)
        if ys[i] != y:
            y = ys[i]
            words.append((ADDR_Y << 12) | y)
        p = 1 if ps[i] else 0
        if j - i == 1:
            words.append((ADDR_X << 12) | (p << 11) | xs[i])
        else:
            base = xs[i]
            words.append((VECT_BASE_X << 12) | (p << 11) | base)
            run = set(xs[i:j])
            while base <= xs[j - 1]:
                mask = sum(1 << b for b in range(12) if base + b in run)
                words.append((VECT_12 << 12) | mask)
                base += 12
        i = j
    return np.array(words, WORD)


def write_evt3(path: str | os.PathLike[str], ev: np.ndarray, width: int, height: int) -> None:
    """Write time-ordered events as an EVT3 RAW file."""
    with open(path, "wb") as f:
        f.write(raw_header(width, height, "EVT3"))
        f.write(encode_evt3(ev).tobytes())
