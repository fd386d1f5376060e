"""The mapper: a pure function from (layers, DeviceSpec) to sequences of NP placements.

Layers are assigned to NPs within the per-NP memories; a model that does not fit is split
into sequences (chain-loaded per input) or, in HwPr mode, into passes of one sequence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from akida_rt.errors import MappingError
from akida_rt.format import v1_rules
from akida_rt.format.layers import Layer, LayerType, Pooling
from akida_rt.mapping import filter_search
from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType
from akida_rt.mapping.layer_needs import CNP_MAX_FILTERS, LayerNeed
from akida_rt.mapping.layer_needs import layer_need as layer_need
from akida_rt.mapping.np_pool import FALLBACK, NpPool, demands


class MapMode(enum.Enum):
    AllNps = "AllNps"  # spread over all NPs: throughput and latency
    HwPr = "HwPr"  # partial reconfiguration: passes instead of sequences
    Minimal = "Minimal"  # as few NPs as possible


class Backend(enum.Enum):
    Software = "Software"
    Hardware = "Hardware"


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


def _close(plan: SequencePlan, groups: list[list[LayerNeed]], spec: DeviceSpec) -> None:
    """Concrete NP ids for each pass."""
    pool = NpPool(spec)
    types = {np_.ident: np_.types for np_ in spec.nps}
    for pass_index, needs in enumerate(groups):
        ids = pool.assign(demands(needs)) or []
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
    pool = NpPool(spec)
    needs = [layer_need(layer, spec, max_filters) for layer in layers]
    _mark_software(needs, pool, spec)
    seqs = _Sequences(spec, pool, hw_only, mode)
    for need in needs:
        if need.np_type is None:
            seqs.pending_input.append(need)
        elif need.hw_ok:
            seqs.add_hardware(need)
        else:
            seqs.add_software(need)
    return seqs.finish()


def _mark_software(needs: list[LayerNeed], pool: NpPool, spec: DeviceSpec) -> None:
    """Give each layer that cannot run on `spec` its reason: more NPs of its type than the
    whole mesh has, or max pooling ending a sequence (cascading backwards); raise for a
    layer BrainChip's mapper refuses (hw_only or not, in every mode)."""
    alone: dict[NpType, int] = {}
    for need in needs:
        t = need.np_type
        if need.hw_ok and t is not None and t is not NpType.HRC:
            if t not in alone:
                alone[t] = pool.available([], t)
            if need.count > alone[t]:
                need.hw_reason = f"needs {need.count} {t.value}, {alone[t]} available"
    for i in range(len(needs) - 1, -1, -1):  # backwards: software cascades up max pools
        following = needs[i + 1] if i + 1 < len(needs) else None
        if needs[i].hw_ok and pool_ends_sequence(needs[i].layer, following):
            needs[i].hw_reason = (
                "max pooling cannot end a sequence (the last layer, or one feeding a "
                "FullyConnected layer or a layer in software)"
            )
    for need in needs:
        on_np = need.hw_ok and need.np_type is not None
        if on_np and (broken := v1_rules.register_violation(need.layer)):
            raise MappingError(
                f"{need.layer.name} cannot be mapped on {spec.name}: {broken} (BrainChip's "
                "mapper refuses it too; run it unmapped, or re-quantize it into range)"
            )


class _Sequences:
    """The sequences being built, layer by layer: hardware layers join the open hardware
    sequence (HwPr: a new pass of it) while the mesh can serve them."""

    def __init__(self, spec: DeviceSpec, pool: NpPool, hw_only: bool, mode: MapMode) -> None:
        self.spec, self.pool, self.hw_only, self.mode = spec, pool, hw_only, mode
        self.plans: list[SequencePlan] = []
        self.groups: list[list[LayerNeed]] = []  # passes of the open hardware sequence
        self.pending_input: list[LayerNeed] = []  # input layers, placed with the next layer

    def _close_hw(self) -> None:
        if self.groups:
            _close(self.plans[-1], self.groups, self.spec)
            self.groups.clear()

    def _open(self, backend: Backend) -> SequencePlan:
        self._close_hw()
        self.plans.append(SequencePlan(backend))
        return self.plans[-1]

    def _take(self, need: LayerNeed | None = None) -> list[str]:
        names = [p.layer.name for p in self.pending_input]
        self.pending_input.clear()
        return names + ([need.layer.name] if need else [])

    def add_software(self, need: LayerNeed) -> None:
        if self.hw_only:
            raise MappingError(
                f"{need.layer.name} cannot run on {self.spec.name}: {need.hw_reason}; "
                "map with hw_only=False to run it in software"
            )
        last = self.plans[-1] if self.plans else None
        plan = last if last and last.backend is Backend.Software else self._open(Backend.Software)
        plan.layers += self._take(need)

    def add_hardware(self, need: LayerNeed) -> None:
        if not self.groups:
            self._open(Backend.Hardware)
            self.groups.append([])
        elif not self._fits(need):
            if self.mode is MapMode.HwPr:
                self.groups.append([])
            elif self.hw_only:
                assert need.np_type is not None
                left = self.pool.available(demands(self.groups[-1]), need.np_type)
                raise MappingError(
                    f"{need.layer.name} needs {need.count} {need.np_type.value}, {left} "
                    f"available on {self.spec.name} after the layers before it; map with "
                    "hw_only=False to split into sequences, or use MapMode.HwPr"
                )
            else:
                self._open(Backend.Hardware)
                self.groups.append([])
        self.groups[-1].extend([*self.pending_input, need])
        self.plans[-1].layers += self._take(need)

    def _fits(self, need: LayerNeed) -> bool:
        """Whether the open pass can take `need` too (one HRC, enough free NPs)."""
        current = self.groups[-1]
        if need.np_type is NpType.HRC and any(n.np_type is NpType.HRC for n in current):
            return False
        return self.pool.assign(demands([*current, need])) is not None

    def finish(self) -> list[SequencePlan]:
        self._close_hw()
        if self.pending_input:
            plan = self.plans[-1] if self.plans else self._open(Backend.Software)
            plan.layers += self._take()
        if self.hw_only and len(self.plans) > 1:
            raise MappingError(
                f"model needs {len(self.plans)} sequences on {self.spec.name}; hw_only allows one"
            )
        return self.plans
