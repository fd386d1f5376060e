"""The simulator-only register block of akida_rt's simulated AKD1000 (top level + 0x7F000):
board time, power, energy and counters that no real AKD1000 exposes.

A host reads it only after SIM_MAGIC reads "SIMU" (the chip identifies as simulated); on a
board those figures do not exist (docs/clock-and-power-model.md).
"""

from __future__ import annotations

SIM_BASE = 0x7F000  # offset from the top-level register base
SIM_SIZE = 0x100

# Offsets from SIM_BASE.
SIM_MAGIC = 0x00  # reads "SIMU": tells a host it talks to the simulated chip
SIM_TIME_LO = 0x04  # modelled board time in ns; reading LO latches HI
SIM_TIME_HI = 0x08
SIM_POWER_UW = 0x0C  # instantaneous board power, microwatts
SIM_ENERGY_LO = 0x10  # board energy since power-on, nJ; reading LO latches HI
SIM_ENERGY_HI = 0x14
SIM_FRAMES = 0x18  # inference jobs completed since power-on
SIM_WINDOW = 0x1C  # write 1: restart the power window; reads its sample count
SIM_WINDOW_AVG_UW = 0x20
SIM_WINDOW_MIN_UW = 0x24
SIM_WINDOW_MAX_UW = 0x28
SIM_FLOOR_UW = 0x2C
SIM_HOST_REQUEST = 0x30  # write: the host starts a request (its runtime's per-call cost)
SIM_SYNOPS = 0x34  # synaptic operations since power-on (low 32 bits)
SIM_INFERENCE_CLK = 0x38  # modelled inference clocks since power-on (low 32 bits)
SIM_PROGRAM_CLK = 0x3C  # modelled programming clocks since power-on (low 32 bits)
SIM_HOST_KMACS = 0x40  # write: thousands of MACs the board's host computed (time passes)
SIM_CLOCK_HZ = 0x44  # the modelled mesh clock
SIM_WINDOW_STD_UW = 0x48  # standard deviation of the window's samples
SIM_MAGIC_VALUE = int.from_bytes(b"SIMU", "little")
