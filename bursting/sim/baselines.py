"""What our controller is compared with on the same trace (`bursting simulate --compare`).

- static: a fixed pool of a given size that never grows or shrinks, our controller holding it
  (min_instances = max_instances on each cloud, in priority order, its cheapest flavor).
- cloudscheduler-style: the policy of UVic's cloudscheduler as its documentation describes it:
  one flavor per cloud, clouds in fixed priority order (price is not considered), enough new VMs
  to cover the idle jobs' cores less what is booting, at most `max_concurrent_boots` starting per
  cloud and `max_instances` per cloud, an idle VM retired after a keep-alive (our idle_seconds),
  a VM that failed or did not boot in time deleted. Job Requirements are not read: a job counts
  wherever its cores fit.
- clairvoyant: a lower bound on the cost of any policy that starts every job within a wait
  target, computed from the trace alone (see `clairvoyant_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bursting.config import CloudConfig, Config
from bursting.errors import CloudUnavailable, QuotaExceeded
from bursting.model import CloudStatus, Flavor, InstanceSpec
from bursting.sim.trace import TraceJob

HOUR = 3600.0


# ----- static -----
def cheapest(cloud: CloudConfig) -> Flavor:
    """The flavor our planner's floor uses: the cheapest, then the smallest."""
    return min(
        (f.to_flavor() for f in cloud.flavors),
        key=lambda f: (f.price_per_hour, f.cpus, f.memory_mb),
    )


def static_config(config: Config, cores: int) -> tuple[Config, dict[str, int]]:
    """The config of a static pool of about `cores` cores: clouds in priority order, each up to
    its max_instances of its cheapest flavor, held there (never drained)."""
    left, clouds, sizes = cores, [], {}
    for cloud in sorted(config.clouds, key=lambda c: (c.priority, c.name)):
        flavor = cheapest(cloud)
        count = 0
        if cloud.enabled and left > 0:
            count = min(cloud.max_instances, math.ceil(left / flavor.cpus))
            left -= count * flavor.cpus
        sizes[cloud.name] = count
        clouds.append(
            cloud.model_copy(
                update={
                    "min_instances": count,
                    "max_instances": count,
                    "max_concurrent_boots": max(1, cloud.max_concurrent_boots, count),
                    "enabled": cloud.enabled and count > 0,
                }
            )
        )
    policy = config.policy.model_copy(
        update={"spend": config.policy.spend.model_copy(update={"max_per_hour": None})}
    )
    return config.model_copy(update={"clouds": tuple(clouds), "policy": policy}), sizes


# ----- cloudscheduler-style -----
class CloudschedulerStyle:
    """A decider for the simulation loop, written from cloudscheduler's documented behaviour."""

    def __init__(self, sim: object) -> None:
        from bursting.sim.engine import Simulation

        assert isinstance(sim, Simulation)
        self.sim = sim
        self.config = sim.config
        self.order = sorted(
            (c for c in sim.config.clouds if c.enabled), key=lambda c: (c.priority, c.name)
        )
        self.flavor = {c.name: c.flavors[0].to_flavor() for c in self.order}  # one per cloud
        self.idle_since: dict[str, float] = {}
        self.count = 0
        self.store = None
        self.next_deadline = math.inf

    def cycle(self) -> None:
        sim, now = self.sim, self.sim.world.now
        policy = self.config.policy
        pool = sim.pool
        coming = 0
        for cloud in self.order:
            provider = sim.clouds[cloud.name]
            if provider.down():
                continue
            for instance in list(provider.instances.values()):
                age = now - instance.created_at
                if instance.status is CloudStatus.ERROR or (
                    instance.id not in pool.workers
                    and instance.status is not CloudStatus.DELETING
                    and age > policy.boot_timeout_seconds + policy.join_timeout_seconds
                ):
                    provider.delete(instance.id)
                elif (
                    instance.id not in pool.workers and instance.status is not CloudStatus.DELETING
                ):
                    coming += instance.flavor.cpus
                    sim.world.wake(
                        instance.created_at
                        + policy.boot_timeout_seconds
                        + policy.join_timeout_seconds
                        + 1
                    )
        self._retire_idle(now)
        free = sum(w.free_cpus for w in pool.workers.values() if not w.draining)
        deficit = self._waiting_cores(now) - free - coming
        for cloud in self.order:
            if deficit <= 0:
                break
            fitting = self._waiting_cores(now, self.flavor[cloud.name])
            deficit -= self._grow(cloud, min(deficit, fitting))
        if deficit > 0 or coming:
            sim.world.wake(now + policy.interval_seconds)

    def _waiting_cores(self, now: float, flavor: Flavor | None = None) -> int:
        """Cores of jobs idle long enough (only those whose cores and memory fit `flavor`)."""
        cutoff = now - self.config.policy.min_idle_seconds
        total = 0
        for shape, queue in self.sim.pool.queue.items():
            if flavor is not None and (
                shape.cpus > flavor.cpus or shape.memory_mb > flavor.memory_mb
            ):
                continue
            if queue.oldest() <= cutoff:
                total += shape.cpus * len(queue)
        return total

    def _grow(self, cloud: CloudConfig, deficit: int) -> int:
        provider, flavor = self.sim.clouds[cloud.name], self.flavor[cloud.name]
        if provider.down():
            return 0
        live = len(provider.instances)
        booting = sum(
            1
            for i in provider.instances.values()
            if i.id not in self.sim.pool.workers and i.status is not CloudStatus.DELETING
        )
        count = min(
            math.ceil(deficit / flavor.cpus),
            cloud.max_instances - live,
            cloud.max_concurrent_boots - booting,
        )
        made = 0
        for _ in range(max(0, count)):
            self.count += 1
            spec = InstanceSpec(f"cs-{cloud.name}-{self.count:06d}", "cs", cloud.name, flavor)
            try:
                provider.create(spec)
            except (QuotaExceeded, CloudUnavailable):
                break
            made += 1
        if made:
            self.sim.world.wake(self.sim.world.now + self.config.policy.interval_seconds)
        return made * flavor.cpus

    def _retire_idle(self, now: float) -> None:
        keep_alive = self.config.policy.idle_seconds
        for worker in list(self.sim.pool.workers.values()):
            if worker.running:
                self.idle_since.pop(worker.instance_id, None)
                continue
            since = self.idle_since.setdefault(worker.instance_id, now)
            if now - since >= keep_alive:
                provider = self.sim.clouds[worker.cloud]
                if not provider.down():
                    provider.delete(worker.instance_id)
                    self.idle_since.pop(worker.instance_id, None)
            else:
                self.sim.world.wake(since + keep_alive)


