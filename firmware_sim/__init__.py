"""The simulated AKD1000 at the real host interface (registers, DDR, config/event/HRC DMA
rings), behind the driver's transports. Installed as akida_rt.firmware_sim."""

from akida_rt.firmware_sim.akd1000_chip import FAULT_KINDS, Akd1000Chip

__all__ = ["FAULT_KINDS", "Akd1000Chip"]
