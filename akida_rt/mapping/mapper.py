"""The mapper: a pure function from (layers, DeviceSpec) to sequences of NP placements.

Layers are assigned to NPs within the per-NP memories; a model that does not fit is split
into sequences (chain-loaded per input) or, in HwPr mode, into passes of one sequence.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from akida_rt.errors import MappingError
from akida_rt.format import v1_rules
from akida_rt.format.layers import Layer, LayerType, Padding, Pooling
from akida_rt.mapping import filter_search, hw_constraints, np_memory
from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType

FNP_WEIGHT_BYTES = 262_144  # bound on an FNP's local weights (the simulator's SRAM check)
# An FNP3 keeps a FullyConnected layer's weights on chip when they fit an NP's weight
# SRAM (np_memory.fc_weight_bytes; BrainChip's mapper: 1024x48 4-bit and 1024x128 2-bit
# fit, 1024x63 4-bit does not). Larger layers go to an FNP2, which streams its weights
# from external memory.
EXTERNAL_MEMORY_TYPES = frozenset({NpType.FNP2})
# Most filters a CNP takes: akida.MapConstraints(akida.AKD1000()).cnp_max_filters_default.
# Minimal maps at this bound; AllNps and HwPr search a lower one (_search_max_filters).
CNP_MAX_FILTERS = 504
# Order in which NP types are served: FNP2 first (the scarcest, no substitute), then the
# convolutions, then FNP3, which falls back to an FNP2 when the convolutions left no FNP3
# (BrainChip's mapper: seven 11-NP convolutions and a small classifier fill the 78 NPs of
# AKD1000 in AllNps; the classifier gets the leftover FNP2).
SERVE_ORDER = (NpType.FNP2, NpType.CNP2, NpType.CNP1, NpType.FNP3)
FALLBACK = {NpType.FNP3: NpType.FNP2}


class MapMode(enum.Enum):
    AllNps = "AllNps"  # spread over all NPs: throughput and latency
    HwPr = "HwPr"  # partial reconfiguration: passes instead of sequences
    Minimal = "Minimal"  # as few NPs as possible


class Backend(enum.Enum):
    Software = "Software"
    Hardware = "Hardware"


@dataclass
class LayerNeed:
    """What one layer asks of the mesh."""

    layer: Layer
    np_type: NpType | None  # None: no NP (InputData)
    count: int
    weight_bytes: int
    input_bytes: int
    hw_reason: str = ""  # non-empty: why the layer cannot run on this device
    rule: hw_constraints.Violation | None = None  # the published Akida 1.0 rule it breaks
    split: int = 1  # NPs the input map needs (each filter group is split this many ways)
    groups: int = 1  # filter groups: those the weights need, or more under max_filters

    @property
    def external_bytes(self) -> int:
        """Weight bytes kept in external memory (an FNP2 streams them)."""
        return self.weight_bytes if self.np_type in EXTERNAL_MEMORY_TYPES else 0

    @property
    def hw_ok(self) -> bool:
        return not self.hw_reason


@dataclass
class Placement:
    layer: str
    np_type: str
    nps: list[NpId]
    weight_bytes: int
    input_bytes: int
    pass_index: int = 0


@dataclass
class SequencePlan:
    backend: Backend
    layers: list[str] = field(default_factory=list)
    passes: int = 1
    placements: list[Placement] = field(default_factory=list)

    @property
    def name(self) -> str:
        tag = "HW" if self.backend is Backend.Hardware else "SW"
        return f"{tag}/{self.layers[0]}-{self.layers[-1]}"

    @property
    def np_count(self) -> int:
        return sum(len(p.nps) for p in self.placements if p.np_type != NpType.HRC.value)


def layer_need(layer: Layer, spec: DeviceSpec, max_filters: int = CNP_MAX_FILTERS) -> LayerNeed:
    """Resources one layer needs on `spec` with at most `max_filters` filters per CNP (the
    default gives its minimal NP count); a layer breaking a published Akida 1.0 hardware
    constraint cannot run there (`rule` names it)."""
    need = _resources(layer, spec, max_filters)
    if (broken := hw_constraints.check_layer(layer)) is not None:
        need.rule, need.hw_reason = broken, str(broken)
    return need


def _resources(layer: Layer, spec: DeviceSpec, max_filters: int) -> LayerNeed:
    t = layer.layer_type
    assert layer.input_shape is not None
    h, w, c = layer.input_shape
    input_bytes = math.ceil(h * w * c * layer.input_bits / 8)
    if t is LayerType.InputData:
        return LayerNeed(layer, None, 0, 0, 0)
    ks = layer.kernel_shape() or (1, 1, 1, 1)
    weight_bytes = math.ceil(ks[0] * ks[1] * ks[2] * ks[3] * layer.weight_bits / 8)
    if (pw := layer.pointwise_shape()) is not None:
        weight_bytes += math.ceil(pw[2] * pw[3] * layer.weight_bits / 8)
    need = LayerNeed(layer, None, 1, weight_bytes, input_bytes)
    if layer.kernel_size > spec.max_kernel:
        need.hw_reason = f"kernel {layer.kernel_size}x{layer.kernel_size} exceeds {spec.max_kernel}x{spec.max_kernel}"
    elif t in (LayerType.Conv2D, LayerType.SeparableConv2D):
        need.hw_reason = _cnp_reason(layer)
        out_w = layer.conv_output_hw()[1] if layer.pooling is Pooling.GlobalAvg else 3
        if not need.hw_reason and out_w < 3:
            need.hw_reason = (
                f"global average pooling over {out_w} column(s) (the convolution's output "
                "needs at least 3)"
            )
    if t is LayerType.InputConv2D:
        need.np_type = NpType.HRC
        if spec.hrc is None:
            need.hw_reason = f"{spec.name} has no HRC for input convolutions"
        elif why := v1_rules.hrc_step_violation(layer):
            need.hw_reason = why
        return need
    if t is LayerType.FullyConnected:
        on_chip = np_memory.fc_weight_bytes(layer) <= spec.np_weight_bytes
        need.np_type = NpType.FNP3 if on_chip else NpType.FNP2
        if layer.weight_bits > 4:
            need.hw_reason = f"{layer.weight_bits}-bit weights (FNPs take 1 to 4 bits)"
        return need
    # Pooled or not, convolutions run on any CNP (BrainChip places pooled layers on CNP1):
    # tiles of the input map times groups of filters (np_memory.py).
    need.np_type = NpType.CNP1
    tiles = np_memory.tiling(layer, spec.np_input_bytes)
    groups = np_memory.filter_groups(layer, spec.np_weight_bytes)
    if groups is None:
        need.hw_reason = need.hw_reason or (
            f"one filter's weights ({np_memory.weight_bytes(layer, 1):,} bytes) exceed an "
            f"NP's {spec.np_weight_bytes:,}"
        )
    elif tiles is None:
        need.hw_reason = need.hw_reason or "no tiling of the input fits an NP's input memory"
    elif layer.pooling is Pooling.GlobalAvg and tiles.tiles > 1:
        # akida 2.19.3: a 32x32x96 4-bit input (48 KiB, 2 tiles) runs in software, 32x32x84
        # (42 KiB, one tile) maps; separable layers and stride 2 alike.
        need.hw_reason = need.hw_reason or (
            f"global average pooling over an input map cut in {tiles.tiles} tiles (it must "
            "fit one NP's input memory)"
        )
    need.split = tiles.tiles if tiles else 1
    need.groups = max(groups or 1, -(-layer.filters // max_filters))
    need.count = need.split * need.groups
    if not need.hw_reason and not np_memory.one_channel_split_ok(layer, need.groups):
        split = np_memory.filter_split(layer.filters, need.groups)
        need.hw_reason = (
            f"{layer.filters} filters on one input channel split {split} over NPs (above "
            f"{np_memory.ONE_CHANNEL_ANY_SPLIT}, each NP needs an even number of "
            f"{np_memory.FILTER_BLOCK}-filter blocks)"
        )
    return need


def _cnp_reason(layer: Layer) -> str:
    """Why a Conv2D/SeparableConv2D cannot run on a CNP ('' when it can)."""
    k = layer.kernel_size
    if not (layer.stride == 1 or (layer.stride == 2 and k == 3)):
        return f"stride {layer.stride} with a {k}x{k} kernel (NPs take 1, or 2 with 3x3)"
    if layer.padding is not Padding.Same:
        return "valid padding (NPs pad 'same' only)"
    if layer.weight_bits > 4:
        return f"{layer.weight_bits}-bit weights (CNPs take 1, 2 or 4 bits)"
    if layer.pooling is Pooling.Max and layer.pool_size > 2:
        return f"{layer.pool_size}x{layer.pool_size} max pooling (NPs pool 1x1 or 2x2)"
    return ""


class _Pool:
    """Free NPs of one sequence (or pass), handed out as BrainChip's mapper hands them out."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        counts = {t: spec.count(t) for t in NpType}
        # For a demand of type t, an NP's rank: those with the fewest other capabilities
        # first, then those whose other capabilities the mesh has most of, then mesh order
        # (akida.AKD1000(): convolutions take CNP1-only NPs, then CNP2, FNP3 and FNP2 NPs).
        self._rank = {
            (np_.ident, t): (
                len(np_.types) - 1,
                -min((counts[o] for o in np_.types if o is not t), default=0),
                i,
            )
            for i, np_ in enumerate(spec.nps)
            for t in np_.types
        }

    def _fits(self, free: dict[NpId, frozenset[NpType]], t: NpType) -> list[NpId]:
        return sorted((i for i, ty in free.items() if t in ty), key=lambda i: self._rank[i, t])

    def assign(self, demands: list[tuple[NpType, int]]) -> list[list[NpId]] | None:
        """NP ids for each (type, count) demand, in the order they were handed out, or None
        if the mesh cannot serve them."""
        free = {np_.ident: np_.types for np_ in self.spec.nps}
        result: list[list[NpId] | None] = [None] * len(demands)
        for t in SERVE_ORDER:
            for i, (dt, count) in enumerate(demands):
                if dt is not t:
                    continue
                fits = self._fits(free, t)
                if len(fits) < count and t in FALLBACK:
                    fits += self._fits(free, FALLBACK[t])
                if len(fits) < count:
                    return None
                picked = fits[:count]
                for ident in picked:
                    del free[ident]
                result[i] = picked
        return [r if r is not None else [] for r in result]

    def available(self, demands: list[tuple[NpType, int]], t: NpType) -> int:
        """How many NPs of type t remain once `demands` are served."""
        for n in range(len(self.spec.nps), -1, -1):
            if self.assign([*demands, (t, n)]) is not None:
                return n
        return 0


