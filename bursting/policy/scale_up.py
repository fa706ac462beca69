"""Scale-up: a chain of named filters picks the clouds that may grow, one strategy orders them
(cluster-autoscaler's expander shape), then demand is packed onto the flavors that can run it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bursting.model import Action, ActionKind, Flavor, JobShape, Quota, ReasonCode
from bursting.policy.backoff import Backoff, blocked
from bursting.policy.packing import Packer, by_size

Runnable = Callable[[JobShape, str, Flavor], bool]


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
    paused_until: float | None = None  # the cloud asked us to wait (retry_after)
    min_instances: int = 0
    serving: int = 0  # live and not on their way out: what min_instances counts


@dataclass(frozen=True)
class Candidate:
    cloud: CloudView
    flavors: tuple[Flavor, ...]
    headroom: int


# ----- the filter chain: each filter says why a cloud may not grow now, or None -----
def _enabled(cloud: CloudView, now: float) -> str | None:
    return None if cloud.enabled else "disabled"


def _readable(cloud: CloudView, now: float) -> str | None:
    return None if cloud.readable else "could not be read this cycle"


def _not_paused(cloud: CloudView, now: float) -> str | None:
    if cloud.paused_until is not None and now < cloud.paused_until:
        return f"asked us to retry after {cloud.paused_until - now:.0f}s"
    return None


def _quota_known(cloud: CloudView, now: float) -> str | None:
    return None if cloud.quota.known else "its quota is unknown this cycle"


def _flavors_not_backing_off(cloud: CloudView, now: float) -> str | None:
    if usable_flavors(cloud, now):
        return None
    return "every flavor is backing off after failed boots"


def _headroom(cloud: CloudView, now: float) -> str | None:
    limits = _limits(cloud)
    if min(limits.values()) > 0:
        return None
    which = next(name for name, left in limits.items() if left <= 0)
    return f"no headroom ({which})"


FILTERS: tuple[tuple[str, Callable[[CloudView, float], str | None]], ...] = (
    ("enabled", _enabled),
    ("readable", _readable),
    ("not_paused", _not_paused),
    ("quota_known", _quota_known),
    ("flavors_not_backing_off", _flavors_not_backing_off),
    ("headroom", _headroom),
)


def usable_flavors(cloud: CloudView, now: float) -> tuple[Flavor, ...]:
    return tuple(f for f in cloud.flavors if not blocked(cloud.backoff.get(f.name), now))


def _limits(cloud: CloudView) -> dict[str, int]:
    limits = {
        "quota": cloud.quota.instances if cloud.quota.instances is not None else 1 << 30,
        "max_instances": cloud.max_instances - cloud.live,
        "max_concurrent_boots": cloud.max_concurrent_boots - cloud.booting,
    }
    return limits


def rejection(cloud: CloudView, now: float) -> str | None:
    """The first filter of the chain that rejects the cloud, with its reason."""
    for _, check in FILTERS:
        reason = check(cloud, now)
        if reason is not None:
            return reason
    return None


# ----- the strategy: one ordering of the clouds that passed -----
def cheapest_core(flavors: Sequence[Flavor]) -> float:
    return min(f.price_per_hour / f.cpus for f in flavors)


def priority_then_price(candidate: Candidate) -> tuple[int, float, str]:
    """Private clouds first (lower priority number), then the cheapest core, then by name."""
    return (candidate.cloud.priority, cheapest_core(candidate.flavors), candidate.cloud.name)


def choose_clouds(clouds: Sequence[CloudView], now: float) -> tuple[list[Candidate], list[str]]:
    """Filters first, then the strategy."""
    candidates, notes = [], []
    for cloud in clouds:
        reason = rejection(cloud, now)
        if reason:
            notes.append(f"{cloud.name}: skipped, {reason}")
            continue
        headroom = min(_limits(cloud).values())
        candidates.append(Candidate(cloud, usable_flavors(cloud, now), headroom))
    candidates.sort(key=priority_then_price)
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


@dataclass
class _Allowance:
    """What one cloud still allows this cycle: instances, quota cores and memory, the budget."""

    cloud: CloudView
    budget: Budget
    instances: int
    cores: int = 0
    memory_mb: int = 0

    def affordable(self, flavor: Flavor, wanted: int) -> int:
        limits = [wanted, self.instances]
        quota = self.cloud.quota
        if quota.cores is not None:
            limits.append((quota.cores - self.cores) // flavor.cpus)
        if quota.memory_mb is not None:
            limits.append((quota.memory_mb - self.memory_mb) // flavor.memory_mb)
        return self.budget.affordable(flavor, max(0, min(limits)))

    def opened(self, flavor: Flavor, count: int) -> None:
        self.budget.spend(flavor, count)
        self.instances -= count
        self.cores += flavor.cpus * count
        self.memory_mb += flavor.memory_mb * count


def _groups_by_flavors(
    demand: Mapping[JobShape, int], cloud: str, flavors: Sequence[Flavor], runnable: Runnable
) -> list[tuple[tuple[Flavor, ...], dict[JobShape, int]]]:
    """Shapes grouped by the flavors of this cloud that can run them (largest shapes first);
    shapes no flavor here can run are left out."""
    groups: dict[tuple[Flavor, ...], dict[JobShape, int]] = {}
    for shape in sorted(demand, key=by_size, reverse=True):
        fitting = tuple(f for f in flavors if runnable(shape, cloud, f))
        if fitting:
            groups.setdefault(fitting, {})[shape] = demand[shape]
    return list(groups.items())


def _resources_only(shape: JobShape, cloud: str, flavor: Flavor) -> bool:
    return True


def plan_scale_up(
    demand: Mapping[JobShape, int],
    clouds: Sequence[CloudView],
    budget: Budget,
    now: float,
    new_id: Callable[[str], str],
    runnable: Runnable | None = None,
) -> tuple[list[Action], list[str], dict[JobShape, int]]:
    """CREATE actions for the demand that existing and booting capacity could not absorb (the
    planner's step before this). Each shape goes only onto flavors that can run it (`runnable`:
    its Requirements against the flavor)."""
    remaining = dict(demand)
    actions: list[Action] = []
    candidates, notes = choose_clouds(clouds, now)
    runnable = runnable or _resources_only
    for candidate in candidates:
        if not remaining:
            break
        name = candidate.cloud.name
        allowance = _Allowance(candidate.cloud, budget, candidate.headroom)
        for flavors, group in _groups_by_flavors(remaining, name, candidate.flavors, runnable):
            if allowance.instances <= 0:
                break
            # A fresh packer per group: room left on a new bin is only for shapes that match it.
            packing = Packer().pack_new(
                group, flavors, allowance.instances, allowance.affordable, allowance.opened
            )
            reason = (
                f"{packing.placed} idle job(s) need room; {name} is next "
                f"(priority {candidate.cloud.priority})"
            )
            for new in packing.new_bins:
                actions.extend(
                    Action(
                        ActionKind.CREATE,
                        name,
                        new_id(name),
                        new.flavor.name,
                        reason,
                        code=ReasonCode.DEMAND,
                    )
                    for _ in range(new.count)
                )
            for shape in group:
                left = packing.unplaced.get(shape, 0)
                if left:
                    remaining[shape] = left
                else:
                    remaining.pop(shape, None)
    if remaining:
        jobs = sum(remaining.values())
        notes.append(f"{jobs} idle job(s) in {len(remaining)} shape(s) left without capacity")
    return actions, notes, remaining


def plan_minimum(
    clouds: Sequence[CloudView], budget: Budget, now: float, new_id: Callable[[str], str]
) -> tuple[list[Action], list[str]]:
    """CREATE actions that bring each cloud up to its `min_instances` (its smallest usable
    flavor, cheapest first), within the same filters, quota and budget as demand."""
    actions: list[Action] = []
    notes: list[str] = []
    for cloud in clouds:
        short = cloud.min_instances - cloud.serving
        if short <= 0:
            continue
        reason = rejection(cloud, now)
        if reason is not None:
            notes.append(f"{cloud.name}: below min_instances, not grown: {reason}")
            continue
        headroom = min(_limits(cloud).values())
        allowance = _Allowance(cloud, budget, headroom)
        flavors = sorted(
            usable_flavors(cloud, now), key=lambda f: (f.price_per_hour, f.cpus, f.memory_mb)
        )
        count = allowance.affordable(flavors[0], min(short, headroom))
        allowance.opened(flavors[0], count)
        text = f"{cloud.serving} serving < min_instances {cloud.min_instances}"
        actions += [
            Action(
                ActionKind.CREATE,
                cloud.name,
                new_id(cloud.name),
                flavors[0].name,
                text,
                code=ReasonCode.MIN_INSTANCES,
            )
            for _ in range(count)
        ]
        if count < short:
            notes.append(f"{cloud.name}: {short - count} below min_instances (quota or budget)")
    return actions, notes
