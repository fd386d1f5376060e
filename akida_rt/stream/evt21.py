"""Prophesee EVT 2.1: vectorized 64-bit words, decoded with numpy behind the same Decoder
interface as the C kernels of EVT2/EVT3 (written from the published format specification).

A little-endian 64-bit word: [63:60] type, then for 0x0 EVT_NEG / 0x1 EVT_POS [59:54] the
timestamp's 6 LSBs, [53:43] x (a multiple of 32), [42:32] y, [31:0] valid: bit i set is an
event at (x + i, y); 0x8 EVT_TIME_HIGH: [59:32] bits 33..6 of the time; 0xA EXT_TRIGGER,
0xE OTHERS, 0xF CONTINUED carry no CD event. Every other type is reserved.
"""

from __future__ import annotations

import os

import numpy as np

from akida_rt.stream.events import DEFAULT_CHUNK, OnError
from akida_rt.stream.prophesee import Decoder, RawReader

WORD = np.dtype("<u8")
NEG, POS, TIME_HIGH, EXT_TRIGGER, OTHERS, CONTINUED = 0x0, 0x1, 0x8, 0xA, 0xE, 0xF
KNOWN = np.zeros(16, bool)
KNOWN[[NEG, POS, TIME_HIGH, EXT_TRIGGER, OTHERS, CONTINUED]] = True


def evt21_kernel(
    words: np.ndarray,
    state: np.ndarray,
    event_dtype: np.dtype,
    first_offset: int,
    width: int,
    height: int,
    last_t: int,
    offsets: bool,
) -> tuple[np.ndarray, np.ndarray | None, int, int, bool]:
    """(events, byte offsets or None, unknown words, first unknown index, clean) of `words`;
    state[0] carries the time high."""
    w = np.asarray(words, np.uint64)
    hi = (w >> np.uint64(32)).astype(np.uint32)
    kind = (hi >> 28).astype(np.uint8)
    unknown = ~KNOWN[kind]
    n_unknown = int(unknown.sum())
    first_unknown = int(np.argmax(unknown)) if n_unknown else 0
    is_high = kind == TIME_HIGH
    last = np.where(is_high, np.arange(len(w)), -1)
    np.maximum.accumulate(last, out=last)
    high = np.where(last >= 0, hi[np.maximum(last, 0)] & 0x0FFFFFFF, state[0]).astype(np.int64)
    if is_high.any():
        state[0] = int(high[-1])
    cd = np.flatnonzero(kind <= POS)
    low = np.ascontiguousarray((w[cd] & np.uint64(0xFFFFFFFF)).astype("<u4"))
    valid = np.unpackbits(low.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    flat = np.flatnonzero(valid)  # 1-D: a third of nonzero's time on a 2-D mask
    word_i, bit = flat >> 5, flat & 31
    src = cd[word_i]
    ev = np.empty(len(src), event_dtype)
    ev["t"] = (high[src] << 6) | ((hi[src] >> 22) & 0x3F)
    ev["x"] = ((hi[src] >> 11) & 0x7FF) + bit
    ev["y"] = hi[src] & 0x7FF
    ev["p"] = kind[src]
    ok = n_unknown == 0
    if ok and len(ev):
        t = ev["t"]
        ok = bool(t[0] >= last_t and (np.diff(t) >= 0).all())
        if width and height:
            ok = ok and bool((ev["x"] < width).all() and (ev["y"] < height).all())
    offs = first_offset + 8 * src.astype(np.int64) if offsets else None
    return ev, offs, n_unknown, first_unknown, ok


class Evt21Decoder(Decoder):
    """evt21_kernel; its state: the time high."""

    kernel = staticmethod(evt21_kernel)
    state_size = 1
    name, type_shift = "EVT2.1", 60


def open_evt21(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = DEFAULT_CHUNK,
    on_error: OnError | str = OnError.RAISE,
    fmt: str = "",
    sensor: tuple[int, int] | None = None,
) -> RawReader:
    """An EVT2.1 RAW file opened for chunked reading (its 34-bit time unwrapped)."""
    return RawReader(path, Evt21Decoder, WORD, chunk_events=chunk_events, on_error=on_error,
                     fmt=fmt or "EVT2.1", sensor=sensor, wrap_bits=34)  # fmt: skip


def encode_evt21(ev: np.ndarray) -> np.ndarray:
    """EVT2.1 words for time-ordered events, one CD word per event (valid bit 0), a
    TIME_HIGH word whenever bits 33..6 change (tests build vectorized words by hand)."""
    t = ev["t"].astype(np.int64)
    high = t >> 6
    new = np.ones(len(t), bool)
    new[1:] = high[1:] != high[:-1]
    x = ev["x"].astype(np.uint64)
    base, bit = x & ~np.uint64(31), x & np.uint64(31)
    cd = (((ev["p"] != 0).astype(np.uint64) << 60) | ((t & 0x3F).astype(np.uint64) << 54)
          | (base << 43) | (ev["y"].astype(np.uint64) << 32) | (np.uint64(1) << bit))  # fmt: skip
    heads = (np.uint64(TIME_HIGH) << 60) | ((high[new] & 0x0FFFFFFF).astype(np.uint64) << 32)
    out = np.empty(len(t) + len(heads), WORD)
    at = np.arange(len(t)) + np.cumsum(new)
    out[at] = cd
    out[at[new] - 1] = heads
    return out