def _demands(needs: list[LayerNeed], counts: dict[str, int]) -> list[tuple[NpType, int]]:
    return [
        (n.np_type, counts[n.layer.name])
        for n in needs
        if n.np_type is not None and n.np_type is not NpType.HRC
    ]


def _close(plan: SequencePlan, groups: list[list[LayerNeed]], spec: DeviceSpec) -> None:
    """Concrete NP ids for each pass."""
    pool = _Pool(spec)
    types = {np_.ident: np_.types for np_ in spec.nps}
    for pass_index, needs in enumerate(groups):
        ids = pool.assign(_demands(needs, {n.layer.name: n.count for n in needs})) or []
        it = iter(ids)
        for n in needs:
            if n.np_type is None:
                nps: list[NpId] = []
            elif n.np_type is NpType.HRC:
                assert spec.hrc is not None
                nps = [spec.hrc]
            else:
                nps = next(it)
            np_type = n.np_type.value if n.np_type else "none"
            fallback = FALLBACK.get(n.np_type) if n.np_type else None
            if fallback is not None and any(n.np_type not in types[i] for i in nps):
                np_type = fallback.value
            plan.placements.append(
                Placement(
                    n.layer.name,
                    np_type,
                    nps,
                    n.weight_bytes,
                    n.input_bytes,
                    pass_index,
                )
            )
    plan.passes = max(1, len(groups))


