"""One reconcile cycle's decisions, as a pure function of what was observed and what is stored.

observe (controller) -> plan_cycle (here, pure) -> act and persist (controller). Running the same
cycle twice, or after a crash, plans the same safe thing: everything is derived from the clouds,
the pool and the store, never from memory of the last cycle. plan_cycle runs named steps:
adopt or reap unknown instances, split demand into runnable and never-runnable, pick workers to
drain, advance every instance's lifecycle, absorb demand into existing room, grow the clouds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from bursting.config import Config
from bursting.lifecycle import Observation, Timeouts, Transition, next_state
from bursting.model import (
    Action,
    ActionKind,
    CloudInstance,
    CloudSnapshot,
    CloudStatus,
    Flavor,
    Instance,
    InstanceState,
    JobShape,
    PoolSnapshot,
    Quota,
    ReasonCode,
    Worker,
)
from bursting.policy.absence import absence_doubt
from bursting.policy.backoff import Backoff, after_failure
from bursting.policy.demand import eligible_demand
from bursting.policy.matching import Matcher, Mismatch
from bursting.policy.packing import Packer, Room
from bursting.policy.scale_down import plan_scale_down
from bursting.policy.scale_up import Budget, CloudView, plan_minimum, plan_scale_up
from bursting.policy.spend import budget_left

UNLIMITED_DISK_MB = 1 << 40
S = InstanceState


@dataclass
class CyclePlan:
    instances: list[Instance] = field(default_factory=list)  # every record to persist
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    backoff_changes: dict[tuple[str, str], Backoff | None] = field(default_factory=dict)
    unschedulable: dict[Mismatch, int] = field(default_factory=dict)  # jobs that never start


@dataclass(frozen=True)
class CycleInputs:
    """Everything one cycle plans from."""

    config: Config
    stored: list[Instance]
    backoffs: Mapping[tuple[str, str], Backoff]
    pool: PoolSnapshot | None
    clouds: Mapping[str, CloudSnapshot | None]
    now: float
    new_id: Callable[[str], str]
    matcher: Matcher
    spent_last_hour: Mapping[str, float] = field(default_factory=dict)
    paused_until: Mapping[str, float] = field(default_factory=dict)  # a cloud's retry_after


def instance_label(host: str) -> str:
    """`bx-1@vm` or `bx-1.novalocal` -> `bx-1`: execute nodes are named after their instance."""
    return host.split("@", 1)[0].split(".", 1)[0]


def flavor_table(config: Config) -> dict[tuple[str, str], Flavor]:
    return {(c.name, f.name): f.to_flavor() for c in config.clouds for f in c.flavors}


def matcher_for(config: Config) -> Matcher:
    """One matcher per config: its cache lives as long as the controller."""
    return Matcher(config.pool.id, {c.name: c.provides for c in config.clouds})


def plan_cycle(
    config: Config,
    stored: list[Instance],
    backoffs: Mapping[tuple[str, str], Backoff],
    pool: PoolSnapshot | None,
    clouds: Mapping[str, CloudSnapshot | None],
    now: float,
    new_id: Callable[[str], str],
    *,
    matcher: Matcher | None = None,
    spent_last_hour: Mapping[str, float] | None = None,
    paused_until: Mapping[str, float] | None = None,
) -> CyclePlan:
    inputs = CycleInputs(
        config,
        stored,
        backoffs,
        pool,
        clouds,
        now,
        new_id,
        matcher or matcher_for(config),
        spent_last_hour or {},
        paused_until or {},
    )
    plan = CyclePlan()
    _note_unreadable(inputs, plan)
    records = _adopt_or_reap(inputs, plan)
    demand = _runnable_demand(inputs, plan)
    to_drain = _choose_drains(inputs, records, demand)
    _advance_lifecycles(inputs, plan, records, to_drain)
    rest = _absorb_into_existing_room(inputs, plan, demand)
    _grow(inputs, plan, rest)
    return plan


# ----- steps -----
def _note_unreadable(inputs: CycleInputs, plan: CyclePlan) -> None:
    if inputs.pool is None:
        plan.notes.append("pool unreadable: no drain or delete based on it this cycle")
    elif (doubt := absence_doubt(inputs.pool, inputs.now)) is not None:
        plan.notes.append(f"absence is no evidence this cycle: {doubt}")
    for name, snap in sorted(inputs.clouds.items()):
        if snap is None:
            plan.notes.append(f"{name}: unreadable this cycle; nothing there is deleted")


def _our_workers(inputs: CycleInputs) -> dict[str | None, Worker]:
    ours = inputs.config.pool.id
    workers = inputs.pool.workers if inputs.pool else ()
    return {w.instance_id: w for w in workers if w.pool_id == ours}


def _adopt_or_reap(inputs: CycleInputs, plan: CyclePlan) -> list[Instance]:
    """Tagged instances the store does not know: adopt live workers, reap the rest after grace."""
    workers = _our_workers(inputs)
    known = {i.id for i in inputs.stored}
    for listing in (s for s in inputs.clouds.values() if s is not None):
        for seen in listing.instances:
            if seen.id in known:
                continue
            adopted, action = _adopt(inputs, seen, workers.get(seen.id))
            if adopted is not None:
                plan.instances.append(adopted)
                known.add(seen.id)
            if action is not None:
                plan.actions.append(action)
    return list(inputs.stored)


def _adopt(
    inputs: CycleInputs, seen: CloudInstance, worker: Worker | None
) -> tuple[Instance | None, Action | None]:
    flavor = flavor_table(inputs.config).get((seen.cloud, seen.flavor)) or _unknown_flavor(
        inputs.config, seen
    )
    now = inputs.now
    base = Instance(
        seen.id,
        seen.cloud,
        flavor.name,
        flavor.cpus,
        flavor.memory_mb,
        flavor.price_per_hour,
        S.RUNNING,
        now,
        seen.created_at,
    )
    if worker is not None:
        return replace(base, reason="adopted: tagged as ours and in the pool"), None
    if now - seen.created_at < inputs.config.policy.orphan_grace_seconds:
        return None, None
    pool = inputs.pool
    if pool is None or absence_doubt(pool, now) is not None:
        return None, None  # "no worker" is only evidence from a pool read we can trust
    orphan = replace(base, state=S.DELETING, reason="orphan: tagged as ours, unknown")
    action = Action(
        ActionKind.DELETE, seen.cloud, seen.id, seen.flavor, orphan.reason, code=ReasonCode.ORPHAN
    )
    return orphan, action


def _unknown_flavor(config: Config, seen: CloudInstance) -> Flavor:
    """A flavor the config does not list: priced as the cloud's dearest, never free."""
    known = [f.to_flavor() for c in config.clouds if c.name == seen.cloud for f in c.flavors]
    dearest = max((f.price_per_hour for f in known), default=0.0)
    return Flavor(seen.flavor, 1, 1024, 0, 0, dearest)


