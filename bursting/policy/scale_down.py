"""Scale-down: drain workers idle long enough and not needed; never on missing data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from bursting.model import Flavor, Instance, InstanceState, JobShape
from bursting.policy.packing import Room


def plan_scale_down(
    instances: Sequence[Instance],
    flavors: Mapping[tuple[str, str], Flavor],
    readable_clouds: set[str],
    pool_known: bool,
    demand: Mapping[JobShape, int],
    idle_seconds: float,
    min_instances: Mapping[str, int],
    now: float,
    could_run: Callable[[JobShape, Instance], bool] | None = None,
) -> dict[str, str]:
    """Instance id -> reason, for RUNNING workers to drain now. A worker is kept while idle jobs
    wait that it could run (`could_run`: their Requirements against its cloud and flavor)."""
    if not pool_known:
        return {}
    keep = Counter(i.cloud for i in instances if i.state in (InstanceState.RUNNING, *_COMING))
    candidates = [
        i
        for i in instances
        if i.state is InstanceState.RUNNING
        and i.cloud in readable_clouds
        and i.idle_since is not None
        and now - i.idle_since >= idle_seconds
    ]
    candidates.sort(key=lambda i: (-i.price_per_hour, i.idle_since or 0.0, i.id))
    chosen: dict[str, str] = {}
    for instance in candidates:
        if keep[instance.cloud] <= min_instances.get(instance.cloud, 0):
            continue
        flavor = flavors.get((instance.cloud, instance.flavor))
        if flavor and any(
            count
            and Room.of_flavor(flavor).fits(s)
            and (could_run is None or could_run(s, instance))
            for s, count in demand.items()
        ):
            continue  # idle jobs could run here: the negotiator may just not have matched yet
        keep[instance.cloud] -= 1
        idle = now - (instance.idle_since or now)
        chosen[instance.id] = f"idle for {idle:.0f}s (> {idle_seconds:.0f}s) and not needed"
    return chosen


_COMING = (InstanceState.REQUESTED, InstanceState.BOOTING, InstanceState.JOINING)
