"""The clock model of the simulated AKD1000: programming and inference clocks.

Inference clocks are driven by events and synaptic operations (SynOps) per layer, divided
over the NPs the mapper gave the layer; docs/clock-and-power-model.md explains the
constants and how they were calibrated against the published AKD1000 figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """One stretch of work within a frame: its clocks and what moves during it."""

    name: str
    clk: float
    synops: float = 0.0
    dma_bytes: float = 0.0


@dataclass(frozen=True)
class ClockModel:
    """Constants of the clock model (all per frame unless said otherwise).

    Attributes:
        np_synops_per_clk: SynOps one CNP/FNP completes per clock.
        hrc_synops_per_clk: SynOps the HRC (input convolution on dense pixels) per clock.
        clk_per_event: clocks an NP spends decoding and routing one input event.
        layer_overhead_clk: per layer and frame: start, end-of-frame sync, handover.
        frame_overhead_clk: per frame: doorbell to mesh start, end of frame to outputs.
        dma_bytes_per_clk: device-memory <-> mesh DMA bandwidth.
        program_clk_per_byte: programming clocks per byte of sequence program.
        program_clk_per_np: programming clocks per NP configured (registers, routing).
        pass_switch_clk: per frame and extra pass of a multi-pass (HwPr) sequence.
        effective_clock_hz: the clock the NPs actually run at under load (the AKD1000
            adapts its clock below the nominal 300 MHz it reports); turns clocks into time.
    """

    np_synops_per_clk: float = 33.0
    hrc_synops_per_clk: float = 9.0
    clk_per_event: float = 1.0
    layer_overhead_clk: float = 200.0
    frame_overhead_clk: float = 500.0
    dma_bytes_per_clk: float = 4.0
    program_clk_per_byte: float = 0.665
    program_clk_per_np: float = 1_400.0
    pass_switch_clk: float = 2_000.0
    effective_clock_hz: float = 179e6

    def seconds(self, clk: float) -> float:
        """Time the NPs take for `clk` clocks."""
        return clk / self.effective_clock_hz

    def program_clk(self, program_bytes: int, nps: int) -> int:
        """Clocks to load a sequence of `program_bytes` configuring `nps` NPs."""
        return math.ceil(program_bytes * self.program_clk_per_byte + nps * self.program_clk_per_np)

    def layer_phase(
        self, name: str, on_hrc: bool, nps: int, in_events: float, synops: float
    ) -> Phase:
        """The per-frame phase of one layer from its per-frame events and SynOps."""
        nps = max(1, nps)
        rate = self.hrc_synops_per_clk if on_hrc else self.np_synops_per_clk
        work = (in_events * self.clk_per_event + synops / rate) / nps
        return Phase(name, self.layer_overhead_clk + work, synops=synops)

    def dma_phase(self, name: str, nbytes: float) -> Phase:
        """Moving `nbytes` between device memory and the mesh."""
        return Phase(name, nbytes / self.dma_bytes_per_clk, dma_bytes=nbytes)

    def pass_phase(self, name: str, weight_bytes: float) -> Phase:
        """Reconfiguring the NPs for one extra pass of a multi-pass sequence."""
        return Phase(
            name,
            self.pass_switch_clk + weight_bytes * self.program_clk_per_byte,
            dma_bytes=weight_bytes,
        )

    def overhead_phase(self) -> Phase:
        return Phase("frame", self.frame_overhead_clk)
