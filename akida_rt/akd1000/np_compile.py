"""The NP state of an AKD1000 program computed from v1 layers and a placement: every
register word and memory BrainChip's compiler writes to the HRC, CNPs and FNPs.

`np_state_for(layers, placement)` is decode.decode_mesh backwards: the register fields
(np_registers, encode side), weight layouts (weight_maps + sram_layout.scatter) and the
words measured for it (docs/program-binary.md, "Derived words").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from akida_rt.akd1000 import np_registers as regs
from akida_rt.akd1000 import sram_layout, weight_maps
from akida_rt.akd1000.decode import STEP_SCALE, THRESHOLD_BITS, V1Layer
from akida_rt.akd1000.np_placement import NpSlot, Placement
from akida_rt.akd1000.np_state import MeshState, NpState
from akida_rt.akd1000.packets import PacketType

HRC_THRESHOLD_BITS = 24  # HRC thresholds are sign-extended to 24 bits
HRC_SRAM_START = 40  # HRC SRAM packets start at word 40 of a bank
PW_START_UNIT = 16  # separable pointwise weights start on a 16-word boundary
NO_ACTIVATION_THRESHOLD = -(1 << (THRESHOLD_BITS - 1))
FNP_NO_ACTIVATION = 1 << (THRESHOLD_BITS - 1)  # FNP metadata w0 without activation
HRC_WORD4, HRC_WORD4_IDLE = 0x10, 0x1  # HRC word 4 with an InputConvolutional / without
HRC_TO_HOST = 0x100  # HRC word 4 bit 8: the HRC is the program's last layer
LARGE_INPUT_WORDS = 5376  # word 1 bit 22 is set on CNPs with more input words
HRC_VALID_BITS = (13, 20, 21)  # HRC word 8 bits set with valid padding
Cols = tuple[int, int]


def np_state_for(
    layers: Sequence[V1Layer], placement: Placement, learning: dict[str, Any] | None = None
) -> MeshState:
    """The NP state of one program: `layers` (input layer first: InputData or
    InputConvolutional, as decode_mesh gives them) placed as `placement` says (layer
    index -> NpSlots); `learning` is DecodedProgram.learning for a learning FNP3."""
    state = MeshState()
    first = layers[0]
    hrc = NpState((0, 0, -1))
    if first.kind == "InputConvolutional":
        _hrc(hrc, first, last=len(layers) == 1)
    else:
        hrc.registers[4] = HRC_WORD4_IDLE
    state.nps[hrc.ident] = hrc
    hw = [i for i in range(len(layers)) if placement.get(i)]
    for pos, index in enumerate(hw):
        layer, slots = layers[index], placement[index]
        if layer.kind == "InputConvolutional":
            continue
        route = _route(layers, placement, hw, pos)
        for slot in slots:
            s = NpState(slot.ident)
            if layer.kind == "FullyConnected":
                _fnp(s, layer, index, slot, len(slots), learning)
            else:
                _cnp(s, layer, index, slot, len(slots))
            _put_route(s.registers, *route)
            state.nps[slot.ident] = s
    return state


def _cols(slots: Sequence[NpSlot]) -> Cols:
    cols = [s.col for s in slots]
    return min(cols), max(cols)


def _route(layers: Sequence[V1Layer], placement: Placement, hw: list[int], pos: int) -> tuple:
    """(next layer index or ROUTE_OUT, source cols, own cols, destination cols)."""
    index = hw[pos]
    own = _cols(placement[index])
    if pos == 0:
        src = regs.DMA_COLS
    elif layers[hw[pos - 1]].kind == "InputConvolutional":
        src = regs.HRC_COLS
    else:
        src = _cols(placement[hw[pos - 1]])
    if pos + 1 < len(hw):
        return hw[pos + 1], src, own, _cols(placement[hw[pos + 1]])
    return regs.ROUTE_OUT, src, own, regs.HOST_COLS


def _put_route(r: np.ndarray, nxt: int, src: Cols, own: Cols, dest: Cols) -> None:
    f = regs.ROUTE
    last = nxt == regs.ROUTE_OUT
    span = regs.DMA_COLS if last else dest  # events leave through column 3
    r[44] = regs.LAST_LAYER_WORD44 if last else regs.INNER_LAYER_WORD44
    f["NEXT_LAYER"].put(r, nxt)
    f["TO_HOST"].put(r, 0x10 if last else 0)
    f["DEST_COL_LO"].put(r, dest[0])
    f["DEST_COL_HI"].put(r, dest[1])
    f["SRC_COL_LO"].put(r, src[0])
    f["SRC_COL_HI"].put(r, src[1])
    f["SPAN_COL_LO"].put(r, min(own[0], span[0]))
    f["SPAN_COL_HI"].put(r, max(own[1], span[1]))


def _fields(r: np.ndarray, table: dict[str, regs.RegField], **values: int) -> None:
    for name, v in values.items():
        table[name].put(r, int(v))


def _threshold_words(layer: V1Layer, lo: int, n: int, bits: int = THRESHOLD_BITS) -> np.ndarray:
    """Threshold SRAM of filters lo..lo+n: (threshold, act_step x 16) pairs; thresholds
    are `bits`-bit two's complement (20 on NPs, 24 on the HRC)."""
    words = np.zeros((n, 2), np.uint32)
    if layer.activation:
        th = np.asarray(layer.variables["threshold"], np.int64).ravel()[lo : lo + n]
        st = np.asarray(layer.variables["act_step"], np.float64).ravel()[lo : lo + n]
        words[:, 0] = th & ((1 << bits) - 1)
        words[:, 1] = np.floor(st * STEP_SCALE).astype(np.int64)
    else:  # potentials out: the lowest threshold; the act_step stays (1.0 when unknown)
        words[:, 0] = NO_ACTIVATION_THRESHOLD & ((1 << bits) - 1)
        st = np.asarray(layer.variables.get("act_step", np.ones(lo + n)), np.float64)
        words[:, 1] = np.floor(st.ravel()[lo : lo + n] * STEP_SCALE).astype(np.int64)
    return words.ravel()


