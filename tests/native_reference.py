"""The numpy forms of what akida_rt.native._kernels computes, kept as the references each kernel
must equal bit for bit (tests/test_native_kernels.py, tests/fuzz_native.py).

Each is the code the kernel replaced, unchanged but for its names.
"""

from __future__ import annotations

import math

import numpy as np

from akida_rt.engine.integer import CompiledLayer
from akida_rt.engine.learning_rule import RuleParams
from akida_rt.stream.events import EVENT_DTYPE, as_events, empty
from akida_rt.stream.framing import Framing
from akida_rt.stream.prophesee import RawReader

# ---------------------------------------------------------------- EVT3 (evt3.py)
ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, TIME_HIGH = 0, 2, 3, 4, 5, 6, 8
KNOWN3 = np.ones(16, bool)
KNOWN3[[0x1, 0x9, 0xB, 0xC, 0xD]] = False
HIGH_RANGE = 1 << 12
BITS = np.arange(12, dtype=np.uint16)


def _latest(mask: np.ndarray, values: np.ndarray, carried: int) -> tuple[np.ndarray, np.ndarray]:
    """(the value of the last marked position at or before each position, as indices
    into `table`; table): table[0] is `carried` (no marked position yet), table[k] the
    k-th marked position's value."""
    table = np.concatenate(([carried], values[mask]))
    return np.cumsum(mask), table


class NumpyEvt3Decoder:
    """Decodes successive runs of words, carrying the decoder state from run to run."""

    def __init__(self, reader: RawReader) -> None:
        self.reader = reader
        self.y = self.low = self.high = self.loops = 0
        self.base = self.pol = 0

    def __call__(self, w: np.ndarray, first_offset: int) -> tuple[np.ndarray, np.ndarray]:
        kind = (w >> 12).astype(np.uint8)
        payload = (w & 0xFFF).astype(np.int64)
        unknown = ~KNOWN3[kind]
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


# ---------------------------------------------------------------- EVT2 (evt2.py)
CD_OFF, CD_ON, EVT2_HIGH, EXT_TRIGGER, OTHERS, CONTINUED = 0x0, 0x1, 0x8, 0xA, 0xE, 0xF
KNOWN2 = np.zeros(16, bool)
KNOWN2[[CD_OFF, CD_ON, EVT2_HIGH, EXT_TRIGGER, OTHERS, CONTINUED]] = True


