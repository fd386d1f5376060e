"""The host-side fields of an AKD1000 program's ProgramInfo computed from its v1 layers
and their placement: what akida's engine reads to feed inputs and read outputs.

`program_info_for` gives every field but the track tables (passes, learning layer,
dummy header), which program_data.layout fills as it lays out the program data.
Measured against BrainChip's compiler on every program (docs/program-binary.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from akida_rt.akd1000.decode import V1Layer, output_shape
from akida_rt.akd1000.np_placement import Placement
from akida_rt.akd1000.program_info import ENGINE_VERSION, NSOC_V2, IoType, ProgramInfo
from akida_rt.errors import ModelError

POTENTIAL_BITS = 32  # output_bits when the last layer sends potentials
EPG_DENSE_INPUT = 0x1000  # EPG register 0 bit 12: inputs come through the HRC DMA
EPG_FNP_INPUT = 0x2  # EPG register 0 bit 1: input events go to an FNP as FNP events
EPG_INPUT_COLS = 16  # the EPG register holding the first NP layer's columns
EPG_WRITES = (  # (register offset, value) of the EPG, the input columns filled in
    (0, 0x20200), (12, 0x10), (EPG_INPUT_COLS, 0x1), (20, 0x100), (24, 0x1FE0001),
    (28, 0x27FFFFF),
)  # fmt: skip
SETUP_RECORDS = 1  # the HRC setup record every program starts with
LEARN_DESCRIPTORS = 2  # learning (or inference) registers and the learning SRAM
SPARE_DESCRIPTORS = 1  # max_num_desc counts one descriptor more than the tracks


def program_info_for(
    layers: Sequence[V1Layer],
    placement: Placement,
    learning: bool = False,
    tracks: int | None = None,
    after_cnp: bool = False,
) -> ProgramInfo:
    """The ProgramInfo of one hardware sequence: `layers` (input layer first, as
    decode_mesh gives them) placed as `placement` says; `learning`: its last layer learns
    (it leaves the passes for the ProgramInfo's learning layer); `tracks`: the config
    tracks of its passes (default one per record: a layer whose packets pass
    packet_plan.MAX_TRACK_WORDS has several); `after_cnp`: the sequence takes the
    output of a convolution run before it (in software or another program)."""
    first, last = layers[0], layers[-1]
    placed = sorted(placement)
    nps = [i for i in placed if layers[i].kind != "InputConvolutional"]
    dense = first.kind == "InputConvolutional" and 0 in placement
    # events in are CNP events, even to a first FullyConnected, unless it takes one
    # position (1, 1, c) of the model's input or of an input convolution run in software:
    # then FNP events (akida 2.19.3: (1, 1, 3), (1, 1, 8192) and after a global-average
    # InputConvolutional gave FNP_SPARSE; (1, 4, 64), (4, 1, 64), (2, 2, 1) and a (1, 1, c)
    # FullyConnected after a convolution in software CNP_SPARSE)
    head = layers[nps[0]] if nps else first
    fnp_in = (
        not after_cnp
        and not dense
        and head.kind == "FullyConnected"
        and tuple(head.input_shape[:2]) == (1, 1)
    )
    in_type = IoType.DENSE if dense else IoType.FNP_SPARSE if fnp_in else IoType.CNP_SPARSE
    out_type = {"InputConvolutional": IoType.HRC_SPARSE, "FullyConnected": IoType.FNP_SPARSE}
    window = dense_window(first) if dense else (0, 0)
    shift: tuple[int, ...] = ()
    scales: tuple[float, ...] = ()
    if not last.activation:
        missing = {"threshold", "act_step"} - set(last.variables)
        if missing:
            raise ModelError(
                f"last layer {len(layers) - 1} ({last.kind}) sends potentials but has no "
                f"{' or '.join(sorted(missing))}: give the output_shift (threshold) and "
                "1 / output_scales (act_step) the program dequantizes with"
            )
        shift = tuple(int(v) for v in np.asarray(last.variables["threshold"]).ravel())
        step = np.asarray(last.variables["act_step"], np.float64).ravel()
        scales = tuple(float(v) for v in (1.0 / step).astype(np.float32))
    if tracks is None:
        tracks = SETUP_RECORDS + len(placed) - (1 if learning else 0)
    descriptors = tracks + (LEARN_DESCRIPTORS if learning else 0) + SPARE_DESCRIPTORS
    return ProgramInfo(
        version=ENGINE_VERSION,
        device_version=NSOC_V2,
        input_dims=tuple(first.input_shape),
        output_dims=output_shape(last),
        input_type=in_type,
        output_type=out_type.get(last.kind, IoType.CNP_SPARSE),
        output_bits=last.act_bits if last.activation else POTENTIAL_BITS,
        activation=last.activation,
        dense_window_w=window[1],
        dense_window_h=window[0],
        output_shift=shift,
        output_scales=scales,
        max_num_desc=descriptors,
        epg_writes=epg_writes([placement[i] for i in nps][:1], dense, fnp_in),
        passes=None,
        learning_layer=None,
        dummy_header=None,
        input_bits=first.input_bits,
        input_sign=False,
        input_channels_first=False,
        input_scales=(),
        input_zero_points=(),
    )


def dense_window(layer: V1Layer) -> tuple[int, int]:
    """The input rows and columns the HRC reads: all of them, but with valid padding
    only up to the last convolution window (pooling does not narrow it)."""
    if layer.padding != "valid":
        return layer.input_shape[0], layer.input_shape[1]
    k, s = layer.kernel, layer.stride
    return tuple((((n - k) // s) * s + k) for n in layer.input_shape[:2])  # type: ignore[return-value]


def epg_writes(
    first_np_layer: list, dense: bool, fnp_in: bool = False
) -> tuple[tuple[int, int], ...] | None:
    """The EPG register writes: none in an HRC-only program; else the constant set with
    the dense-input or FNP-input flag and the columns of the first NP layer
    (`first_np_layer`: its NpSlots, in a one-element list)."""
    if not first_np_layer:
        return None
    cols = [slot.col for slot in first_np_layer[0]]
    out = []
    for offset, value in EPG_WRITES:
        if offset == 0:
            value |= (EPG_DENSE_INPUT if dense else 0) | (EPG_FNP_INPUT if fnp_in else 0)
        elif offset == EPG_INPUT_COLS:
            value |= max(cols) << 24 | min(cols) << 16
        out.append((offset, value))
    return tuple(out)
