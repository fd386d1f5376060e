"""Simulator-only registers of the simulated AKD1000 (top level + 0x7F000): board time,
power and energy from the clock and power models. No real AKD1000 has them; a host that
reads no "SIMU" magic at +0x0 knows the figures are not there (docs/clock-and-power-model.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

from akida_rt.akd1000.sim_block import (
    SIM_CLOCK_HZ,
    SIM_ENERGY_HI,
    SIM_ENERGY_LO,
    SIM_FLOOR_UW,
    SIM_FRAMES,
    SIM_HOST_KMACS,
    SIM_HOST_REQUEST,
    SIM_INFERENCE_CLK,
    SIM_MAGIC,
    SIM_MAGIC_VALUE,
    SIM_POWER_UW,
    SIM_PROGRAM_CLK,
    SIM_SYNOPS,
    SIM_TIME_HI,
    SIM_TIME_LO,
    SIM_WINDOW,
    SIM_WINDOW_AVG_UW,
    SIM_WINDOW_MAX_UW,
    SIM_WINDOW_MIN_UW,
    SIM_WINDOW_STD_UW,
)

ALL_ONES = 0xFFFFFFFF


class SimRegisters:
    """Reads and writes of the simulator-only block of `chip`."""

    def __init__(self, chip: Akd1000Chip) -> None:
        self.chip = chip
        self._latch = 0

    def read(self, offset: int) -> int:
        chip = self.chip
        if offset == SIM_MAGIC:
            return SIM_MAGIC_VALUE
        if offset in (SIM_TIME_LO, SIM_ENERGY_LO):
            ns = chip.board_time_s * 1e9
            self._latch = round(ns if offset == SIM_TIME_LO else chip.power.total_energy_nj)
            return self._latch & ALL_ONES
        if offset in (SIM_TIME_HI, SIM_ENERGY_HI):
            return (self._latch >> 32) & ALL_ONES
        if offset == SIM_POWER_UW:
            return round(chip.power.instant_mw() * 1000)
        if offset == SIM_FRAMES:
            return chip.frames & ALL_ONES
        counters = {
            SIM_SYNOPS: chip.synops,
            SIM_INFERENCE_CLK: chip.inference_clk,
            SIM_PROGRAM_CLK: chip.program_clk,
            SIM_CLOCK_HZ: round(chip.clocks.effective_clock_hz),
        }
        if offset in counters:
            return int(counters[offset]) & ALL_ONES
        reading = chip.power.read()
        if offset == SIM_WINDOW:
            return reading.samples
        microwatts = {
            SIM_WINDOW_AVG_UW: reading.avg_mw,
            SIM_WINDOW_MIN_UW: reading.min_mw,
            SIM_WINDOW_MAX_UW: reading.max_mw,
            SIM_FLOOR_UW: reading.floor_mw,
            SIM_WINDOW_STD_UW: reading.std_mw,
        }.get(offset, 0.0)
        return 0 if math.isnan(microwatts) else round(microwatts * 1000)

    def write(self, offset: int, value: int) -> None:
        if offset == SIM_WINDOW and value & 1:
            self.chip.power.restart()
        elif offset == SIM_HOST_KMACS:  # the host's own work: the board idles meanwhile
            self.chip.spend(value * 1e3 / self.chip.link.host_macs_per_s)
        elif offset == SIM_HOST_REQUEST:
            # The host runtime around one inference call (link_model.request_s, fitted
            # on published fps): the board idles at its floor meanwhile.
            self.chip.spend(self.chip.link.request_s)
