"""The free NPs of one AKD1000 sequence (or pass), handed out per NP type in the order
BrainChip's mapper hands them out.
"""

from __future__ import annotations

from collections.abc import Iterable

from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType
from akida_rt.mapping.layer_needs import LayerNeed

# Order in which NP types are served: FNP2 first (the scarcest, no substitute), then the
# convolutions, then FNP3, which falls back to an FNP2 when the convolutions left no FNP3
# (BrainChip's mapper: seven 11-NP convolutions and a small classifier fill the 78 NPs of
# AKD1000 in AllNps; the classifier gets the leftover FNP2).
SERVE_ORDER = (NpType.FNP2, NpType.CNP2, NpType.CNP1, NpType.FNP3)
FALLBACK = {NpType.FNP3: NpType.FNP2}


class NpPool:
    """Free NPs of one sequence (or pass), handed out as BrainChip's mapper hands them out."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        counts = {t: spec.count(t) for t in NpType}
        # For a demand of type t, an NP's rank: those with the fewest other capabilities
        # first, then those whose other capabilities the mesh has most of, then mesh order
        # (akida.AKD1000(): convolutions take CNP1-only NPs, then CNP2, FNP3 and FNP2 NPs).
        rank = {
            (np_.ident, t): (
                len(np_.types) - 1,
                -min((counts[o] for o in np_.types if o is not t), default=0),
                i,
            )
            for i, np_ in enumerate(spec.nps)
            for t in np_.types
        }
        self._order = {
            t: sorted((n.ident for n in spec.nps if t in n.types), key=lambda i: rank[i, t])
            for t in NpType
        }

    def _fits(self, free: dict[NpId, frozenset[NpType]], t: NpType) -> list[NpId]:
        return [i for i in self._order[t] if i in free]

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
        """How many NPs of type t remain once `demands` are served: a bisection, as
        serving fewer NPs of t never leaves less for the demands served after it."""
        if self.assign([*demands, (t, 0)]) is None:
            return 0
        lo, hi = 0, len(self.spec.nps)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.assign([*demands, (t, mid)]) is None:
                hi = mid - 1
            else:
                lo = mid
        return lo


def demands(needs: Iterable[LayerNeed]) -> list[tuple[NpType, int]]:
    """(NP type, count) of each layer of `needs` that takes NPs (not the HRC)."""
    return [
        (n.np_type, n.count) for n in needs if n.np_type is not None and n.np_type is not NpType.HRC
    ]