def pool_ends_sequence(layer: Layer, following: LayerNeed | None) -> bool:
    """BrainChip's rule: a max-pooled convolution that would end a sequence (the model's
    last layer, one feeding a FullyConnected layer, or one feeding a layer that runs in
    software) runs in software. akida 2.19.3: conv+pool then a valid-padded conv: both in
    software; conv+pool, conv+pool, FullyConnected: both pooled layers in software."""
    if layer.layer_type not in (LayerType.Conv2D, LayerType.SeparableConv2D):
        return False
    if layer.pooling is not Pooling.Max:
        return False
    if following is None:
        return True
    return following.layer.layer_type is LayerType.FullyConnected or not following.hw_ok


def map_layers(
    layers: list[Layer], spec: DeviceSpec, *, hw_only: bool = False, mode: MapMode = MapMode.AllNps
) -> list[SequencePlan]:
    """Split `layers` into sequences placed on `spec`. Pure: no I/O, no state.

    Minimal maps with CNP_MAX_FILTERS filters per CNP; AllNps and HwPr with the bound
    BrainChip's search picks (_search_max_filters).
    """
    mode = MapMode(mode)
    max_filters = CNP_MAX_FILTERS
    if mode is not MapMode.Minimal:
        max_filters = _search_max_filters(layers, spec, hw_only, mode)
    return _map_at(layers, spec, hw_only, mode, max_filters)


