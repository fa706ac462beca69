"""A simulated cloud: boots take a drawn delay, some fail, quotas refuse, outages silence the
API; every instance is billed from its create call until the cloud no longer lists it.

Each instance draws its delays and its fate from a generator seeded by (seed, instance id), so
the outcome does not depend on the order the controller's threads happen to call us in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bursting.config import CloudConfig
from bursting.errors import CloudUnavailable, QuotaExceeded
from bursting.model import CloudInstance, CloudSnapshot, CloudStatus, Flavor, InstanceSpec, Quota
from bursting.sim.pool import SimPool
from bursting.sim.settings import CloudSim, Outage
from bursting.sim.world import CLOUD_EVENT, World

HOUR = 3600.0


@dataclass
class SimInstance:
    id: str
    flavor: Flavor
    status: CloudStatus
    created_at: float
    fault: str | None = None


@dataclass
class Billing:
    """What one cloud charged: closed instances summed, live ones from their rates."""

    closed_cost: float = 0.0
    closed_core_seconds: float = 0.0
    rate: float = 0.0  # currency per hour of live instances
    rate_times_created: float = 0.0
    cores: int = 0
    cores_times_created: float = 0.0

    def cost_at(self, now: float) -> float:
        return self.closed_cost + (self.rate * now - self.rate_times_created) / HOUR

    def core_seconds_at(self, now: float) -> float:
        return self.closed_core_seconds + self.cores * now - self.cores_times_created


class SimCloud:
    """The CloudProvider seam, simulated."""

    def __init__(
        self,
        config: CloudConfig,
        sim: CloudSim,
        world: World,
        pool: SimPool,
        pool_id: str,
        seed: int,
        start: float,
        join_timeout: float = float("inf"),
        boot_timeout: float = float("inf"),
    ) -> None:
        self.name = config.name
        self.config = config
        self.sim = sim
        self.world = world
        self.pool = pool
        self.pool_id = pool_id
        self.seed = seed
        self.join_timeout = join_timeout
        self.boot_timeout = boot_timeout
        self._flavors = {f.name: f.to_flavor() for f in config.flavors}
        self.instances: dict[str, SimInstance] = {}
        self.billing = Billing()
        self.outages = [
            (start + o.start_hours * HOUR, start + (o.start_hours + o.duration_hours) * HOUR, o)
            for o in sim.outages
        ]
        self.boots = 0
        self.boots_failed = 0
        self.peak = 0
        self.lost = 0  # instances an outage took with it
        self.max_pending = 0  # most instances at once not yet in the pool (a boot storm's size)
        self.max_rate = 0.0  # highest spend rate (currency per hour) reached
        self.created: list[float] = []  # when each instance was asked for
        self._lock = world.lock  # one lock for pool and clouds: actions run in threads
        self._listing: CloudSnapshot | None = None
        for begin, end, outage in self.outages:
            self.world.at(begin, CLOUD_EVENT, f"{self.name}:outage", self._outage_begins(outage))
            self.world.at(end, CLOUD_EVENT, f"{self.name}:outage-end", self.world.wake)

    # ----- outages -----
    def down(self) -> bool:
        now = self.world.now
        return any(begin <= now < end for begin, end, _ in self.outages)

    def _outage_begins(self, outage: Outage) -> Callable[[], None]:
        def begin() -> None:
            self.world.wake()
            if outage.kills_instances:
                with self._lock:
                    for instance in list(self.instances.values()):
                        self.lost += 1
                        self._gone(instance.id)

        return begin

    def _refuse_if_down(self) -> None:
        if self.down():
            raise CloudUnavailable(f"{self.name}: simulated outage, the API does not answer")

    # ----- the seam -----
    def list_instances(self, pool_id: str) -> CloudSnapshot:
        self._refuse_if_down()
        with self._lock:
            if self._listing is None:
                self._listing = CloudSnapshot(
                    self.name,
                    self.world.now,
                    tuple(
                        CloudInstance(
                            i.id,
                            self.name,
                            i.flavor.name,
                            i.status,
                            i.created_at,
                            pool_id,
                            i.fault,
                        )
                        for i in self.instances.values()
                    ),
                    self.quota(),
                )
            return self._listing

    def quota(self) -> Quota:
        sim = self.sim
        live = list(self.instances.values())

        def left(limit: int | None, used: int) -> int | None:
            return None if limit is None else max(0, limit - used)

        return Quota(
            left(sim.quota_instances, len(live)),
            left(sim.quota_cores, sum(i.flavor.cpus for i in live)),
            left(sim.quota_memory_mb, sum(i.flavor.memory_mb for i in live)),
        )

    def flavors(self) -> tuple[Flavor, ...]:
        return tuple(self._flavors.values())

    def create(self, spec: InstanceSpec) -> CloudInstance:
        self._refuse_if_down()
        with self._lock:
            known = self.instances.get(spec.id)
            if known is None:
                known = self._create(spec)
            return CloudInstance(
                known.id,
                self.name,
                known.flavor.name,
                known.status,
                known.created_at,
                self.pool_id,
            )

    def _create(self, spec: InstanceSpec) -> SimInstance:
        flavor = self._flavors[spec.flavor.name]
        quota = self.quota()
        for left, need, what in (
            (quota.instances, 1, "instances"),
            (quota.cores, flavor.cpus, "cores"),
            (quota.memory_mb, flavor.memory_mb, "memory"),
        ):
            if left is not None and left < need:
                raise QuotaExceeded(f"{self.name}: quota exceeded ({what})")
        now = self.world.now
        rng = random.Random(f"{self.seed}:{self.name}:{spec.id}")
        boot = self.sim.boot_seconds.draw(rng)
        fails = rng.random() < self.sim.boot_failure_rate
        join = self.sim.join_seconds.draw(rng)
        instance = SimInstance(spec.id, flavor, CloudStatus.BUILD, now)
        self.instances[spec.id] = instance
        self.boots += 1
        self.created.append(now)
        bill = self.billing
        bill.rate += flavor.price_per_hour
        bill.rate_times_created += flavor.price_per_hour * now
        bill.cores += flavor.cpus
        bill.cores_times_created += flavor.cpus * now
        self.peak = max(self.peak, len(self.instances))
        self.max_rate = max(self.max_rate, bill.rate)
        pending = sum(
            1
            for i in self.instances.values()
            if i.status is not CloudStatus.DELETING and i.id not in self.pool.workers
        )
        self.max_pending = max(self.max_pending, pending)
        self._listing = None
        if boot + join > 0.9 * self.boot_timeout:
            # Slow enough for the boot timeout to matter: the controller must see it listed
            # (REQUESTED -> BOOTING) at its next tick, as it would for real.
            self.world.wake()
        self.world.at(now + boot, CLOUD_EVENT, spec.id, lambda: self._booted(spec.id, fails, join))
        return instance

    def _booted(self, instance_id: str, fails: bool, join: float) -> None:
        with self._lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.status is not CloudStatus.BUILD:
                return
            self._listing = None
            if fails:
                self.boots_failed += 1
                instance.status, instance.fault = CloudStatus.ERROR, "simulated boot failure"
                self.world.wake()
                return
            instance.status = CloudStatus.ACTIVE
            # ACTIVE alone changes no decision (BOOTING and JOINING are both capacity coming),
            # and the cycle that sees the worker join moves it through JOINING to RUNNING. Only
            # a join slower than the join timeout needs the JOINING clock started on time.
            if join > self.join_timeout:
                self.world.wake()
            when = self.world.now + join
            self.world.at(when, CLOUD_EVENT, instance_id + ":join", lambda: self._join(instance_id))

    def _join(self, instance_id: str) -> None:
        with self._lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.status is not CloudStatus.ACTIVE:
                return
            self.pool.join(instance_id, self.name, instance.flavor, self.pool_id)

    def delete(self, instance_id: str) -> None:
        self._refuse_if_down()
        with self._lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.status is CloudStatus.DELETING:
                return
            instance.status = CloudStatus.DELETING
            self._listing = None
            self.pool.lose(instance_id)  # the startd dies with its machine
            rng = random.Random(f"{self.seed}:{self.name}:{instance_id}:delete")
            when = self.world.now + self.sim.delete_seconds.draw(rng)
            self.world.at(when, CLOUD_EVENT, instance_id + ":gone", lambda: self._gone(instance_id))

    def _gone(self, instance_id: str) -> None:
        with self._lock:
            instance = self.instances.pop(instance_id, None)
            if instance is None:
                return
            self.pool.lose(instance_id)
            now, flavor, bill = self.world.now, instance.flavor, self.billing
            lived = now - instance.created_at
            bill.closed_cost += flavor.price_per_hour * lived / HOUR
            bill.closed_core_seconds += flavor.cpus * lived
            bill.rate -= flavor.price_per_hour
            bill.rate_times_created -= flavor.price_per_hour * instance.created_at
            bill.cores -= flavor.cpus
            bill.cores_times_created -= flavor.cpus * instance.created_at
            self._listing = None
            self.world.wake()

    def capacity(self) -> tuple[int, int]:
        """(cores of workers in the pool, cores of every listed instance) on this cloud."""
        joined = sum(w.flavor.cpus for w in self.pool.workers.values() if w.cloud == self.name)
        return joined, self.billing.cores
