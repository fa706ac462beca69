"""One reconcile cycle's decisions, as a pure function of what was observed and what is stored.

observe (controller) -> plan_cycle (here, pure) -> act and persist (controller). Running the same
cycle twice, or after a crash, plans the same safe thing: everything is derived from the clouds,
the pool and the store, never from memory of the last cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from bursting.config import Config
from bursting.lifecycle import Observation, Timeouts, next_state
from bursting.model import (
    Action,
    ActionKind,
    CloudInstance,
    CloudSnapshot,
    Flavor,
    Instance,
    InstanceState,
    JobShape,
    PoolSnapshot,
    Quota,
    Worker,
)
from bursting.policy.backoff import Backoff, after_failure
from bursting.policy.demand import eligible_demand
from bursting.policy.packing import Packer, Room
from bursting.policy.scale_down import plan_scale_down
from bursting.policy.scale_up import Budget, CloudView, plan_scale_up

UNLIMITED_DISK_MB = 1 << 40


@dataclass
class CyclePlan:
    instances: list[Instance] = field(default_factory=list)  # every record to persist
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    backoff_changes: dict[tuple[str, str], Backoff | None] = field(default_factory=dict)


def instance_label(host: str) -> str:
    """`bx-1@vm` or `bx-1.novalocal` -> `bx-1`: execute nodes are named after their instance."""
    return host.split("@", 1)[0].split(".", 1)[0]


def flavor_table(config: Config) -> dict[tuple[str, str], Flavor]:
    return {(c.name, f.name): f.to_flavor() for c in config.clouds for f in c.flavors}


def _adopt(
    seen: CloudInstance,
    worker: Worker | None,
    flavors: Mapping[tuple[str, str], Flavor],
    now: float,
    grace: float,
) -> tuple[Instance | None, Action | None]:
    """A tagged instance the store does not know: adopt a live worker, reap the rest after grace."""
    flavor = flavors.get((seen.cloud, seen.flavor)) or Flavor(seen.flavor, 1, 1024)
    base = Instance(
        seen.id,
        seen.cloud,
        flavor.name,
        flavor.cpus,
        flavor.memory_mb,
        flavor.price_per_hour,
        InstanceState.RUNNING,
        now,
        seen.created_at,
    )
    if worker is not None:
        return replace(base, reason="adopted: tagged as ours and in the pool"), None
    if now - seen.created_at < grace:
        return None, None
    orphan = replace(base, state=InstanceState.DELETING, reason="orphan: tagged as ours, unknown")
    return orphan, Action(ActionKind.DELETE, seen.cloud, seen.id, seen.flavor, orphan.reason)


def plan_cycle(
    config: Config,
    stored: list[Instance],
    backoffs: Mapping[tuple[str, str], Backoff],
    pool: PoolSnapshot | None,
    clouds: Mapping[str, CloudSnapshot | None],
    now: float,
    new_id: Callable[[str], str],
) -> CyclePlan:
    policy = config.policy
    plan = CyclePlan()
    flavors = flavor_table(config)
    limits = Timeouts(
        policy.boot_timeout_seconds,
        policy.join_timeout_seconds,
        policy.drain_timeout_seconds,
        policy.missing_cycles_before_gone,
    )
    readable = {name for name, snap in clouds.items() if snap is not None}
    if pool is None:
        plan.notes.append("pool unreadable: no drain or delete based on it this cycle")
    for name in sorted(set(clouds) - readable):
        plan.notes.append(f"{name}: unreadable this cycle; nothing there is deleted")

    ours = config.pool.id
    workers = {w.instance_id: w for w in (pool.workers if pool else ()) if w.pool_id == ours}
    busy = {instance_label(h) for h in (pool.busy_hosts if pool else ())}
    known = {i.id for i in stored}
    records = list(stored)
    for listing in (s for s in clouds.values() if s is not None):
        for seen in listing.instances:
            if seen.id in known:
                continue
            adopted, action = _adopt(
                seen, workers.get(seen.id), flavors, now, policy.orphan_grace_seconds
            )
            if adopted is not None:
                plan.instances.append(adopted)
                known.add(seen.id)
            if action is not None:
                plan.actions.append(action)

    demand = eligible_demand(pool.demand if pool else (), policy.min_idle_seconds, now)
    to_drain = plan_scale_down(
        records,
        flavors,
        readable,
        pool is not None,
        demand,
        policy.idle_seconds,
        {c.name: c.min_instances for c in config.clouds},
        now,
    )
    listed = {name: snap.by_id() for name, snap in clouds.items() if snap is not None}
    for instance in records:
        by_id = listed.get(instance.cloud, {})
        worker = workers.get(instance.id)
        observed = Observation(
            cloud_known=instance.cloud in listed,
            seen=by_id.get(instance.id),
            pool_known=pool is not None,
            worker=worker,
            busy_elsewhere=instance.id in busy,
            drain_wanted=instance.id in to_drain,
        )
        step = next_state(instance, observed, now, limits)
        after = step.instance
        if after.state is InstanceState.DRAINING and instance.id in to_drain:
            after = replace(after, reason=to_drain[instance.id])
        plan.instances.append(after)
        key = (instance.cloud, instance.flavor)
        if step.failed:
            plan.backoff_changes[key] = after_failure(
                backoffs.get(key), now, policy.backoff.initial_seconds, policy.backoff.max_seconds
            )
        elif (
            after.state is InstanceState.RUNNING
            and instance.state is not InstanceState.RUNNING
            and key in backoffs
        ):
            plan.backoff_changes[key] = None  # a success resets the backoff
        if step.action is not None:
            plan.actions.append(
                Action(
                    step.action,
                    instance.cloud,
                    instance.id,
                    instance.flavor,
                    after.reason,
                    worker.name if worker else "",
                )
            )

    _plan_scale_up(config, plan, pool, clouds, backoffs, demand, flavors, now, new_id)
    return plan


def _plan_scale_up(
    config: Config,
    plan: CyclePlan,
    pool: PoolSnapshot | None,
    clouds: Mapping[str, CloudSnapshot | None],
    backoffs: Mapping[tuple[str, str], Backoff],
    demand: dict[JobShape, int],
    flavors: Mapping[tuple[str, str], Flavor],
    now: float,
    new_id: Callable[[str], str],
) -> None:
    if pool is None or not demand:
        return
    live = [i for i in plan.instances if i.state.live]
    rooms = [
        Room(w.free_cpus, w.free_memory_mb, UNLIMITED_DISK_MB)
        for w in pool.workers
        if not w.draining and w.free_cpus > 0
    ]
    rooms += [Room(i.cpus, i.memory_mb, UNLIMITED_DISK_MB) for i in live if i.state.provisioning]
    packer = Packer(rooms)
    rest = packer.absorb(demand)
    if not rest:
        return
    current = {**{k: v for k, v in backoffs.items()}, **plan.backoff_changes}
    views = [
        CloudView(
            name=c.name,
            enabled=c.enabled,
            priority=c.priority,
            readable=clouds.get(c.name) is not None,
            flavors=tuple(f.to_flavor() for f in c.flavors),
            max_instances=c.max_instances,
            max_concurrent_boots=c.max_concurrent_boots,
            live=sum(1 for i in live if i.cloud == c.name),
            booting=sum(1 for i in live if i.cloud == c.name and i.state.provisioning),
            quota=snap.quota if (snap := clouds.get(c.name)) is not None else Quota(),
            backoff={f: b for (cloud, f), b in current.items() if cloud == c.name and b},
        )
        for c in config.clouds
    ]
    cap = config.policy.spend.max_per_hour
    spent = sum(i.price_per_hour for i in live)
    budget = Budget(None if cap is None else max(0.0, cap - spent))
    actions, notes, _ = plan_scale_up(rest, packer, views, budget, now, new_id)
    plan.notes.extend(notes)
    for action in actions:
        flavor = flavors[(action.cloud, action.flavor)]
        plan.instances.append(
            Instance(
                action.instance_id,
                action.cloud,
                flavor.name,
                flavor.cpus,
                flavor.memory_mb,
                flavor.price_per_hour,
                InstanceState.REQUESTED,
                now,
                now,
                reason=action.reason,
            )
        )
        plan.actions.append(action)
