"""Per-NP slots of a mapped sequence: each NP's share of its layer's filters and, on large
inputs, its stripe of input columns and band of rows, as BrainChip's compiler assigns them.

`placement_for(plan, layers, spec)` turns our mapper's NP ids per layer into the
akd1000 Placement that np_compile.np_state_for programs.
"""

from __future__ import annotations

from collections.abc import Sequence

from akida_rt.akd1000.np_placement import NpSlot
from akida_rt.akd1000.np_placement import Placement as NpPlacement
from akida_rt.akd1000.np_state import HRC_ID
from akida_rt.errors import MappingError
from akida_rt.format.layers import Layer, LayerType, Pooling
from akida_rt.mapping import np_memory
from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType
from akida_rt.mapping.mapper import Backend, SequencePlan


def placement_for(plan: SequencePlan, layers: Sequence[Layer], spec: DeviceSpec) -> NpPlacement:
    """The NP slots of hardware sequence `plan` (layers: the model's, by name), keyed as
    decode_mesh numbers the program's layers: 0 the input layer (InputData or the HRC's
    InputConvolutional), then each layer on NPs in order.

    Raises:
        MappingError: `plan` runs in software or in several passes (HwPr; BrainChip's
            AKD1000 programs have one).
    """
    if plan.backend is not Backend.Hardware or plan.passes != 1:
        raise MappingError(
            f"{plan.name}: per-NP placement is for a hardware sequence of one pass, not "
            f"{plan.backend.value} with {plan.passes} pass(es); map in AllNps or Minimal"
        )
    by_name = {layer.name: layer for layer in layers}
    out: NpPlacement = {}
    index = 0
    for p in plan.placements:
        if not p.nps:
            continue
        layer = by_name[p.layer]
        if p.np_type == NpType.HRC.value:
            hrc = p.nps[0]
            out[0] = [NpSlot((hrc.col, hrc.row, HRC_ID), 0, layer.filters)]
            continue
        index += 1
        out[index] = layer_slots(layer, p.nps, spec, fnp2=p.np_type == NpType.FNP2.value)
    return out


def _ident(n: NpId) -> tuple[int, int, int]:
    return (n.col, n.row, n.id)


def layer_slots(
    layer: Layer, nps: Sequence[NpId], spec: DeviceSpec, fnp2: bool = False
) -> list[NpSlot]:
    """The slots of one layer on `nps` (our mapper's NP ids, in its order)."""
    if layer.layer_type is LayerType.FullyConnected:
        split = np_memory.filter_split(layer.filters, len(nps))
        firsts = [sum(split[:i]) for i in range(len(split))]
        return [
            NpSlot(_ident(n), f, k, fnp2=fnp2) for n, f, k in zip(nps, firsts, split, strict=True)
        ]
    tiles = np_memory.tiling(layer, spec.np_input_bytes) or np_memory.Tiling(1, 1)
    groups = max(1, len(nps) // tiles.tiles)
    split = np_memory.filter_split(layer.filters, groups)
    stripes, rows = _cuts(layer, tiles.nx, 0), _cuts(layer, tiles.ny, 1)
    slots = []
    for i, n in enumerate(nps):
        # NPs run over input tiles (stripes of the first axis, bands of the second within
        # each stripe), the filter groups innermost
        tile, g = divmod(i, groups)
        x, y = divmod(tile, tiles.ny)
        slots.append(NpSlot(_ident(n), sum(split[:g]), split[g], stripes[x], rows=rows[y]))
    return slots


def _cuts(layer: Layer, parts: int, axis: int) -> list[tuple[int, int] | None]:
    """(first input position, positions) of each of `parts` tiles of input axis `axis`
    (None: the NP sees the whole axis)."""
    if parts == 1:
        return [None]
    assert layer.input_shape is not None
    step = layer.stride * (layer.pool_stride if layer.pooling is Pooling.Max else 1)
    return list(np_memory.tile_cuts(layer.input_shape[axis], parts, step))
