"""External trigger events (EXT_TRIGGER words) of Prophesee RAW streams, kept beside the
CD events: `TRIGGER_DTYPE` (t us, channel id, value 0/1), decoded in numpy from the words
and the decoder's state at the start of each run (the C kernels skip these words).

EVT2 / EVT2.1: type 0xA, [27:22] (EVT2.1: [59:54]) the time's 6 LSBs, [12:8] (EVT2.1:
[44:40]) the id, [0] (EVT2.1: [32]) the value; EVT3: type 0xA, [11:8] the id, [0] the
value, at the time the TIME_HIGH/TIME_LOW words before it set.
"""

from __future__ import annotations

import numpy as np

TRIGGER_DTYPE = np.dtype([("t", "<i8"), ("id", "u1"), ("value", "u1")])
HIGH_RANGE = 1 << 12


def _last(mask: np.ndarray, values: np.ndarray, before: int) -> np.ndarray:
    """Per word, the value of the last word where `mask` holds (`before` when none)."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], before)


def evt2_triggers(words: np.ndarray, high0: int, wide: bool = False) -> np.ndarray:
    """Triggers of EVT2 (or EVT2.1 when `wide`) words; `high0` the time high before them."""
    hi = (words >> np.uint64(32)).astype(np.uint32) if wide else words.astype(np.uint32)
    kind = hi >> 28
    trig = kind == 0xA
    if not trig.any():
        return np.zeros(0, TRIGGER_DTYPE)
    high = _last(kind == 0x8, (hi & 0x0FFFFFFF).astype(np.int64), high0)[trig]
    w = hi[trig]
    out = np.zeros(int(trig.sum()), TRIGGER_DTYPE)
    out["t"] = (high << 6) | ((w >> 22) & 0x3F)
    out["id"] = (w >> 8) & 0x1F
    low_word = (words[trig] & np.uint64(0xFFFFFFFF)).astype(np.uint32) if wide else w
    out["value"] = low_word & 1 if not wide else w & 1
    return out


def evt3_triggers(words: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Triggers of EVT3 words; `state` the decoder's (y, low, high, loops, ...) before them."""
    kind = words >> 12
    trig = kind == 0xA
    if not trig.any():
        return np.zeros(0, TRIGGER_DTYPE)
    payload = (words & 0xFFF).astype(np.int64)
    is_high = kind == 0x8
    highs = np.concatenate([[int(state[2])], payload[is_high]])
    loops = int(state[3]) + np.concatenate(
        [[0], np.cumsum(highs[:-1] - highs[1:] >= HIGH_RANGE // 2)]
    )
    which = np.cumsum(is_high)  # index into highs/loops per word
    low = _last(kind == 0x6, payload, int(state[1]))
    t = ((loops[which] * HIGH_RANGE + highs[which]) << 12) | low
    out = np.zeros(int(trig.sum()), TRIGGER_DTYPE)
    out["t"] = t[trig]
    out["id"] = (payload[trig] >> 8) & 0xF
    out["value"] = payload[trig] & 1
    return out
