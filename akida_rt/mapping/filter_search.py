"""The filters-per-CNP bound of AllNps and HwPr: BrainChip's search (akida/mapping.py's
_map_search) over any mapping function, and the order in which it ranks mappings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from akida_rt.errors import MappingError

Criteria = tuple[int, int, int, int]


def criteria(plans: Sequence[Any]) -> Criteria:
    """What akida's search compares: (layers on NPs, sequences, passes, NPs used)."""
    placed = sum(1 for p in plans for q in p.placements if q.np_type != "none")
    return placed, len(plans), sum(p.passes for p in plans), sum(p.np_count for p in plans)


def better(ref: Criteria | None, cur: Criteria | None) -> bool:
    """akida's _is_better_map: anything beats no reference mapping (even another failure),
    then mapped at all, more layers on NPs, fewer sequences, fewer passes, at least as many
    NPs."""
    if ref is None or cur is None:
        return ref is None
    for i, more_is_better in ((0, True), (1, False), (2, False)):
        if cur[i] != ref[i]:
            return (cur[i] > ref[i]) is more_is_better
    return cur[3] >= ref[3]


def bisect(map_at: Callable[[int], Sequence[Any]], top: int) -> int:
    """A bisection of (0, top] that keeps a bound when `map_at(bound)` maps at least as
    well (`better`). The bisection, not the smallest good bound: a one-channel Conv2D maps
    at some bounds and not at smaller or larger ones (np_memory.one_channel_split_ok), and
    akida keeps whichever its halvings reach (41 filters: one NP, although 14+14+13 maps).
    """

    def measure(max_filters: int) -> Criteria | None:
        try:
            return criteria(map_at(max_filters))
        except MappingError:
            return None

    best = measure(top)
    lo, hi, best_bound = 0, top, top
    while lo + 2 <= hi:
        cur = (lo + hi) // 2
        found = measure(cur)
        if better(best, found):
            best, best_bound, hi = found, cur, cur
        else:
            lo = cur
    return best_bound if best is not None else top
