"""The simulated AKD1000: Akd1000Chip answers the real host interface (registers, DMA
rings, DDR); SimChip is the earlier mailbox chip the driver still uses. Installed as
akida_rt.firmware_sim; reached only through a transport."""

from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip
from akida_rt.firmware_sim.chip import FAULT_KINDS, SimChip

__all__ = ["FAULT_KINDS", "Akd1000Chip", "SimChip"]
