"""The simulated AKD1000: registers, device memory, firmware command loop, NP mesh, clock
and power models, fault injection. Installed as akida_rt.firmware_sim; reached only
through a transport (the driver's sim:// or a colleague's PCIe/USB/serial seams)."""

from akida_rt.firmware_sim.chip import FAULT_KINDS, SimChip

__all__ = ["FAULT_KINDS", "SimChip"]
