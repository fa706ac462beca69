"""Demand: idle jobs old enough to count, grouped by shape."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from bursting.model import Demand, JobShape


def eligible_demand(
    demand: Iterable[Demand], min_idle_seconds: float, now: float
) -> dict[JobShape, int]:
    """Jobs idle for at least `min_idle_seconds`; younger ones may still match existing slots."""
    cutoff = now - min_idle_seconds
    counts: dict[JobShape, int] = {}
    for entry in demand:
        count = bisect_right(entry.idle_since, cutoff)  # idle_since is sorted oldest first
        if count:
            counts[entry.shape] = counts.get(entry.shape, 0) + count
    return counts
