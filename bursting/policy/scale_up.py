"""Scale-up: choose clouds by a chain of filters and one strategy, then pack demand onto them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bursting.model import Action, ActionKind, Flavor, JobShape, Quota
from bursting.policy.backoff import Backoff, blocked
from bursting.policy.packing import Packer


@dataclass(frozen=True)
class CloudView:
    """One cloud as planning sees it this cycle."""

    name: str
    enabled: bool
    priority: int
    readable: bool
    flavors: tuple[Flavor, ...]
    max_instances: int
    max_concurrent_boots: int
    live: int = 0  # our instances not yet gone
    booting: int = 0  # requested, booting or joining
    quota: Quota = field(default_factory=Quota)  # what the cloud still allows
    backoff: Mapping[str, Backoff] = field(default_factory=dict)  # by flavor name


@dataclass(frozen=True)
class Candidate:
    cloud: CloudView
    flavors: tuple[Flavor, ...]
    headroom: int


def _reject(cloud: CloudView, now: float) -> tuple[str | None, tuple[Flavor, ...], int]:
    """The filter chain: a reason to skip the cloud, or its usable flavors and headroom."""
    if not cloud.enabled:
        return "disabled", (), 0
    if not cloud.readable:
        return "could not be read this cycle", (), 0
    flavors = tuple(f for f in cloud.flavors if not blocked(cloud.backoff.get(f.name), now))
    if not flavors:
        return "every flavor is backing off after failed boots", (), 0
    limits = [cloud.max_instances - cloud.live, cloud.max_concurrent_boots - cloud.booting]
    if cloud.quota.instances is not None:
        limits.append(cloud.quota.instances)
    headroom = min(limits)
    if headroom <= 0:
        which = "max_instances" if limits[0] <= 0 else "max_concurrent_boots"
        if cloud.quota.instances is not None and cloud.quota.instances <= 0:
            which = "quota"
        return f"no headroom ({which})", (), 0
    return None, flavors, headroom


def cheapest_core(flavors: Sequence[Flavor]) -> float:
    return min(f.price_per_hour / f.cpus for f in flavors)


def choose_clouds(clouds: Sequence[CloudView], now: float) -> tuple[list[Candidate], list[str]]:
    """Filters first, then the strategy: priority, then price per core."""
    candidates, notes = [], []
    for cloud in clouds:
        reason, flavors, headroom = _reject(cloud, now)
        if reason:
            notes.append(f"{cloud.name}: skipped, {reason}")
        else:
            candidates.append(Candidate(cloud, flavors, headroom))
    candidates.sort(key=lambda c: (c.cloud.priority, cheapest_core(c.flavors), c.cloud.name))
    return candidates, notes


@dataclass
class Budget:
    """Spend per hour still allowed (None: no cap), shared by every cloud this cycle."""

    left_per_hour: float | None

    def affordable(self, flavor: Flavor, wanted: int) -> int:
        if self.left_per_hour is None or flavor.price_per_hour <= 0:
            return wanted
        return max(0, min(wanted, int(self.left_per_hour // flavor.price_per_hour)))

    def spend(self, flavor: Flavor, count: int) -> None:
        if self.left_per_hour is not None:
            self.left_per_hour -= flavor.price_per_hour * count


def _quota_limit(quota: Quota, used: list[int]) -> Callable[[Flavor, int], int]:
    """How many instances of a flavor the remaining core/memory quota allows."""

    def allowed(flavor: Flavor, wanted: int) -> int:
        limits = [wanted]
        if quota.cores is not None:
            limits.append((quota.cores - used[0]) // flavor.cpus)
        if quota.memory_mb is not None:
            limits.append((quota.memory_mb - used[1]) // flavor.memory_mb)
        return max(0, min(limits))

    return allowed


def plan_scale_up(
    demand: Mapping[JobShape, int],
    packer: Packer,
    clouds: Sequence[CloudView],
    budget: Budget,
    now: float,
    new_id: Callable[[str], str],
) -> tuple[list[Action], list[str], dict[JobShape, int]]:
    """CREATE actions for demand that existing and booting capacity cannot absorb."""
    remaining = dict(demand)
    actions: list[Action] = []
    candidates, notes = choose_clouds(clouds, now)
    for candidate in candidates:
        if not remaining:
            break
        used = [0, 0]
        quota_allows = _quota_limit(candidate.cloud.quota, used)

        def affordable(
            flavor: Flavor, wanted: int, quota_allows: Callable[[Flavor, int], int] = quota_allows
        ) -> int:
            return budget.affordable(flavor, quota_allows(flavor, wanted))

        def opened(flavor: Flavor, count: int, used: list[int] = used) -> None:
            budget.spend(flavor, count)
            used[0] += flavor.cpus * count
            used[1] += flavor.memory_mb * count

        packing = packer.pack_new(
            remaining, candidate.flavors, candidate.headroom, affordable, opened
        )
        reason = (
            f"{packing.placed} idle job(s) need room; {candidate.cloud.name} is next "
            f"(priority {candidate.cloud.priority})"
        )
        for new in packing.new_bins:
            actions.extend(
                Action(
                    ActionKind.CREATE,
                    candidate.cloud.name,
                    new_id(candidate.cloud.name),
                    new.flavor.name,
                    reason,
                )
                for _ in range(new.count)
            )
        remaining = packing.unplaced
    if remaining:
        jobs = sum(remaining.values())
        notes.append(f"{jobs} idle job(s) in {len(remaining)} shape(s) left without capacity")
    return actions, notes, remaining
