"""Scratch memory of an AKD1000 as the host hands it out: descriptor rings, tracks on
their way to the NPs, inputs and outputs, in the DDR scratch area.

The same policy as BrainChip's Akida Engine (a bump allocator that gives back the top on
free), so a host of ours places every buffer where the engine would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from akida_rt.akd1000.memory_map import SCRATCH_BASE, SCRATCH_SIZE, WORD
from akida_rt.errors import DeviceError


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass
class ScratchAllocator:
    """Allocations in [base, base + size): bump upwards, shrink back from the top."""

    base: int = SCRATCH_BASE
    size: int = SCRATCH_SIZE
    _top: int = field(init=False)
    _high_water: int = field(init=False)
    _blocks: list[tuple[int, int]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._top = self.base
        self._high_water = self.base

    def alloc(self, nbytes: int, alignment: int = WORD) -> int:
        """The address of `nbytes` fresh bytes (DeviceError when the scratch is full)."""
        if nbytes <= 0:
            raise ValueError(f"cannot allocate {nbytes} bytes")
        addr = align_up(self._top, alignment)
        if addr + nbytes > self.base + self.size:
            raise DeviceError(
                f"AKD1000 scratch memory full: {nbytes} bytes asked, "
                f"{self.base + self.size - self._top} of {self.size} free; use a smaller "
                "batch size or a smaller model"
            )
        self._blocks.append((addr, nbytes))
        self._top = addr + nbytes
        self._high_water = max(self._high_water, self._top)
        return addr

    def free(self, addr: int) -> None:
        for i in range(len(self._blocks) - 1, -1, -1):
            a, n = self._blocks[i]
            if a == addr:
                del self._blocks[i]
                if a + n == self._top:
                    self._top = max((b + m for b, m in self._blocks), default=self.base)
                return
        raise DeviceError(f"scratch address {addr:#x} was not allocated")

    def reset(self) -> None:
        self._blocks.clear()
        self._top = self.base

    @property
    def used(self) -> int:
        return self._top - self.base

    @property
    def high_water(self) -> int:
        """The most scratch bytes in use at once since creation."""
        return self._high_water - self.base
