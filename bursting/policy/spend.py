"""Spend: accrued per cloud from instance lifetimes and prices; the hourly cap uses it. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bursting.model import Instance, InstanceState

HOUR = 3600.0


def accrue(instances: Iterable[Instance], since: float | None, now: float) -> dict[str, float]:
    """What each cloud's instances cost between `since` (the last accrual) and `now`. An
    instance costs from its creation until it is gone, whatever state it is in meanwhile."""
    amounts: dict[str, float] = {}
    for instance in instances:
        if instance.state is InstanceState.GONE or instance.price_per_hour <= 0:
            continue
        start = instance.created_at if since is None else max(since, instance.created_at)
        if now > start:
            cost = instance.price_per_hour * (now - start) / HOUR
            amounts[instance.cloud] = amounts.get(instance.cloud, 0.0) + cost
    return amounts


def budget_left(
    cap: float | None, live: Iterable[Instance], spent_last_hour: Mapping[str, float]
) -> float | None:
    """Per-hour spend still allowed for new instances: the cap less the larger of what live
    instances cost per hour and what was really spent in the last hour (boot churn counts)."""
    if cap is None:
        return None
    rate = sum(i.price_per_hour for i in live if i.state.live)
    return max(0.0, cap - max(rate, sum(spent_last_hour.values())))
