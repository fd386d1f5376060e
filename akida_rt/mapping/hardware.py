"""Devices as data: the neural-processor mesh of AKD1000 and of a small test device.

A DeviceSpec is a pure description (no I/O); the mapper reads only this. Real and
simulated devices carry one as `device.spec`.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field


class NpType(enum.Enum):
    HRC = "HRC"  # input convolution on dense 8-bit images
    CNP1 = "CNP1"  # convolution
    CNP2 = "CNP2"  # convolution with pooling
    FNP2 = "FNP2"  # fully connected, binary weights, edge learning
    FNP3 = "FNP3"  # fully connected, multi-bit weights


@dataclass(frozen=True, order=True)
class NpId:
    col: int
    row: int
    id: int

    def __str__(self) -> str:
        return f"({self.col}, {self.row}, {self.id})"


@dataclass(frozen=True)
class NeuralProcessor:
    ident: NpId
    types: frozenset[NpType]


@dataclass(frozen=True)
class DeviceSpec:
    """The mesh of one device: its NPs and their memories."""

    name: str
    version: str
    nodes: int
    nps: tuple[NeuralProcessor, ...]
    hrc: NpId | None
    input_sram_per_pair: int = 43_008
    weight_sram_per_pair: int = 44_800
    clock_hz: int = 300_000_000
    max_kernel: int = 7
    dma_event: NpId | None = None  # the DMA that moves events in and out of the mesh
    dma_conf: NpId | None = None  # the DMA that writes NP configurations
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    # BrainChip's mapper gives each CNP the whole figure (akida.AKD1000().mesh.np_sram_size
    # reports 43,008 input and 44,800 weight bytes; a mapped NP uses up to that much).
    @property
    def np_input_bytes(self) -> int:
        return self.input_sram_per_pair

    @property
    def np_weight_bytes(self) -> int:
        return self.weight_sram_per_pair

    def count(self, np_type: NpType) -> int:
        return sum(1 for np_ in self.nps if np_type in np_.types)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "nodes": self.nodes,
            "nps": len(self.nps),
            "hrc": self.hrc is not None,
            **{t.value: self.count(t) for t in NpType if t is not NpType.HRC},
        }


def _mesh(cols: int, rows: int, per_node: int, kinds: list[frozenset[NpType]]) -> list:
    ids = [
        NpId(c, r, n)
        for c in range(1, cols + 1)
        for r in range(1, rows + 1)
        for n in range(per_node)
    ]
    return [NeuralProcessor(i, k) for i, k in zip(ids, kinds, strict=False)]


_C1 = frozenset({NpType.CNP1})
_C2 = frozenset({NpType.CNP1, NpType.CNP2})
_F3 = frozenset({NpType.CNP1, NpType.FNP3})
_F2 = frozenset({NpType.CNP1, NpType.FNP2})
# AKD1000's nodes (col, row) and the kinds of their NPs 0..3, as akida.AKD1000().mesh
# lists them (tests/test_akd1000_layout.py compares every NP). Node (3, 1) holds the two
# DMAs on NPs 0 and 1, so it offers only NPs 2 and 3.
_AKD1000_COMPUTE = (_F3, _C2, _C2, _C2)
_AKD1000_NODES: tuple[tuple[int, int, tuple[frozenset[NpType], ...]], ...] = (
    *((c, r, _AKD1000_COMPUTE) for c in (1, 2) for r in (3, 4, 5)),
    (3, 1, (frozenset(), frozenset(), _C1, _C1)),
    *((c, r, _AKD1000_COMPUTE) for c in (3, 4, 5) for r in (2, 3, 4, 5)),
    (4, 1, (_F2, _F2, _F2, _F2)),
)


def AKD1000() -> DeviceSpec:
    """The AKD1000 mesh, NP for NP as akida.AKD1000().mesh: 20 nodes, 78 usable NPs, the
    HRC at (0, 0, 0), the event DMA at (3, 1, 0) and the configuration DMA at (3, 1, 1).

    Nodes (1..2, 3..5) and (3..5, 2..5): NP 0 FNP3, NPs 1-3 CNP2. Node (4, 1): 4 FNP2.
    Node (3, 1): NPs 2-3 CNP1 only. Every NP runs CNP1: CNP2 on 54, FNP3 18, FNP2 4.
    """
    nps = sorted(
        (
            NeuralProcessor(NpId(c, r, i), kind)
            for c, r, kinds in _AKD1000_NODES
            for i, kind in enumerate(kinds)
            if kind
        ),
        key=lambda np_: np_.ident,
    )
    return DeviceSpec(
        "AKD1000",
        "BC.00.000.002",
        len(_AKD1000_NODES),
        tuple(nps),
        NpId(0, 0, 0),
        dma_event=NpId(3, 1, 0),
        dma_conf=NpId(3, 1, 1),
    )


def TwoNodesIP() -> DeviceSpec:
    """A small 2-node, 8-NP mesh for tests: 4 CNP2, 2 FNP3, 1 FNP2, 1 CNP1; with an HRC."""
    kinds = [_C2] * 4 + [_F3] * 2 + [_F2, _C1]
    return DeviceSpec("TwoNodesIP", "BC.00.000.001", 2, tuple(_mesh(2, 1, 4, kinds)), NpId(0, 0, 0))


SPECS = {"AKD1000": AKD1000, "TwoNodesIP": TwoNodesIP}


@functools.cache
def spec_by_name(name: str) -> DeviceSpec:
    """The description named `name` (shared: DeviceSpec is immutable)."""
    try:
        return SPECS[name]()
    except KeyError:
        from akida_rt.errors import DeviceNotFound

        raise DeviceNotFound(
            f"unknown device description '{name}'; known: {sorted(SPECS)}"
        ) from None
