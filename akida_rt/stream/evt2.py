"""Prophesee EVT 2.0: decoder and writer, written from the published format specification.

32-bit little-endian words; the top 4 bits are the type:
    0x0 CD_OFF / 0x1 CD_ON: [27:22] timestamp LSBs (6), [21:11] x, [10:0] y
    0x8 EVT_TIME_HIGH:      [27:0] timestamp MSBs (bits 33..6 of the microsecond time)
    0xA EXT_TRIGGER, 0xE OTHERS, 0xF CONTINUED: carry no CD event (skipped)
Every other type is reserved: an unknown word.
"""

from __future__ import annotations

import os

import numpy as np

from akida_rt.native import _kernels
from akida_rt.stream.events import DEFAULT_CHUNK, OnError
from akida_rt.stream.prophesee import Decoder, RawReader, raw_header

CD_OFF, CD_ON, TIME_HIGH, EXT_TRIGGER, OTHERS, CONTINUED = 0x0, 0x1, 0x8, 0xA, 0xE, 0xF
WORD = np.dtype("<u4")


class Evt2Decoder(Decoder):
    """akida_rt.native._kernels.evt2_decode; its state: the time high."""

    kernel = staticmethod(_kernels.evt2_decode)
    state_size = 1
    name, type_shift = "EVT2", 28


def open_evt2(
    path: str | os.PathLike[str],
    *,
    chunk_events: int = DEFAULT_CHUNK,
    on_error: OnError | str = OnError.RAISE,
) -> RawReader:
    """An EVT2 RAW file opened for chunked reading (`chunks()` yields EVENT_DTYPE)."""
    return RawReader(path, Evt2Decoder, WORD, chunk_events=chunk_events, on_error=on_error)


def encode_evt2(ev: np.ndarray) -> np.ndarray:
    """EVT2 words for time-ordered events: a TIME_HIGH word whenever bits 33..6 change."""
    t = ev["t"].astype(np.int64)
    high = t >> 6
    new_high = np.ones(len(t), bool)
    new_high[1:] = high[1:] != high[:-1]
    cd = ((ev["p"] != 0).astype(np.uint32) << 28) | ((t & 0x3F).astype(np.uint32) << 22)
    cd |= (ev["x"].astype(np.uint32) << 11) | ev["y"].astype(np.uint32)
    heads = (TIME_HIGH << 28) | (high[new_high] & 0x0FFFFFFF).astype(np.uint32)
    out = np.empty(len(t) + len(heads), WORD)
    at = np.arange(len(t)) + np.cumsum(new_high)  # each event's slot after its heads
    out[at] = cd
    out[at[new_high] - 1] = heads
    return out


def write_evt2(path: str | os.PathLike[str], ev: np.ndarray, width: int, height: int) -> None:
    """Write time-ordered events as an EVT2 RAW file."""
    with open(path, "wb") as f:
        f.write(raw_header(width, height, "EVT2"))
        f.write(encode_evt2(ev).tobytes())
