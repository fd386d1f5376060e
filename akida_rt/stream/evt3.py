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

from akida_rt.stream.events import DEFAULT_CHUNK, EVENT_DTYPE, OnError
from akida_rt.stream.prophesee import RawReader, raw_header

ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, TIME_HIGH = 0, 2, 3, 4, 5, 6, 8
KNOWN = np.ones(16, bool)
KNOWN[[0x1, 0x9, 0xB, 0xC, 0xD]] = False
WORD = np.dtype("<u2")
HIGH_RANGE = 1 << 12
BITS = np.arange(12, dtype=np.uint16)


def _latest(mask: np.ndarray, values: np.ndarray, carried: int) -> tuple[np.ndarray, np.ndarray]:
    """(the value of the last marked position at or before each position, as indices
    into `table`; table): table[0] is `carried` (no marked position yet), table[k] the
    k-th marked position's value."""
    table = np.concatenate(([carried], values[mask]))
    return np.cumsum(mask), table


class Evt3Decoder:
    """Decodes successive runs of words, carrying the decoder state from run to run."""

    def __init__(self, reader: RawReader) -> None:
        self.reader = reader
        self.y = self.low = self.high = self.loops = 0
        self.base = self.pol = 0

    def __call__(self, w: np.ndarray, first_offset: int) -> tuple[np.ndarray, np.ndarray]:
        kind = (w >> 12).astype(np.uint8)
        payload = (w & 0xFFF).astype(np.int64)
        unknown = ~KNOWN[kind]
        if unknown.any():
            i = int(np.argmax(unknown))
            self.reader.bad(first_offset + 2 * i,
                            f"unknown EVT3 word 0x{int(w[i]):04x} (type 0x{int(kind[i]):x})",
                            int(unknown.sum()))  # fmt: skip
        single, v12, v8 = kind == ADDR_X, kind == VECT_12, kind == VECT_8
        words = np.flatnonzero(single | v12 | v8)  # the words that carry CD events
        # Vector base: the last VECT_BASE_X plus 12 per VECT_12 and 8 per VECT_8 since.
        step = np.where(v12, 12, np.where(v8, 8, 0))
        before = np.cumsum(step) - step
        is_base = kind == VECT_BASE_X
        # The state at each CD word: the last y, time low, time high and vector base.
        y_at, y_table = _latest(kind == ADDR_Y, payload & 0x7FF, self.y)
        low_at, low_table = _latest(kind == TIME_LOW, payload, self.low)
        high_at, high_table = self._time_high(kind, payload)
        base_at, base_table = _latest(is_base, (payload & 0x7FF) - before, self.base)
        _, pol_table = _latest(is_base, payload >> 11, self.pol)
        # Each CD word's events: one at its own x for EVT_ADDR_X, one per set bit of a
        # vector's mask at base + bit; in word order.
        p_w = payload[words]
        one = single[words]
        mask = np.where(one, 1, p_w & np.where(v8[words], 0xFF, 0xFFF))
        count = np.bitwise_count(mask).astype(np.int64)
        rep = np.repeat(np.arange(len(words)), count)  # each event's word, by rank
        base = base_table[base_at[words]] + before[words]
        x = np.where(one, p_w & 0x7FF, base)[rep]
        vec = np.flatnonzero(~one)
        row, bit = np.nonzero((mask[vec, None] >> BITS) & 1)
        # a vector's events come after those of the words before it, one per set bit
        start = np.cumsum(count) - count
        x[start[vec][row] + np.arange(len(row)) - (np.cumsum(count[vec]) - count[vec])[row]] += bit
        ev = np.empty(len(rep), EVENT_DTYPE)
        at = words[rep]
        ev["t"] = high_table[high_at[at]] | low_table[low_at[at]]
        ev["x"], ev["y"] = x, y_table[y_at[at]]
        ev["p"] = np.where(one, p_w >> 11, pol_table[base_at[words]])[rep]
        if len(w):
            self.y, self.low = int(y_table[-1]), int(low_table[-1])
            self.base = int(base_table[-1] + before[-1] + step[-1])
            self.pol = int(pol_table[-1])
        return ev, first_offset + 2 * at

    def _time_high(self, kind: np.ndarray, payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bits 23 and up of each word's time (the time high with its wraps counted), as
        _latest gives them."""
        is_high = kind == TIME_HIGH
        h = payload[is_high]
        prev = np.concatenate(([self.high], h[:-1]))
        loops = self.loops + np.cumsum(prev - h >= HIGH_RANGE // 2)
        carried = (self.loops * HIGH_RANGE + self.high) << 12
        if len(h):
            self.high, self.loops = int(h[-1]), int(loops[-1])
        return np.cumsum(is_high), np.concatenate(([carried], (loops * HIGH_RANGE + h) << 12))


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
