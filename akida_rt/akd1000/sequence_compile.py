"""akida_rt's own AKD1000 compiler for one hardware sequence: v1 layers and their
placement to the program binary BrainChip's compiler writes, byte for byte.

`compile_sequence` ties the levels together: the ProgramInfo's host-side fields
(program_info_compile), every NP's registers and memories (np_compile), the learning
NP's learning-mode registers (np_learning), and the packets in BrainChip's order
(packet_plan); np_state.ProgramState lays out the program data and the flatbuffer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from akida_rt.akd1000 import packet_plan
from akida_rt.akd1000.decode import V1Layer
from akida_rt.akd1000.np_compile import np_state_for
from akida_rt.akd1000.np_learning import learning_mesh
from akida_rt.akd1000.np_placement import Placement
from akida_rt.akd1000.np_state import LearnPlan, MeshState, ProgramState, RecordPlan
from akida_rt.akd1000.packets import PacketType
from akida_rt.akd1000.program_info import NpIdent
from akida_rt.akd1000.program_info_compile import program_info_for
from akida_rt.errors import MappingError

log = logging.getLogger(__name__)
HRC_INPUT_BITS = 8  # the HRC reads 8-bit dense inputs


def compile_sequence(
    layers: Sequence[V1Layer],
    placement: Placement,
    learning: dict[str, Any] | None = None,
    after_cnp: bool = False,
) -> bytes:
    """The program binary of one hardware sequence: `layers` (input layer first, as
    decode_mesh gives them) placed as `placement` says (layer index -> NpSlots).
    `learning` (np_learning.learning_for) makes the last layer, a FullyConnected on one
    FNP3, learn: it leaves the passes for the ProgramInfo's learning layer.
    `after_cnp`: the sequence takes the output of a convolution run before it."""
    mesh = np_state_for(layers, placement, learning)
    passes = dict(placement)
    learn, learn_mesh = None, MeshState()
    if learning is not None:
        index = max(placement)
        slots = passes.pop(index)
        if layers[index].kind != "FullyConnected" or len(slots) != 1 or slots[0].fnp2:
            raise MappingError(
                f"learning layer {index} ({layers[index].kind}) on {len(slots)} NPs: learning "
                "needs the last layer a FullyConnected on one FNP3; map it so"
            )
        ident = slots[0].ident
        learn_mesh = learning_mesh(mesh, ident, learning)
        learn = _learn_plan(mesh, ident)
    plan = packet_plan.program_plan(mesh, passes, learn)
    tracks = sum(len(r.tracks) for records in plan.passes for r in records)
    info = program_info_for(layers, placement, learning is not None, tracks, after_cnp)
    log.debug("sequence of %d layers on %d NPs compiled", len(layers), len(mesh.nps))
    return ProgramState(info, mesh, plan, learn_mesh).to_bytes()


def sequence_layers(layers: Sequence[V1Layer], input_bits: int) -> list[V1Layer]:
    """The layers compile_sequence takes for one hardware sequence of a model: `layers`
    (the sequence's own, as tools.metatf.describe gives them: no InputData, input_bits
    unset) with each layer's input bits set from the layer before, and an InputData in
    front unless an InputConvolutional starts the sequence. `input_bits`: the bits of
    the sequence's inputs (the model's InputData, or the act_bits of the layer before)."""
    out: list[V1Layer] = []
    bits = input_bits
    for layer in layers:
        if not out and layer.kind != "InputConvolutional":
            out.append(V1Layer("InputData", layer.input_shape, input_bits=bits))
        if layer.kind == "InputConvolutional":
            bits = HRC_INPUT_BITS
        out.append(dataclasses.replace(layer, input_bits=bits))
        bits = layer.act_bits
    return out


def _learn_plan(mesh: MeshState, ident: tuple[int, int, int]) -> LearnPlan:
    """The learning layer's tracks: its registers (learning-mode or inference words, one
    packet each) and its weight SRAM, a record of its own."""
    registers, *memory = packet_plan.np_slots(mesh.nps[ident])
    weights = tuple(s for s in memory if s.type_id == PacketType.FNP_WEIGHTS)
    words = sum(s.words for s in weights)
    return LearnPlan(NpIdent(*ident), (registers,), (registers,), RecordPlan((weights,)), words)