def _candidates(config: Config) -> list[tuple[str, Flavor]]:
    return [(c.name, f.to_flavor()) for c in config.clouds if c.enabled for f in c.flavors]


def _runnable_demand(inputs: CycleInputs, plan: CyclePlan) -> dict[JobShape, int]:
    """Jobs idle long enough that some flavor of some enabled cloud can run; the others are
    counted, with why, and start nothing."""
    pool = inputs.pool
    demand = eligible_demand(
        pool.demand if pool else (), inputs.config.policy.min_idle_seconds, inputs.now
    )
    candidates = _candidates(inputs.config)
    runnable: dict[JobShape, int] = {}
    for shape, count in demand.items():
        mismatch = inputs.matcher.why_not(shape, candidates)
        if mismatch is None:
            runnable[shape] = count
        else:
            plan.unschedulable[mismatch] = plan.unschedulable.get(mismatch, 0) + count
    for mismatch, jobs in sorted(plan.unschedulable.items(), key=lambda m: -m[1]):
        plan.notes.append(f"{jobs} idle job(s) can never start: {mismatch.text}")
    return runnable


def _choose_drains(
    inputs: CycleInputs, records: list[Instance], demand: Mapping[JobShape, int]
) -> dict[str, str]:
    config = inputs.config
    flavors = flavor_table(config)

    def could_run(shape: JobShape, instance: Instance) -> bool:
        flavor = flavors.get((instance.cloud, instance.flavor))
        return flavor is not None and inputs.matcher.can_run(shape, instance.cloud, flavor)

    return plan_scale_down(
        records,
        flavors,
        {name for name, snap in inputs.clouds.items() if snap is not None},
        inputs.pool is not None,
        demand,
        config.policy.idle_seconds,
        {c.name: c.min_instances for c in config.clouds},
        inputs.now,
        could_run,
    )