def _search_max_filters(layers: list[Layer], spec: DeviceSpec, hw_only: bool, mode: MapMode) -> int:
    """The filters-per-CNP bound of AllNps and HwPr: akida's bisection
    (filter_search.bisect) of (0, CNP_MAX_FILTERS].

    akida 2.19.3 never makes passes, so its HwPr maps as its AllNps; our HwPr passes stand
    where its sequences would, so the search counts them as AllNps does.
    """
    if not any(
        layer.layer_type in (LayerType.Conv2D, LayerType.SeparableConv2D) for layer in layers
    ):
        return CNP_MAX_FILTERS
    return filter_search.bisect(
        lambda bound: _map_at(layers, spec, hw_only, mode, bound), CNP_MAX_FILTERS
    )


def _map_at(
    layers: list[Layer], spec: DeviceSpec, hw_only: bool, mode: MapMode, max_filters: int
) -> list[SequencePlan]:
    """Sequences (HwPr: passes) of `layers` with at most `max_filters` filters per CNP."""
    pool = _Pool(spec)
    alone: dict[NpType, int] = {}
    plans: list[SequencePlan] = []
    groups: list[list[LayerNeed]] = []  # passes of the open hardware sequence
    pending_input: list[LayerNeed] = []

    def close_hw() -> None:
        if groups:
            _close(plans[-1], groups, spec)
            groups.clear()

    def open_plan(backend: Backend) -> SequencePlan:
        close_hw()
        plan = SequencePlan(backend)
        plans.append(plan)
        return plan

    needs = [layer_need(layer, spec, max_filters) for layer in layers]
    for need in needs:
        if need.hw_ok and need.np_type not in (None, NpType.HRC):
            assert need.np_type is not None
            if need.np_type not in alone:
                alone[need.np_type] = pool.available([], need.np_type)
            if need.count > alone[need.np_type]:
                need.hw_reason = (
                    f"needs {need.count} {need.np_type.value}, {alone[need.np_type]} available"
                )
    for i in range(len(needs) - 1, -1, -1):  # backwards: software cascades up max pools
        need = needs[i]
        if need.hw_ok and pool_ends_sequence(
            need.layer, needs[i + 1] if i + 1 < len(needs) else None
        ):
            need.hw_reason = (
                "max pooling cannot end a sequence (the last layer, or one feeding a "
                "FullyConnected layer or a layer in software)"
            )
    for need in needs:  # akida refuses the model, hw_only or not, in every mode
        on_np = need.hw_ok and need.np_type is not None
        if on_np and (broken := v1_rules.register_violation(need.layer)):
            raise MappingError(
                f"{need.layer.name} cannot be mapped on {spec.name}: {broken} (BrainChip's "
                "mapper refuses it too; run it unmapped, or re-quantize it into range)"
            )
    for need in needs:
        layer = need.layer
        if need.np_type is None:
            pending_input.append(need)
            continue
        if not need.hw_ok:
            if hw_only:
                raise MappingError(
                    f"{layer.name} cannot run on {spec.name}: {need.hw_reason}; "
                    "map with hw_only=False to run it in software"
                )
            plan = (
                plans[-1]
                if plans and plans[-1].backend is Backend.Software
                else open_plan(Backend.Software)
            )
            plan.layers += [p.layer.name for p in pending_input] + [layer.name]
            pending_input.clear()
            continue
        if groups:
            current = groups[-1]
            trial = _demands([*current, need], {n.layer.name: n.count for n in [*current, need]})
            hrc_taken = need.np_type is NpType.HRC and any(n.np_type is NpType.HRC for n in current)
            if hrc_taken or pool.assign(trial) is None:
                if mode is MapMode.HwPr:
                    groups.append([])
                elif hw_only:
                    left = pool.available(
                        _demands(current, {n.layer.name: n.count for n in current}), need.np_type
                    )
                    raise MappingError(
                        f"{layer.name} needs {need.count} {need.np_type.value}, {left} available "
                        f"on {spec.name} after the layers before it; map with hw_only=False "
                        "to split into sequences, or use MapMode.HwPr"
                    )
                else:
                    open_plan(Backend.Hardware)
                    groups.append([])
        else:
            open_plan(Backend.Hardware)
            groups.append([])
        groups[-1].extend([*pending_input, need])
        plans[-1].layers += [p.layer.name for p in pending_input] + [layer.name]
        pending_input.clear()
    close_hw()
    if pending_input:
        plan = plans[-1] if plans else open_plan(Backend.Software)
        plan.layers += [p.layer.name for p in pending_input]
    if hw_only and len(plans) > 1:
        raise MappingError(f"model needs {len(plans)} sequences on {spec.name}; hw_only allows one")
    return plans