def _halo(layer: V1Layer) -> int:
    return (layer.kernel - 1) // 2


def _conv_out(n: int, layer: V1Layer) -> int:
    n = -(-n // layer.stride)
    return -(-n // layer.pool_stride) if layer.pool == "max" else n


def _pool_pad(n: int, layer: V1Layer) -> int:
    """Max pooling's "same" padding over `n` inputs' convolution outputs: the columns the
    last pooling window hangs over the edge."""
    if layer.pool != "max":
        return 0
    conv, size, stride = -(-n // layer.stride), layer.pool_size, layer.pool_stride
    return max((-(-conv // stride) - 1) * stride + size - conv, 0)


def _cut(part: tuple[int, int] | None, n: int, layer: V1Layer) -> tuple[int, int, int, int]:
    """(first position, positions, halo before, halo after) of an NP's stripe (or band)
    of an input dimension of `n` positions; the whole dimension when `part` is None."""
    if part is None:
        return 0, n, 0, 0
    start, size = part
    return start, size, min(start, _halo(layer)), _halo(layer) if start + size < n else 0


def _cnp(s: NpState, layer: V1Layer, index: int, slot: NpSlot, n_nps: int) -> None:
    r = s.registers
    x, y, c = layer.input_shape
    k, wb, n, sep = layer.kernel, layer.weights_bits, slot.filters, layer.kind.startswith("Sep")
    x0, w, before, after = _cut(slot.stripe, x, layer)
    y0, h, above, below = _cut(slot.rows, y, layer)
    rows = above + h + below
    row_bytes = math.ceil((before + w + after) * layer.input_bits / 8)
    row_words = math.ceil(row_bytes * c / 4)
    for word, value in regs.NP_CONSTANTS.items():
        r[word] = value
    regs.KIND.put(r, regs.CNP_KIND)
    regs.CNP["LARGE_INPUT"].put(r, row_words * rows > LARGE_INPUT_WORDS)
    pool_size, pool_stride = (layer.pool_size, layer.pool_stride) if layer.pool == "max" else (1, 1)
    _fields(
        r, regs.CNP, LAYER=index, LAYER_NPS=n_nps, ACTIVATION=layer.activation,
        ACT_BITS=layer.act_bits or 1, INPUT_BITS=layer.input_bits,
        INPUT_X=w, INPUT_Y=h, STRIPE_HALO=before, STRIPE_START=x0 - before, ROW_HALO=above,
        ROW_START=y0 - above, INPUT_X_2=before + w + after, INPUT_Y_2=rows,
        ROW_X=-(-w // 4) * 4, ROW_BYTES=row_bytes,
        ROW_WORDS=row_words, INPUT_WORDS=row_words * rows, INPUT_WORDS_ON=1,
        STRIDE_ODD_X=layer.stride == 2 and x % 2, STRIDE_ODD_Y=layer.stride == 2 and y % 2,
        KERNEL=k, STRIDE=layer.stride, NP_FILTERS=n, FIRST_FILTER=slot.first_filter,
        OUTPUT_X=_conv_out(w, layer), OUTPUT_Y=_conv_out(h, layer),
        OUTPUT_START=x0 // layer.stride // pool_stride,
        OUTPUT_START_Y=y0 // layer.stride // pool_stride, POOL_SIZE=pool_size,
        POOL_STRIDE=pool_stride, GLOBAL_AVG=layer.pool == "average",
        FILTER_GROUPS=-(-n // 8),
        POOL_PAD_X=_pool_pad(w, layer), POOL_PAD_Y=_pool_pad(h, layer),
    )  # fmt: skip
    lo, hi = slot.first_filter, slot.first_filter + n
    if sep:
        dw = weight_maps.depthwise(k, c, wb)
        halves = pointwise_halves(n, wb)
        start = -(-dw.words // PW_START_UNIT)
        _fields(r, regs.CNP, SEPARABLE=1, DW_WEIGHT_BITS=wb, PW_WEIGHT_BITS=wb,
                SEPARABLE_MODE=halves, PW_START=start * 8)  # fmt: skip
        s.memories[(PacketType.CNP_FILTER, 0)] = sram_layout.scatter(layer.variables["weights"], dw)
        pw = weight_maps.pointwise(c, n, wb, halves)
        pw_w = np.asarray(layer.variables["weights_pw"])[..., lo:hi]
        s.memories[(PacketType.CNP_FILTER, start)] = sram_layout.scatter(pw_w, pw)
    else:
        blocks = weight_maps.conv_channel_blocks(k, c, n, wb)
        _fields(r, regs.CNP, CONV_WEIGHTS_4BIT=wb == 4, CHANNEL_BLOCKS=blocks)
        if k == 1:
            regs.CNP["K1_FILTERS"].put(r, n)
        else:
            regs.CNP["FILTERS_1BIT" if wb == 1 else "FILTERS_NBIT"].put(r, n)
        layout = weight_maps.conv(k, c, n, wb, blocks)
        kernel = np.asarray(layer.variables["weights"])[..., lo:hi]
        s.memories[(PacketType.CNP_FILTER, 0)] = sram_layout.scatter(kernel, layout)
    s.memories[(PacketType.CNP_THRESHOLD, 0)] = _threshold_words(layer, lo, n)


def pointwise_halves(n: int, wb: int) -> int:
    """Payload halves per input channel a separable NP's pointwise weights get (its
    SEPARABLE_MODE): whole groups of 8 filters packed 48 / wb to a half, and one more
    half for a last, partial group (the filters stay packed from half 0)."""
    per_half = weight_maps.PW_HALF_BITS // wb
    return -(-(n // 8 * 8) // per_half) + (n % 8 > 0)


def _fnp(s: NpState, layer: V1Layer, index: int, slot: NpSlot, n_nps: int,
         learning: dict[str, Any] | None) -> None:  # fmt: skip
    r = s.registers
    x, y, c = layer.input_shape
    inputs, wb, n = x * y * c, layer.weights_bits, slot.filters
    for word, value in regs.NP_CONSTANTS.items():
        r[word] = value
    r[1] = regs.FNP2_WORD1 if slot.fnp2 else regs.FNP3_WORD1
    if slot.fnp2:
        r[49] = regs.FNP2_WORD49
    per = weight_maps.fnp_neuron_words(inputs, wb)
    act = layer.activation
    _fields(
        r, regs.FNP, LAYER=index, LAYER_NPS=n_nps, ACTIVATION=act,
        ACT_BITS=layer.act_bits, WEIGHTS_MULTIBIT=wb > 1, WEIGHTS_4BIT=wb == 4,
        INPUT_BITS=layer.input_bits, INPUT_X=x, INPUT_Y=y, INPUT_PIXELS=x * y,
        INPUT_CHUNKS=-(-inputs // 32), INPUT_CHUNKS_ON=1, UNITS=n, ACTIVATION_2=act,
        WEIGHT_WORDS=0 if slot.fnp2 else n * per, WEIGHTS_IN_NP=not slot.fnp2,
    )  # fmt: skip
    lo, hi = slot.first_filter, slot.first_filter + n
    words = np.zeros(n * per, np.uint32)
    meta = words.reshape(n, per) if n else np.zeros((0, per), np.uint32)
    pairs = _threshold_words(layer, lo, n).reshape(n, 2)
    meta[:, 0] = pairs[:, 0] if act else FNP_NO_ACTIVATION
    meta[:, 1] = pairs[:, 1] if act else 0
    if learning is not None:
        classes = np.asarray(learning["classes"], np.int64)[lo:hi]
        meta[:, 1] |= ((classes + 1) << 20).astype(np.uint32)
        meta[:, 2] = learning["num_weights"]
        tl = np.asarray(layer.variables["threshold_learning"], np.int64)[lo:hi]
        sw = np.asarray(layer.variables["thswap"], np.int64)[lo:hi]
        meta[:, 3] = (tl << 16 | sw).astype(np.uint32)
    kernel = np.asarray(layer.variables["weights"])[..., lo:hi]
    words = sram_layout.scatter(kernel, weight_maps.fnp(inputs, n, wb), words)
    s.memories[(PacketType.FNP_WEIGHTS, 0)] = words


def _hrc(s: NpState, layer: V1Layer, last: bool) -> None:
    r = s.registers
    x, y, c = layer.input_shape
    k, nf = layer.kernel, layer.filters
    r[4] = HRC_WORD4 | (HRC_TO_HOST if last else 0)
    valid = layer.padding == "valid"
    _fields(
        r, regs.HRC, INPUT_CHANNELS=c, ACT_BITS=layer.act_bits if layer.activation else 1,
        KERNEL=k, ONE_CHANNEL=c == 1, POOL=3 if layer.pool == "max" else 0, VALID=valid,
        STRIDE_X=layer.stride, STRIDE_Y=layer.stride, FILTERS=nf,
        SRAM_SELECT=regs.HRC_THRESHOLD_BANK,
    )  # fmt: skip
    if valid:
        for bit in HRC_VALID_BITS:
            r[8] |= np.uint32(1 << bit)
    r[10] = layer.padding_value * 0x010101
    if not valid:
        r[11] = _same_pads(y, layer) << 8 | _same_pads(x, layer)
    bank, offset = weight_maps.hrc(k, c, nf)
    w = np.asarray(layer.variables["weights"], np.int64) & 0xFF
    slots = weight_maps.hrc_slots(k, c)
    for b in range(weight_maps.hrc_banks(k, c)):
        data = np.zeros(nf * slots * 12, np.uint8)
        sel = bank == b
        data[offset[sel]] = w[sel]
        words = np.frombuffer(data.tobytes(), "<u4").astype(np.uint32)
        s.hrc_banks[1 << b] = np.concatenate([np.zeros(HRC_SRAM_START, np.uint32), words])
    th = _threshold_words(layer, 0, nf, HRC_THRESHOLD_BITS)
    s.hrc_banks[regs.HRC_THRESHOLD_BANK] = np.concatenate([np.zeros(HRC_SRAM_START, np.uint32), th])


def _same_pads(n: int, layer: V1Layer) -> int:
    """Padding before (bits 3-0) and after (bits 7-4) a dimension of `n`, "same"."""
    out = -(-n // layer.stride)
    total = max((out - 1) * layer.stride + layer.kernel - n, 0)
    return (total - total // 2) << 4 | total // 2
