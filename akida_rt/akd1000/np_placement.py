"""Where a v1 layer sits on the AKD1000 mesh: per NP, its share of the layer's filters
and, on wide or tall inputs, its stripe of input columns and band of input rows.

`placement_from(program, layers)` reads the placement BrainChip's compiler chose from a
decoded program binary; np_compile.py turns layers plus a placement into NP state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from akida_rt.akd1000 import np_registers as regs
from akida_rt.akd1000.decode import V1Layer
from akida_rt.akd1000.np_state import HRC_ID, MeshState
from akida_rt.akd1000.program_binary import ProgramBinary

Ident = tuple[int, int, int]


@dataclass(frozen=True)
class NpSlot:
    """One NP of a layer.

    Attributes:
        ident: (col, row, id); id HRC_ID for the HRC.
        first_filter: index of the NP's first filter (FullyConnected: first unit).
        filters: filters (units) the NP holds.
        stripe: wide inputs: (first input column the NP computes, columns), without the
            kernel halo; None when the NP sees the whole input.
        rows: tall inputs: (first input row the NP computes, rows), as `stripe` for the
            input's second dimension; None when the NP sees every row.
        fnp2: an FNP2 (weights in DDR, not in the NP).
    """

    ident: Ident
    first_filter: int = 0
    filters: int = 0
    stripe: tuple[int, int] | None = None
    fnp2: bool = False
    rows: tuple[int, int] | None = None

    @property
    def col(self) -> int:
        return self.ident[0]


Placement = dict[int, list[NpSlot]]


def placement_from(
    program: ProgramBinary, state: MeshState, layers: Sequence[V1Layer]
) -> Placement:
    """The placement of `layers` (decode_mesh's layers of `program`, input layer first)
    that BrainChip's compiler chose, read from the NP registers in `state`."""
    fnp2 = {(t.np.col, t.np.row, t.np.id) for t in program.info.fnp2_tracks()}
    out: Placement = {}
    for index, layer in enumerate(layers):
        slots: list[NpSlot] = []
        first_unit = 0
        for ident in layer.nps:
            r = state.nps[ident].registers
            if ident[2] == HRC_ID:
                slots.append(NpSlot(ident, 0, layer.filters))
            elif layer.kind == "FullyConnected":
                units = regs.FNP["UNITS"].get(r)
                slots.append(NpSlot(ident, first_unit, units, fnp2=ident in fnp2))
                first_unit += units
            else:
                f = regs.read(regs.CNP, r)
                stripe = rows = None
                if f["INPUT_X"] != layer.input_shape[0]:
                    stripe = (f["STRIPE_START"] + f["STRIPE_HALO"], f["INPUT_X"])
                if f["INPUT_Y"] != layer.input_shape[1]:
                    rows = (f["ROW_START"] + f["ROW_HALO"], f["INPUT_Y"])
                slots.append(NpSlot(ident, f["FIRST_FILTER"], f["NP_FILTERS"], stripe, rows=rows))
        if slots:
            out[index] = slots
    return out