# ----- clairvoyant lower bound -----
@dataclass(frozen=True)
class Bound:
    cost: float
    wait_target: float
    window_seconds: float
    paid_core_hours: float
    price_per_core_hour: float
    free_cores: int

    def to_dict(self) -> dict[str, float]:
        return {
            "cost": self.cost,
            "wait_target_seconds": self.wait_target,
            "window_seconds": self.window_seconds,
            "paid_core_hours": self.paid_core_hours,
            "price_per_core_hour": self.price_per_core_hour,
            "free_cores": self.free_cores,
        }


WINDOWS = (HOUR, 6 * HOUR, 86400.0, 7 * 86400.0, 30 * 86400.0)


def clairvoyant_bound(config: Config, jobs: Sequence[TraceJob], wait_target: float) -> Bound:
    """No policy that starts every job within `wait_target` can pay less than this.

    Assumptions that only make it lower (so it stays a bound): instances boot instantly, cores
    are bought one at a time at the cheapest per-core price of any paid flavor, and every free
    cloud (price 0) is always there at its full size (max_instances x its largest flavor). Cut
    the timeline into disjoint windows of length L; a job submitted at s with run time r must run
    entirely inside [s, s + W + r], so if that interval lies inside a window, its core-seconds
    are spent inside the window. Whatever of a window's such work exceeds the free cores times L
    must be paid. Summing over windows gives a bound for every L; the largest of a few L (and two
    offsets each) is reported.
    """
    free = sum(
        c.max_instances * max(f.cpus for f in c.flavors)
        for c in config.clouds
        if c.enabled and all(f.price_per_hour == 0 for f in c.flavors)
    )
    paid = [
        f.price_per_hour / f.cpus
        for c in config.clouds
        if c.enabled
        for f in c.flavors
        if f.price_per_hour > 0
    ]
    if not paid or not jobs:
        return Bound(0.0, wait_target, 0.0, 0.0, 0.0, free)
    price = min(paid)
    origin = jobs[0].submit
    best, best_window = 0.0, 0.0
    for window in WINDOWS:
        for offset in (0.0, window / 2):
            work: dict[int, float] = {}
            for job in jobs:
                first = math.floor((job.submit - origin + offset) / window)
                last = math.floor(
                    (job.submit + wait_target + job.runtime - origin + offset) / window
                )
                if first == last:
                    work[first] = work.get(first, 0.0) + job.shape.cpus * job.runtime
            excess = sum(max(0.0, w - free * window) for w in work.values())
            if excess > best:
                best, best_window = excess, window
    return Bound(best / HOUR * price, wait_target, best_window, best / HOUR, price, free)