def _advance_lifecycles(
    inputs: CycleInputs, plan: CyclePlan, records: list[Instance], to_drain: Mapping[str, str]
) -> None:
    policy = inputs.config.policy
    limits = Timeouts(
        policy.boot_timeout_seconds,
        policy.join_timeout_seconds,
        policy.drain_timeout_seconds,
        policy.missing_cycles_before_gone,
    )
    pool, now = inputs.pool, inputs.now
    workers = _our_workers(inputs)
    busy = {instance_label(h) for h in (pool.busy_hosts if pool else ())}
    trusted = pool is not None and absence_doubt(pool, now) is None
    listed = {name: snap.by_id() for name, snap in inputs.clouds.items() if snap is not None}
    for instance in records:
        worker = workers.get(instance.id)
        observed = Observation(
            cloud_known=instance.cloud in listed,
            seen=listed.get(instance.cloud, {}).get(instance.id),
            pool_known=pool is not None,
            worker=worker,
            busy_elsewhere=instance.id in busy,
            drain_wanted=instance.id in to_drain,
            absence_trusted=trusted,
        )
        step = next_state(instance, observed, now, limits)
        after = step.instance
        if after.state is S.DRAINING and instance.id in to_drain:
            after = replace(after, reason=to_drain[instance.id])
        plan.instances.append(after)
        _track_backoff(inputs, plan, instance, step)
        if step.action is not None:
            plan.actions.append(
                Action(
                    step.action,
                    instance.cloud,
                    instance.id,
                    instance.flavor,
                    after.reason,
                    worker.name if worker else "",
                    reason_code(instance, step, observed),
                )
            )


def _track_backoff(
    inputs: CycleInputs, plan: CyclePlan, before: Instance, step: Transition
) -> None:
    key = (before.cloud, before.flavor)
    backoff = inputs.config.policy.backoff
    if step.failed:
        plan.backoff_changes[key] = after_failure(
            inputs.backoffs.get(key), inputs.now, backoff.initial_seconds, backoff.max_seconds
        )
    elif (
        step.instance.state is S.RUNNING
        and before.state is not S.RUNNING
        and key in inputs.backoffs
    ):
        plan.backoff_changes[key] = None  # a success resets the backoff


def reason_code(before: Instance, step: Transition, seen: Observation) -> ReasonCode:
    """The fixed-set code of a lifecycle action, from where the instance was and went."""
    after, kind = step.instance.state, step.action
    errored = seen.seen is not None and seen.seen.status is CloudStatus.ERROR
    if kind is ActionKind.CREATE:
        return ReasonCode.CREATE_UNCONFIRMED
    if kind is ActionKind.DRAIN:
        return ReasonCode.DRAIN_AGAIN if before.state is S.DRAINING else ReasonCode.IDLE
    if before.state in (S.DELETING, S.FAILED):
        return ReasonCode.CLEANUP
    if after is S.FAILED:
        if before.state is S.RUNNING:
            return ReasonCode.CLOUD_ERROR
        if errored:
            return ReasonCode.BOOT_FAILED
        return ReasonCode.JOIN_TIMEOUT if before.state is S.JOINING else ReasonCode.BOOT_TIMEOUT
    if before.state is S.DRAINING:
        present = seen.worker is not None or seen.busy_elsewhere
        return ReasonCode.DRAIN_TIMEOUT if present else ReasonCode.DRAINED
    return ReasonCode.WORKER_LOST


