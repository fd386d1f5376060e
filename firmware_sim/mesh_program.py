"""The program the simulated AKD1000's mesh holds: v1 layers reassembled from NP state.

`assemble` turns the NP memories the config DMA filled into akida_rt layers with the
decoder (akida_rt.akd1000) and compiles them for akida_rt's integer engine, so the chip
computes exactly what the software backend computes. A MeshProgram also turns one
inference's event counts into clock phases (clock_model.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from akida_rt.firmware_sim.clock_model import ClockModel, Phase

from akida_rt.engine.integer import Engine
from akida_rt.errors import AkidaError
from akida_rt.format.layers import Layer, LayerType

log = logging.getLogger(__name__)


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


def assemble(mesh: Any, registers: Any, clocks: ClockModel) -> MeshProgram:
    """The program the mesh holds, decoded by akida_rt.akd1000.

    Raises:
        ProgramError: nothing is programmed, or the NP state does not decode.
    """
    if not mesh.nps:
        raise ProgramError("nothing is programmed (no NP was configured)")
    try:
        from akida_rt.akd1000 import decode
    except ImportError:
        raise ProgramError("this build has no AKD1000 program decoder (akida_rt.akd1000)") from None
    try:
        decoded = decode.mesh_layers(mesh, registers)
    except AkidaError as exc:
        raise ProgramError(f"the NP state does not decode: {exc}") from None
    layers = list(decoded.layers)
    if not layers:
        raise ProgramError("the NP state holds no layer")
    first = layers[0].layer_type
    input_kind = "dense" if first is LayerType.InputConv2D else decoded.input_kind
    return MeshProgram(
        layers, input_kind, decoded.output_kind, dict(decoded.np_counts), clocks,
        getattr(decoded, "learning", None),
    )  # fmt: skip
