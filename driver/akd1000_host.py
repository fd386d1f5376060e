"""The host side of an AKD1000, written only against the bus: identify, program,
set the batch size, forward, learn, and chain-load several sequences, exactly as
BrainChip's Akida Engine drives the chip. Accesses are counted per phase.

Usage:
    host = Akd1000Host(open_bus("pcie:///dev/akida0"), desc=desc_for_pci(0x1E7C, 0xBCA1))
    host.program(program_bytes)
    host.set_batch_size(16)
    outputs = host.forward(images)            # (N, *output_dims)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from akida_rt.driver import akd1000_inference as inference
from akida_rt.driver import akd1000_learning as learning
from akida_rt.driver import akd1000_programmer as programmer
from akida_rt.driver.akd1000_access_log import AccessLog, PhaseCounts
from akida_rt.driver.akd1000_state import ChipState
from akida_rt.driver.bus import Bus

from akida_rt.akd1000.memory_map import TOP_LEVEL_REG_BASE
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.akd1000.program_info import DeviceVersion, ProgramInfo
from akida_rt.errors import DeviceError, InputError

# PCI ids of boards whose IP_VERSION reads 0, and the description that identifies them
_PCI_DESC = {(0x1E7C, 0xBCA1): "NSoC_v2"}


def desc_for_pci(vendor: int, device: int) -> str:
    """The driver description the engine identifies a board by (AKD1000: 'NSoC_v2')."""
    return _PCI_DESC.get((vendor, device), "")


class Akd1000Host:
    """One AKD1000 behind `bus`.

    Args:
        bus: 32-bit physical reads and writes to the chip.
        desc: the driver's description of the board; identifies an AKD1000 ('NSoC_v2')
            when its IP_VERSION register reads 0, as it does. Empty: built from the SoC's
            CHIP_INFO register, as the engine's bare-metal driver does.
        trace: keep every access in `self.log.trace`.
        timeout_s: how long a config job may take, and the longest wait between two
            outputs (BrainChip's engine: 5 s), before TransportTimeout.
    """

    def __init__(self, bus: Bus, desc: str = "", trace: bool = False,
                 top: int = TOP_LEVEL_REG_BASE, timeout_s: float = 5.0) -> None:  # fmt: skip
        self.log = AccessLog(bus, trace)
        self.state = ChipState(self.log, top=top, desc=desc, timeout_s=timeout_s)
        self.version: DeviceVersion | None = programmer.identify(self.state)

    # -- phases -----------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, PhaseCounts]:
        """Accesses per phase: identify, program, batch, inference, learning."""
        return self.log.counts

    def _phase(self, name: str) -> AccessLog:
        self.log.phase = name
        return self.log

    @property
    def info(self) -> ProgramInfo | None:
        return self.state.program.info if self.state.program else None

    # -- programming ------------------------------------------------------------------
    def program(self, program: bytes | ProgramBinary, where: str = "program") -> ProgramInfo:
        """Validate and put a program binary on the chip (replacing any other)."""
        prog = program if isinstance(program, ProgramBinary) else ProgramBinary.from_bytes(
            program, where)  # fmt: skip
        self._phase("program")
        programmer.program(self.state, prog)
        return prog.info

    def unprogram(self) -> None:
        self._phase("program")
        programmer.unprogram(self.state)

    def set_batch_size(self, n: int, allocate_inputs: bool = True) -> int:
        """Jobs in flight at once (at most 16); returns the effective size."""
        self._phase("batch")
        return inference.set_batch_size(self.state, n, allocate_inputs)

    # -- inference --------------------------------------------------------------------
    def _inputs(self, inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs)
        if x.dtype not in (np.uint8, np.int8):
            raise InputError(f"AKD1000 inputs are uint8 or int8 values, got {x.dtype}")
        if self.state.pipeline.size == 0:
            self.set_batch_size(min(len(x), 16) or 1)
        return x

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs for (N, *input_dims) inputs: uint8 activations or int32 potentials."""
        if self.state.learn_enabled:
            raise DeviceError("learning is enabled: use fit(), or toggle_learn(False) first")
        x = self._inputs(inputs)
        self._phase("inference")
        return np.stack(inference.forward_loop(self.state, x))

    def fit(self, inputs: np.ndarray, labels: Sequence[int]) -> np.ndarray:
        """Labelled inferences: the chip's learning layer updates its own weights."""
        if not self.state.learn_enabled:
            raise DeviceError("learning is disabled: call toggle_learn(True) before fit()")
        x = self._inputs(inputs)
        self._phase("inference")
        return np.stack(inference.forward_loop(self.state, x, [int(v) for v in labels]))

    def run_sequences(self, programs: Sequence[bytes | ProgramBinary], inputs: np.ndarray,
                      batch_size: int = 16) -> np.ndarray:  # fmt: skip
        """Chain-load several sequences (AKD1000 has no multipass): each program runs
        over the whole batch, its outputs feed the next."""
        x = np.asarray(inputs)
        for i, prog in enumerate(programs):
            self.program(prog, f"sequence {i}")
            self.set_batch_size(batch_size)
            x = self.forward(x if x.dtype in (np.uint8, np.int8) else x.astype(np.uint8))
        return x

    # -- learning ---------------------------------------------------------------------
    def toggle_learn(self, enable: bool) -> None:
        self._phase("learning")
        learning.toggle_learn(self.state, enable)

    def learn_mem(self) -> np.ndarray:
        self._phase("learning")
        return learning.learn_mem(self.state)

    def update_learn_mem(self, words: np.ndarray) -> None:
        self._phase("learning")
        learning.update_learn_mem(self.state, words)

    # -- clocks -----------------------------------------------------------------------
    def toggle_clock_counter(self, enable: bool) -> None:
        self._phase("inference")
        self.state.clock_counter_enabled = enable
        programmer.reset_clock_counter(self.state)

    def read_clock_counter(self) -> int:
        """Clock cycles counted by the input DMAs (the larger of event and HRC)."""
        self._phase("inference")
        return max(self.state.event.read_timer(), self.state.hrc.read_timer())

    def read_config_clock_counter(self) -> int:
        self._phase("program")
        return self.state.config.read_timer()

    def close(self) -> None:
        self.log.close()
