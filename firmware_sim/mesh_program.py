"""The program the simulated AKD1000's mesh holds: v1 layers reassembled from NP state.

`assemble` turns the NP memories the config DMA filled into akida_rt layers with the
decoder (akida_rt.akd1000) and compiles them for akida_rt's integer engine, so the chip
computes exactly what the software backend computes. A MeshProgram also turns one
inference's event counts into clock phases (clock_model.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from akida_rt.firmware_sim.clock_model import ClockModel, Phase
from akida_rt.firmware_sim.learning_state import learning_state

from akida_rt.akd1000 import decode, weight_maps
from akida_rt.akd1000 import np_registers as regs
from akida_rt.akd1000.np_state import MeshState, NpState
from akida_rt.akd1000.packets import PacketType
from akida_rt.engine.integer import Engine
from akida_rt.errors import AkidaError
from akida_rt.format import v1_layers
from akida_rt.format.layers import Layer

log = logging.getLogger(__name__)

FNP2_NODE = (4, 1)
MAX_CHANNELS = 2048  # an event's feature field holds 11 bits


class ProgramError(Exception):
    """The mesh holds nothing the chip can run (the reason names what is missing)."""


@dataclass
class Work:
    """What one inference cost: clocks, SynOps and the phases of the frame."""

    clk: int
    synops: int
    phases: list[Phase] = field(default_factory=list)


@dataclass
class MeshProgram:
    """Layers on the mesh and how their inputs and outputs travel.

    Attributes:
        layers: the v1 layers, input layer first.
        input_kind: "dense" (HRC DMA), "cnp" or "fnp" (event DMA).
        output_kind: "cnp", "fnp" or "hrc" (the event format of the last layer).
        np_counts: layer name -> (NP type, NP count) for the clock model.
        learning: the learning state when the last layer learns (learning_unit), else None.
    """

    layers: list[Layer]
    input_kind: str
    output_kind: str
    np_counts: dict[str, tuple[str, int]]
    clocks: ClockModel
    learning: Any = None
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.engine = Engine(self.layers)
        except AkidaError as exc:
            raise ProgramError(f"the decoded layers do not compile: {exc}") from None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        shape = self.layers[0].input_shape
        assert shape is not None
        return shape

    @property
    def activation(self) -> bool:
        return bool(self.layers[-1].activation)

    def run(self, x: np.ndarray, stop: int | None = None) -> tuple[np.ndarray, Work]:
        """Outputs of one frame (1, h, w, c) and the work it took."""
        self.engine.reset_stats()
        y = self.engine.run(x, stop=stop)
        return y, self.work(x)

    def work(self, x: np.ndarray) -> Work:
        """Clock phases of the frame just run (engine stats since the last reset)."""
        c = self.clocks
        phases = [c.overhead_phase(), c.dma_phase("input", x[0].size)]
        synops = 0
        for comp, stats in zip(self.engine.compiled, self.engine.stats(), strict=True):
            placed = self.np_counts.get(comp.layer.name)
            if placed is None or stats.frames == 0:
                continue
            np_type, count = placed
            synops += stats.synops
            phases.append(
                c.layer_phase(
                    comp.layer.name, np_type == "HRC", count, stats.input_events, stats.synops
                )
            )
        out_events = self.engine.stats()[-1].output_events if self.engine.compiled else 0
        phases.append(c.dma_phase("output", 8 * out_events))
        return Work(math.ceil(sum(p.clk for p in phases)), synops, phases)


def assemble(
    state: MeshState,
    clocks: ClockModel,
    image: tuple[int, int] | None = None,
    read_fnp2: Callable[[int, int], np.ndarray] | None = None,
) -> MeshProgram:
    """The program NP state holds, decoded by akida_rt.akd1000.decode.

    Args:
        state: the NP registers and memories the config DMA wrote.
        clocks: the chip's clock model.
        image: (rows, row bytes) of the dense image the HRC descriptor sends (the HRC's
            registers do not hold the image size; a window is the image a valid
            convolution sees).
        read_fnp2: (FNP2 NP id, words) -> its weight words in DDR (they stay there).

    Raises:
        ProgramError: nothing is programmed, or the NP state does not decode.
    """
    nps = [s for s in state.nps.values() if not s.is_hrc and s.registers.any()]
    hrc = state.hrc if state.hrc is not None and state.hrc.hrc_banks else None
    if hrc is None and not nps:
        raise ProgramError("nothing is programmed (no NP was configured)")
    if read_fnp2 is not None:
        for s in nps:
            if s.ident[:2] == FNP2_NODE and regs.KIND.get(_regs(s)) == regs.FNP_KIND:
                state.set_fnp2_weights(s.ident, read_fnp2(s.ident[2], fnp2_words(s)))
    try:
        io, input_kind = _io(hrc, nps, image)
        decoded = decode.decode_mesh(state, io)
        layers = v1_layers.layers_of(decoded)
    except (AkidaError, ValueError, IndexError, KeyError) as exc:
        raise ProgramError(f"the NP state does not decode: {exc}") from None
    last = decoded.layers[-1]
    output_kind = {"FullyConnected": "fnp", "InputConvolutional": "hrc"}.get(last.kind, "cnp")
    counts = {
        layer.name: ("HRC" if v.kind == "InputConvolutional" else "NP", len(v.nps))
        for layer, v in zip(layers, decoded.layers, strict=True)
        if v.nps
    }
    learning = None
    if decoded.learning is not None and last.kind == "FullyConnected":
        learning = learning_state(state, last, decoded.learning)
    return MeshProgram(layers, input_kind, output_kind, counts, clocks, learning)


def _regs(s: NpState) -> list[int]:
    """An NP's register words as the register tables read them."""
    return [int(v) for v in s.registers]