class NumpyEvt2Decoder:
    """Decodes successive runs of words; the time high carries over from run to run."""

    def __init__(self, reader: RawReader) -> None:
        self.reader = reader
        self.time_high = 0

    def __call__(self, w: np.ndarray, first_offset: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(w)
        kind = (w >> 28).astype(np.uint8)
        unknown = ~KNOWN2[kind]
        if unknown.any():
            i = int(np.argmax(unknown))
            self.reader.bad(first_offset + 4 * i,
                            f"unknown EVT2 word 0x{int(w[i]):08x} (type 0x{int(kind[i]):x})",
                            int(unknown.sum()))  # fmt: skip
        is_high = kind == EVT2_HIGH
        last = np.where(is_high, np.arange(n), -1)
        np.maximum.accumulate(last, out=last)
        high = np.where(last >= 0, w[last] & 0x0FFFFFFF, self.time_high).astype(np.int64)
        if n and is_high.any():
            self.time_high = int(high[-1])
        cd = np.flatnonzero(kind <= CD_ON)
        wc = w[cd]
        ev = np.empty(len(cd), EVENT_DTYPE)
        ev["t"] = (high[cd] << 6) | ((wc >> 22) & 0x3F)
        ev["x"] = (wc >> 11) & 0x7FF
        ev["y"] = wc & 0x7FF
        ev["p"] = kind[cd]
        return ev, first_offset + 4 * cd


# ---------------------------------------------------------------- framing (framing.py)
BLOCK_SLOTS = 1 << 18
MAX_EMPTY_RUN = 100_000


class NumpyEventFramer:
    """Turns successive event chunks into frames; holds the events of the frame in progress.

    `push(events)` returns (frames uint8 (n, H, W, C), end times (n,) in us) for the frames
    the chunk completes; `flush()` those of a last, partial time window.
    """

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.table = framing.pixel_table()
        self.pixels = math.prod(framing.shape)
        self._rest = empty()
        self._t0: int | None = None  # start of the time-window grid
        self.frames_out = 0

    def push(self, ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev = np.ascontiguousarray(as_events(ev))
        if len(self._rest):
            ev = np.concatenate([self._rest, ev])
        per_frame, window = self.framing.events_per_frame, self.framing.window_us
        if per_frame is not None:
            n = len(ev) // per_frame
            used = n * per_frame
            self._rest = ev[used:].copy()
            ends = ev["t"][per_frame - 1 : used : per_frame].astype(np.int64)
            return self._frames(ev, np.arange(n + 1) * per_frame), ends
        assert window is not None
        if len(ev) == 0:
            return self._frames(ev, np.zeros(1, np.int64)), np.zeros(0, np.int64)
        if self._t0 is None:
            self._t0 = int(ev["t"][0])
        # windows before the last event's are complete
        return self._windows(ev, (int(ev["t"][-1]) - self._t0) // window, window)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Frames for the events still held (a last partial time window; a partial
        event-count frame is dropped)."""
        ev = self._rest
        window = self.framing.window_us
        if window is None or len(ev) == 0 or self._t0 is None:
            self._rest = empty()
            return self._frames(ev, np.zeros(1, np.int64)), np.zeros(0, np.int64)
        return self._windows(ev, (int(ev["t"][-1]) - self._t0) // window + 1, window)

    def _windows(self, ev: np.ndarray, n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
        """The frames of windows frames_out..n-1 (counted from the grid start), whose
        events begin `ev`; the rest of `ev` is held for later."""
        assert self._t0 is not None
        first = self.frames_out
        if n - first > MAX_EMPTY_RUN:
            raise ValueError(
                f"events jump {(n - first) * window} us ahead: {n - first} windows in one step "
                f"(over {MAX_EMPTY_RUN}); is the recording's time corrupt?"
            )
        ends = self._t0 + window * np.arange(first + 1, n + 1, dtype=np.int64)
        bounds = np.searchsorted(ev["t"], np.concatenate([[self._t0 + window * first], ends]))
        bounds[0] = 0
        self._rest = ev[bounds[-1] :].copy()
        return self._frames(ev, bounds), ends

    def _frames(self, ev: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Frame k counts events bounds[k]:bounds[k+1] per pixel, clipped to 255.

        Frames are counted a block at a time, one `np.add.at` per block: each frame has
        `pixels` slots and C more for events outside it, and a block spans about
        BLOCK_SLOTS slots (one frame when frames are larger than half of that)."""
        shape = self.framing.shape
        sw, sh = self.framing.sensor
        n = len(bounds) - 1
        self.frames_out += n
        out = np.empty((n, self.pixels), np.uint8)
        slots = self.pixels + shape[2]  # and the outside slot (+ p when split)
        step = max(1, BLOCK_SLOTS // slots)
        cuts = bounds.tolist()
        for first in range(0, n, step):
            last = min(n, first + step)
            block = ev[cuts[first] : cuts[last]]
            # x and y as one little-endian uint32 (x low, y high): one pass over the events
            key = block.view("<u4")[2::4].astype(np.uint32)
            x = key & 0xFFFF
            key >>= 16
            # coordinates past the sensor go to the table's last column and row; a max
            # costs a fifth of np.minimum by a scalar, and such events are rare
            if x.max(initial=0) > sw:
                np.minimum(x, sw, out=x)
            if key.max(initial=0) > sh:
                np.minimum(key, sh, out=key)
            key *= sw + 1
            key += x
            index = np.take(self.table, key)
            if shape[2] == 2:
                index += block["p"].astype(bool)  # any non-zero polarity is ON
            if last - first > 1:
                index += np.repeat(
                    np.arange(0, (last - first) * slots, slots, dtype=index.dtype),
                    np.diff(bounds[first : last + 1]),
                )
            # uint16 counts cannot wrap when the block holds fewer than 2^16 events;
            # uint32 would need a 64 GiB block
            counts = np.zeros(
                (last - first) * slots, np.uint16 if len(block) < 1 << 16 else np.uint32
            )
            np.add.at(counts, index, counts.dtype.type(1))
            if counts.max(initial=0) > 255:
                np.minimum(counts, 255, out=counts)
            out[first:last] = counts.reshape(last - first, slots)[:, : self.pixels]
        return out.reshape(n, *shape)


# ---------------------------------------------------------------- engine (integer.py)
def im2col(c: CompiledLayer, x: np.ndarray) -> np.ndarray:
    """The padded copy and its windows (integer.py's _conv before the kernel)."""
    layer = c.layer
    n = x.shape[0]
    (t, b), (lft, r) = c.pad
    if t or b or lft or r:
        h, w = x.shape[1:3]
        padded = np.zeros((n, h + t + b, w + lft + r, x.shape[3]), x.dtype)
        if layer.padding_value:
            padded.fill(layer.padding_value)
        padded[:, t : t + h, lft : lft + w] = x
        x = padded
    k, s = layer.kernel_size, layer.stride
    oh, ow = c.out_hw
    if k == 1 and s == 1:
        return x.reshape(-1, x.shape[3])
    x = np.ascontiguousarray(x)
    sn, sh, sw, sc = x.strides
    shape, strides = (n, oh, ow, k, k * x.shape[3]), (sn, sh * s, sw * s, sh, sc)
    win = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
    return win.reshape(n * oh * ow, -1)


def max_pool(c: CompiledLayer, acc: np.ndarray) -> np.ndarray:
    """Max over pool_size windows pool_stride apart; padded positions never win."""
    layer = c.layer
    k, s = layer.pool_size, layer.pool_stride
    oh, ow = c.pool_hw
    (t, b), (lft, r) = c.pool_pad
    if t or b or lft or r:
        acc = np.pad(acc, ((0, 0), (t, b), (lft, r), (0, 0)), constant_values=-np.inf)
    # The window's max is the max over its columns of the max over its rows: 2(k - 1)
    # passes instead of k^2.
    hs, ws = (oh - 1) * s + 1, (ow - 1) * s + 1
    if k == 1:
        return np.ascontiguousarray(acc[:, 0:hs:s, 0:ws:s])
    rows = np.maximum(acc[:, 0:hs:s], acc[:, 1 : 1 + hs : s])
    for i in range(2, k):
        np.maximum(rows, acc[:, i : i + hs : s], out=rows)
    out = np.maximum(rows[:, :, 0:ws:s], rows[:, :, 1 : 1 + ws : s])
    for j in range(2, k):
        np.maximum(out, rows[:, :, j : j + ws : s], out=out)
    return out


def activate(c: CompiledLayer, acc: np.ndarray) -> np.ndarray:
    top = c.act_top
    if c.act_scale is not None:
        rows = acc.reshape(-1, c.act_scale.shape[0])
        v = np.multiply(rows, c.act_scale, dtype=np.float64)
        v += c.act_offset
        # clip then floor: the bounds are integers, so this is floor then clip; the floor
        # of values in 0..top is exact in float32. The method skips np.clip's wrapper
        # (2 us of a batch-1 layer's 10).
        v.clip(0.0, top, out=v)
        return np.floor(v, dtype=np.float32, casting="same_kind").reshape(acc.shape)
    assert c.act_int is not None
    scale, offset = c.act_int
    iv = acc.astype(np.int64) * scale + offset
    iv >>= c.layer.act_shift
    return np.clip(iv, 0, int(top)).astype(np.float32)


def events(x: np.ndarray) -> int:
    """The non-zero values of x. Floats are counted as a bool copy: np.count_nonzero on
    float32 is scalar code, 2.4x (4 K values) to 3x (400 K) slower than the copy and count."""
    return int(np.count_nonzero(x if x.dtype.kind in "biu" else x.astype(bool)))


# ---------------------------------------------------------------- learning (learning_rule.py)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def salt(winner: int, active: np.ndarray, connected: np.ndarray) -> np.uint64:
    """The rank's salt: of what the chip holds, the winner, its connections and the
    sample's spikes (wrapping sums of SplitMix64 values)."""
    with np.errstate(over="ignore"):
        parts = np.concatenate([
            mix64(np.array([winner + 1], np.uint64)),
            mix64(np.flatnonzero(active).astype(np.uint64) * np.uint64(2) + np.uint64(2)),
            mix64(np.flatnonzero(connected).astype(np.uint64) * np.uint64(2) + np.uint64(3)),
        ])  # fmt: skip
        total = parts.sum(dtype=np.uint64)
    return mix64(np.array([total], np.uint64))[0]


def priority(salted: np.uint64, index: np.ndarray) -> np.ndarray:
    """Pseudo-random uint64 rank of input `index` under `salted`."""
    return mix64((index.astype(np.uint64) * _GOLDEN) ^ salted)


def _pick(candidates: np.ndarray, count: int, salted: np.uint64, stream: int) -> np.ndarray:
    """`count` of `candidates` (input indices), those of lowest priority (ties: lower index)."""
    if count >= candidates.size:
        return candidates
    keys = priority(salted, candidates * 2 + stream)
    order = np.lexsort((candidates, keys))
    return candidates[order[:count]]


def neuron_group(params: RuleParams, units: int, label: int) -> range:
    """The neurons allowed to learn a sample of `label` (all of them when unlabelled)."""
    if params.num_classes == 0:
        return range(units)
    per = units // params.num_classes
    return range(label * per, (label + 1) * per)


def choose_winner(
    params: RuleParams, potentials: np.ndarray, connections: np.ndarray, group: range
) -> int:
    """The neuron of `group` that learns: the best-matching learned neuron if it competes
    (potential above (1 - learning_competition) * num_weights) or no neuron is fresh,
    otherwise the first fresh one (a neuron without connections)."""
    idx = np.arange(group.start, group.stop)
    learned = idx[connections[idx] > 0]
    fresh = idx[connections[idx] == 0]
    if learned.size:
        best = int(learned[int(np.argmax(potentials[learned]))])
        if fresh.size == 0 or potentials[best] > params.competition_bar:
            return best
    return int(fresh[0])


def decay(params: RuleParams, swaps: int) -> int:
    """Plasticity after one learning step, in whole weights: down by the step, to the
    floor (up to it when below, as BrainChip's rule)."""
    return max(swaps - params.decay_swaps, params.min_swaps)


def learn(
    params: RuleParams,
    weights: np.ndarray,
    swaps: np.ndarray,
    spikes: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """Learn from `spikes` in order, updating `weights` and `swaps` in place.

    Args:
        params: the parameters in whole weights.
        weights: (K, U) binary uint8 weights of the learning layer (K inputs, U neurons).
        swaps: int32 per neuron, the connections it may still move.
        spikes: (N, K) binary inputs of the learning layer.
        labels: N labels (int64), NO_LABEL in unlabelled mode.

    Returns:
        (N, U) int64 potentials of each sample, computed before it was learned.
    """
    n = spikes.shape[0]
    units = weights.shape[1]
    out = np.zeros((n, units), np.int64)
    active_all = spikes.astype(bool)
    for i in range(n):
        active = active_all[i]
        pot = weights[active].sum(axis=0, dtype=np.int64)
        out[i] = pot
        connections = weights.sum(axis=0, dtype=np.int64)
        group = neuron_group(params, units, int(labels[i]))
        winner = choose_winner(params, pot, connections, group)
        col = weights[:, winner].astype(bool)
        budget = int(swaps[winner])
        adds = np.flatnonzero(active & ~col)
        drops = np.flatnonzero(col & ~active)
        free = params.num_weights - int(connections[winner])
        moves = min(budget, adds.size)
        fill = min(moves, max(free, 0))
        nswaps = min(moves - fill, drops.size)
        salted = salt(winner, active, col)
        if fill + nswaps:
            weights[_pick(adds, fill + nswaps, salted, 0), winner] = 1
            weights[_pick(drops, nswaps, salted, 1), winner] = 0
        swaps[winner] = decay(params, int(swaps[winner]))
    return out
