"""Sequence: one part of a mapped model, loaded and run as a unit (its program bytes)."""

from __future__ import annotations

import hashlib
from typing import Any

from akida_rt.engine.integer import Engine
from akida_rt.format import program as fmt
from akida_rt.format.layers import Layer
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping import np_image
from akida_rt.mapping.mapper import Backend, Placement, SequencePlan


class Sequence:
    """A part of a mapped model that is loaded and run as one unit."""

    def __init__(self, plan: SequencePlan, layers: list[Layer], device: str, index: int) -> None:
        self.plan = plan
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
        """The bytes a device loads for this sequence (empty for software sequences)."""
        if self.backend is Backend.Software:
            return b""
        if self._program is None:
            msg = pb.SequenceProgram(device=self.device, index=self.index, passes=self.passes)
            by_layer = {p.layer: p for p in self.plan.placements}
            for index, layer in enumerate(self.layers):
                out = msg.layers.add()
                fmt.encode_layer(layer, out)
                placement = by_layer.get(layer.name)
                if placement is not None and "weights" in layer.variables:
                    # The kernels travel in the images of the NPs that hold them.
                    out.weights.ClearField("data")
                    if out.HasField("pointwise"):
                        out.pointwise.ClearField("data")
                    np_image.np_images(layer, index, placement, self.device, msg)
            placements_to_pb(self.plan.placements, msg.placements)
            self._program = msg.SerializeToString()
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
