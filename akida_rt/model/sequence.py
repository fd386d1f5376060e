"""Sequence: one part of a mapped model, loaded and run as a unit (on an AKD1000, its
program binary, compiled by akida_rt.mapping.akd1000_compiler)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from akida_rt.engine.integer import Engine
from akida_rt.errors import MappingError
from akida_rt.format.layers import Layer
from akida_rt.mapping.mapper import Backend, Placement, SequencePlan


class Sequence:
    """A part of a mapped model that is loaded and run as one unit."""

    def __init__(
        self,
        plan: SequencePlan,
        layers: list[Layer],
        device: str,
        index: int,
        binary: Callable[[], bytes | None] | None = None,
    ) -> None:
        self.plan = plan
        self._binary = binary
        self.layers = layers
        self.device = device
        self.index = index
        self._program: bytes | None = None
        self._program_hash: str | None = None
        self._engine: Engine | None = None
        self._versions = [(id(layer), layer.version) for layer in layers]

    def holds(self, layers: list[Layer]) -> bool:
        """True if `layers` are this sequence's layers, none changed since it was built."""
        return self._versions == [(id(layer), layer.version) for layer in layers]

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def backend(self) -> Backend:
        return self.plan.backend

    @property
    def passes(self) -> int:
        return self.plan.passes

    @property
    def layer_names(self) -> list[str]:
        return self.plan.layers

    @property
    def np_count(self) -> int:
        return self.plan.np_count

    @property
    def program(self) -> bytes:
        """The AKD1000 program binary a device loads for this sequence (empty for software
        sequences); compiled on first use by akida_rt.mapping.akd1000_compiler (MappingError
        when it cannot compile the sequence, or for a device that runs no binaries)."""
        if self.backend is Backend.Software:
            return b""
        if self._program is None:
            binary = self._binary() if self._binary is not None else None
            if binary is None:
                raise MappingError(
                    f"sequence {self.name} on {self.device or 'no device'}: only AKD1000 "
                    "hardware sequences have a program a device can load; map onto an AKD1000"
                )
            self._program = binary
        return self._program

    @property
    def program_hash(self) -> str:
        """SHA-256 (hex) of `program`: the identity a device's residency cache compares."""
        if self._program_hash is None:
            self._program_hash = hashlib.sha256(self.program).hexdigest()
        return self._program_hash

    def engine(self) -> Engine:
        """The host engine for this sequence's layers (software sequences run on it)."""
        if self._engine is None:
            self._engine = Engine(self.layers)
        return self._engine

    def nps_of(self, layer_name: str) -> str:
        for p in self.plan.placements:
            if p.layer == layer_name:
                return "N/A" if p.np_type in ("HRC", "none") else str(len(p.nps))
        return ""

    def __repr__(self) -> str:
        return (
            f"<Sequence {self.name} {self.backend.value} passes={self.passes} nps={self.np_count}>"
        )


def placements_to_pb(placements: list[Placement], out: Any) -> None:
    for p in placements:
        m = out.add(
            layer=p.layer,
            np_type=p.np_type,
            weight_bytes=p.weight_bytes,
            input_bytes=p.input_bytes,
            pass_index=p.pass_index,
        )
        for n in p.nps:
            m.nps.add(col=n.col, row=n.row, id=n.id)