def _io(
    hrc: NpState | None, nps: list[NpState], image: tuple[int, int] | None
) -> tuple[decode.IoInfo, str]:
    """What the host's ProgramInfo would say about the input, from the NPs alone."""
    if hrc is not None:
        c = regs.HRC["INPUT_CHANNELS"].get(_regs(hrc))
        if image is None:
            raise ProgramError("the HRC is programmed: images come through the HRC DMA")
        rows, row_bytes = image
        if not c or row_bytes % c:
            raise ProgramError(f"HRC rows of {row_bytes} bytes do not hold {c}-channel pixels")
        return decode.IoInfo((rows, row_bytes // c, c), 8, dense_input=True), "dense"
    first = min(nps, key=lambda s: regs.CNP["LAYER"].get(_regs(s)))
    if regs.KIND.get(_regs(first)) == regs.CNP_KIND:
        r = regs.read(regs.CNP, _regs(first))
        layer = [s for s in nps if regs.CNP["LAYER"].get(_regs(s)) == r["LAYER"]]
        shape = (_cnp_input_x(layer), r["INPUT_Y"], _cnp_channels(first, r))
        return decode.IoInfo(shape, r["INPUT_BITS"]), "cnp"
    r = regs.read(regs.FNP, _regs(first))
    shape = (r["INPUT_X"], r["INPUT_Y"], _fnp_channels(first, r))
    # The host sends a non-flat input to an FNP as CNP events (x, y, feature), unless
    # its channels overflow the 11-bit feature field (then column-major FNP indices).
    flat = shape[:2] == (1, 1) or shape[2] > MAX_CHANNELS
    return decode.IoInfo(shape, r["INPUT_BITS"]), "fnp" if flat else "cnp"


def _cnp_input_x(layer: list[NpState]) -> int:
    """Input columns of a first CNP layer: on wide inputs each NP holds a stripe of them
    (its INPUT_X columns from STRIPE_START + STRIPE_HALO), so the last stripe's end."""
    ends = []
    for s in layer:
        r = regs.read(regs.CNP, _regs(s))
        ends.append(r["STRIPE_START"] + r["STRIPE_HALO"] + r["INPUT_X"])
    return max(ends)


def _cnp_channels(s: NpState, r: dict[str, int]) -> int:
    """Input channels of a first CNP, which its registers do not hold: a separable one's
    from its pointwise memory (exact); a convolution's, the largest count whose weight
    layout takes the filter memory the NP was sent."""
    size = s.memory(PacketType.CNP_FILTER, 0).size
    n = regs.CNP["NP_FILTERS"].get(_regs(s))
    if r["SEPARABLE"]:
        # pointwise weights: 2 words per payload half, ceil(n / per half) halves a channel
        second = [a for a in s.starts(PacketType.CNP_FILTER) if a > 0]
        halves = -(-n // (weight_maps.HALF // max(r["PW_WEIGHT_BITS"], 1)))
        if second and halves:
            pw = s.memory(PacketType.CNP_FILTER, second[0]).size
            if pw % (2 * halves) == 0:
                return pw // (2 * halves)
    one_bit = regs.CNP["FILTERS_1BIT"].get(_regs(s))
    wb = 4 if r["CONV_WEIGHTS_4BIT"] else 1 if one_bit else 2
    found = 0
    for c in range(1, MAX_CHANNELS + 1):
        if r["SEPARABLE"]:
            words = weight_maps.depthwise(r["KERNEL"], c, r["DW_WEIGHT_BITS"]).words
        else:
            words = weight_maps.conv(r["KERNEL"], c, n, wb, r["CHANNEL_BLOCKS"]).words
        if words > size:
            break
        if words == size:
            found = c
    if not found:
        raise ProgramError(f"NP {s.ident}: its {size} filter words fit no input channel count")
    return found


FNP_CHUNKS_WORD = 14  # FNP register: low 16 bits, the inputs in 32-input chunks


def _fnp_chunks(s: NpState) -> int:
    return int(s.registers[FNP_CHUNKS_WORD]) & 0xFFFF


def _fnp_channels(s: NpState, r: dict[str, int]) -> int:
    """Input channels of a first FNP, which its registers do not hold: as many as its
    32-input chunks take. Events index inputs column-major, so channels past the real
    ones only add zero weights that no event reaches: the outputs are the same."""
    return max(1, 32 * _fnp_chunks(s) // max(1, r["INPUT_X"] * r["INPUT_Y"]))


def fnp2_words(s: NpState) -> int:
    """Words of an FNP2's weights in DDR: per neuron 4 metadata words and its planes."""
    r = regs.read(regs.FNP, _regs(s))
    planes = 6 if r["WEIGHTS_4BIT"] else 2 if r["WEIGHTS_MULTIBIT"] else 1
    return r["UNITS"] * (weight_maps.FNP_META_WORDS + _fnp_chunks(s) * planes)
