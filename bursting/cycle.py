"""One record of each reconcile cycle: what it read, what it planned, what it did, how long.

The single source for the log, `bursting status`, metrics and the UI. It is an immutable value
that is stored as JSON, so readers in other threads or processes never touch the controller's
own database connection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bursting.model import Action, CloudSnapshot, Instance, PoolSnapshot
from bursting.planner import CyclePlan


@dataclass(frozen=True)
class SourceRead:
    """One source the cycle read (the pool, or one cloud): ok, or the error's class and text."""

    name: str
    ok: bool
    error_class: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class ActionRecord:
    """One planned action and what became of it: done, failed (error class kept), pending
    (still in flight when the cycle ended) or skipped (the previous call is still out)."""

    kind: str
    cloud: str
    instance_id: str
    flavor: str
    code: str
    reason: str
    outcome: str = "planned"
    error_class: str = ""
    error: str = ""


@dataclass(frozen=True)
class Unschedulable:
    """Idle jobs that no flavor of any usable cloud can run, grouped by why."""

    code: str
    jobs: int
    why: str


@dataclass(frozen=True)
class Transition:
    """One instance's state change this cycle, without its id: what boot and join latencies
    are measured from. `before` is "new" for a record first stored this cycle."""

    cloud: str
    flavor: str
    before: str
    after: str
    age: float  # seconds since the instance was created
    in_before: float  # seconds it spent in `before`


@dataclass(frozen=True)
class CycleRecord:
    started_at: float
    seconds: float
    pool: SourceRead
    clouds: tuple[SourceRead, ...]
    idle_jobs: int | None
    actions: tuple[ActionRecord, ...] = ()
    unschedulable: tuple[Unschedulable, ...] = ()
    notes: tuple[str, ...] = ()
    instances: dict[str, dict[str, int]] = field(default_factory=dict)  # cloud -> state -> n
    spend_per_hour: dict[str, float] = field(default_factory=dict)  # cloud -> current rate
    spent: dict[str, float] = field(default_factory=dict)  # cloud -> accrued total
    dry_run: bool = False
    transitions: tuple[Transition, ...] = ()

    def count(self, outcome: str) -> int:
        return sum(1 for action in self.actions if action.outcome == outcome)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CycleRecord:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            **{
                **raw,
                "pool": SourceRead(**raw["pool"]),
                "clouds": tuple(SourceRead(**c) for c in raw["clouds"]),
                "actions": tuple(ActionRecord(**a) for a in raw["actions"]),
                "unschedulable": tuple(Unschedulable(**u) for u in raw["unschedulable"]),
                "notes": tuple(raw["notes"]),
                "transitions": tuple(Transition(**t) for t in raw.get("transitions", ())),
            }
        )


def error_text(error: BaseException) -> str:
    """One line of an error for logs and records; the class is kept beside it."""
    return " ".join(str(error).split())[:300] or type(error).__name__


@dataclass
class CycleReport:
    """What one cycle saw and did, in the controller's own terms; `record` is the persisted,
    serialisable form every reader uses."""

    started_at: float
    pool: PoolSnapshot | None
    clouds: dict[str, CloudSnapshot | None]
    plan: CyclePlan
    reads: dict[str, SourceRead] = field(default_factory=dict)
    done: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, BaseException]] = field(default_factory=list)
    skipped: list[Action] = field(default_factory=list)
    record: CycleRecord | None = None
    before: list[Instance] = field(default_factory=list)  # the stored records it planned from


def _outcomes(report: CycleReport, dry_run: bool) -> tuple[ActionRecord, ...]:
    failed = {id(a): e for a, e in report.failed}
    done = {id(a) for a in report.done}
    skipped = {id(a) for a in report.skipped}

    def outcome(action: Action) -> ActionRecord:
        base = ActionRecord(
            action.kind.value,
            action.cloud,
            action.instance_id,
            action.flavor,
            action.code.value,
            action.reason,
        )
        if dry_run:
            return base
        if id(action) in failed:
            error = failed[id(action)]
            return replace(
                base, outcome="failed", error_class=type(error).__name__, error=error_text(error)
            )
        if id(action) in done:
            return replace(base, outcome="done")
        return replace(base, outcome="skipped" if id(action) in skipped else "pending")

    return tuple(outcome(a) for a in report.plan.actions)


def _instances(plan: CyclePlan) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    """Live instances per cloud and state, and what they cost per hour per cloud."""
    counts: dict[str, dict[str, int]] = {}
    rate: dict[str, float] = {}
    for instance in plan.instances:
        if instance.state.live:
            per_cloud = counts.setdefault(instance.cloud, {})
            per_cloud[instance.state.value] = per_cloud.get(instance.state.value, 0) + 1
            rate[instance.cloud] = rate.get(instance.cloud, 0.0) + instance.price_per_hour
    return counts, rate


def _transitions(report: CycleReport, now: float) -> tuple[Transition, ...]:
    """Every state change the plan made, timed against the stored record it replaced."""
    before = {i.id: i for i in report.before}
    changes = []
    for instance in report.plan.instances:
        old = before.get(instance.id)
        if old is not None and old.state is instance.state:
            continue
        changes.append(
            Transition(
                instance.cloud,
                instance.flavor,
                old.state.value if old is not None else "new",
                instance.state.value,
                max(0.0, now - instance.created_at),
                max(0.0, now - old.state_since) if old is not None else 0.0,
            )
        )
    return tuple(changes)


def build_record(
    report: CycleReport, now: float, spent: dict[str, float], dry_run: bool
) -> CycleRecord:
    """The immutable record of one cycle, from the controller's report."""
    counts, rate = _instances(report.plan)
    return CycleRecord(
        started_at=report.started_at,
        seconds=max(0.0, now - report.started_at),
        pool=report.reads.get("pool", SourceRead("pool", report.pool is not None)),
        clouds=tuple(
            report.reads.get(name, SourceRead(name, snap is not None))
            for name, snap in report.clouds.items()
        ),
        idle_jobs=report.pool.idle_jobs if report.pool is not None else None,
        actions=_outcomes(report, dry_run),
        unschedulable=tuple(
            Unschedulable(m.code.value, jobs, m.text)
            for m, jobs in sorted(report.plan.unschedulable.items(), key=lambda m: -m[1])
        ),
        notes=tuple(report.plan.notes),
        instances=counts,
        spend_per_hour=rate,
        spent=spent,
        dry_run=dry_run,
        transitions=_transitions(report, report.started_at),
    )