def _absorb_into_existing_room(
    inputs: CycleInputs, plan: CyclePlan, demand: Mapping[JobShape, int]
) -> dict[JobShape, int]:
    """Free room on our running workers and capacity still booting take what they could run:
    each (cloud, flavor) group only the shapes that match it."""
    if inputs.pool is None or not demand:
        return {}
    flavors = flavor_table(inputs.config)
    by_id = {i.id: i for i in plan.instances if i.state.live}
    rooms: dict[tuple[str, str], list[Room]] = {}
    for worker in _our_workers(inputs).values():
        instance = by_id.get(worker.instance_id or "")
        if instance is not None and not worker.draining and worker.free_cpus > 0:
            room = Room(worker.free_cpus, worker.free_memory_mb, UNLIMITED_DISK_MB)
            rooms.setdefault((instance.cloud, instance.flavor), []).append(room)
    for instance in by_id.values():
        if instance.state.provisioning:
            room = Room(instance.cpus, instance.memory_mb, UNLIMITED_DISK_MB)
            rooms.setdefault((instance.cloud, instance.flavor), []).append(room)
    rest = dict(demand)
    for (cloud, name), group in sorted(rooms.items()):
        flavor = flavors.get((cloud, name))
        if flavor is None:
            continue
        matching = {s: n for s, n in rest.items() if inputs.matcher.can_run(s, cloud, flavor)}
        left = Packer(group).absorb(matching)
        for shape in matching:
            if shape in left:
                rest[shape] = left[shape]
            else:
                del rest[shape]
    return rest


def _cloud_views(inputs: CycleInputs, plan: CyclePlan) -> list[CloudView]:
    live = [i for i in plan.instances if i.state.live]
    leaving = (S.DRAINING, S.DELETING, S.FAILED)
    current = {**inputs.backoffs, **plan.backoff_changes}
    return [
        CloudView(
            name=c.name,
            enabled=c.enabled,
            priority=c.priority,
            readable=inputs.clouds.get(c.name) is not None,
            flavors=tuple(f.to_flavor() for f in c.flavors),
            max_instances=c.max_instances,
            max_concurrent_boots=c.max_concurrent_boots,
            live=sum(1 for i in live if i.cloud == c.name),
            booting=sum(1 for i in live if i.cloud == c.name and i.state.provisioning),
            quota=snap.quota if (snap := inputs.clouds.get(c.name)) is not None else Quota(),
            backoff={f: b for (cloud, f), b in current.items() if cloud == c.name and b},
            paused_until=inputs.paused_until.get(c.name),
            min_instances=c.min_instances,
            serving=sum(1 for i in live if i.cloud == c.name and i.state not in leaving),
        )
        for c in inputs.config.clouds
    ]


def _grow(inputs: CycleInputs, plan: CyclePlan, demand: Mapping[JobShape, int]) -> None:
    """New instances: first for demand, then to keep each cloud at its min_instances."""
    if inputs.pool is None:
        return
    live = [i for i in plan.instances if i.state.live]
    cap = inputs.config.policy.spend.max_per_hour
    budget = Budget(budget_left(cap, live, inputs.spent_last_hour))
    views = _cloud_views(inputs, plan)
    actions: list[Action] = []
    if demand:
        actions, notes, _ = plan_scale_up(
            demand, views, budget, inputs.now, inputs.new_id, inputs.matcher.can_run
        )
        plan.notes.extend(notes)
    opened = Counter(action.cloud for action in actions)
    views = [
        replace(
            v,
            live=v.live + (n := opened.get(v.name, 0)),
            booting=v.booting + n,
            serving=v.serving + n,
        )
        for v in views
    ]
    floor, notes = plan_minimum(views, budget, inputs.now, inputs.new_id)
    plan.notes.extend(notes)
    flavors = flavor_table(inputs.config)
    for action in (*actions, *floor):
        flavor = flavors[(action.cloud, action.flavor)]
        plan.instances.append(
            Instance(
                action.instance_id,
                action.cloud,
                flavor.name,
                flavor.cpus,
                flavor.memory_mb,
                flavor.price_per_hour,
                S.REQUESTED,
                inputs.now,
                inputs.now,
                reason=action.reason,
            )
        )
        plan.actions.append(action)
