"""The Burst pool page's content from the controller's /status document and the pool's snapshot.
Pure: the same inputs give the same page, so the tests compare it with the sources."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bursting.metrics.labels import shape_label
from bursting.model import PoolSnapshot


@dataclass(frozen=True)
class QueueLine:
    shape: str
    idle: int
    running: int
    held: int


@dataclass(frozen=True)
class PoolFacts:
    """The pool as the hook read it: the queue by shape and the workers."""

    taken_at: float
    queue: tuple[QueueLine, ...]
    idle: int
    running: int
    held: int
    workers: int
    burst_workers: dict[str, int]  # cloud instance id -> slots, for workers of burst instances
    cores: int
    free_cores: int


def pool_facts(snapshot: PoolSnapshot) -> PoolFacts:
    lines: dict[str, list[int]] = {}
    for row in snapshot.queue:
        counts = lines.setdefault(shape_label(row.shape), [0, 0, 0])
        counts[0] += row.idle
        counts[1] += row.running
        counts[2] += row.held
    queue = tuple(
        QueueLine(shape, *counts)
        for shape, counts in sorted(lines.items(), key=lambda item: (-sum(item[1]), item[0]))
    )
    return PoolFacts(
        taken_at=snapshot.taken_at,
        queue=queue,
        idle=sum(line.idle for line in queue),
        running=sum(line.running for line in queue),
        held=sum(line.held for line in queue),
        workers=len(snapshot.workers),
        burst_workers={
            w.instance_id: w.slots for w in snapshot.workers if w.instance_id is not None
        },
        cores=sum(w.total_cpus for w in snapshot.workers),
        free_cores=sum(w.free_cpus for w in snapshot.workers),
    )


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def clock_text(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.localtime(at))


def quota_text(quota: dict[str, Any] | None) -> str:
    if quota is None:
        return "-"
    if not quota.get("known", True):
        return "unknown"
    parts = [
        f"{quota[key]} {label}"
        for key, label in (("instances", "instances"), ("cores", "cores"), ("memory_mb", "MB"))
        if quota.get(key) is not None
    ]
    return ", ".join(parts) or "unlimited"


@dataclass(frozen=True)
class CloudLine:
    name: str
    read: str
    ok: bool
    instances: int
    max_instances: int
    quota: str
    backoff: str
    spend_per_hour: float
    spent: float


@dataclass(frozen=True)
class InstanceGroup:
    cloud: str
    state: str
    count: int
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class StatusFacts:
    """What the page shows of the controller's /status document."""

    ready: bool
    reason: str
    cycle_started_at: float | None
    cycle_seconds: float | None
    jobs: dict[str, int] | None
    unschedulable: tuple[dict[str, Any], ...]
    groups: tuple[InstanceGroup, ...]
    per_cloud: dict[str, int]
    clouds: tuple[CloudLine, ...]
    decisions: tuple[dict[str, Any], ...]
    currency: str
    per_hour: float
    cap_per_hour: float | None
    total_spent: float
    notes: tuple[str, ...] = field(default=())


def _backoff_text(cloud: dict[str, Any]) -> str:
    parts = [
        f"{b['flavor']}: {b['failures']} failure(s), retry in {age_text(b['remaining_seconds'])}"
        for b in cloud.get("backoff") or []
    ]
    if cloud.get("retry_after_seconds"):
        parts.append(f"paused {age_text(cloud['retry_after_seconds'])}")
    return "; ".join(parts) or "-"


def status_facts(doc: dict[str, Any], decisions: int = 15) -> StatusFacts:
    cycle = doc.get("last_cycle") or {}
    groups = tuple(
        InstanceGroup(g["cloud"], g["state"], int(g["count"]), tuple(g["instances"]))
        for g in doc.get("instances") or []
    )
    per_cloud: dict[str, int] = {}
    for group in groups:
        per_cloud[group.cloud] = per_cloud.get(group.cloud, 0) + group.count
    clouds = []
    for c in doc.get("clouds") or []:
        read = {True: "ok", False: f"failed: {c.get('error_class') or 'error'}", None: "disabled"}
        clouds.append(
            CloudLine(
                name=c["name"],
                read=read[c.get("read")],
                ok=c.get("read") is not False,
                instances=per_cloud.get(c["name"], 0),
                max_instances=int(c.get("max_instances") or 0),
                quota=quota_text(c.get("quota")),
                backoff=_backoff_text(c),
                spend_per_hour=float(c.get("spend_per_hour") or 0.0),
                spent=float(c.get("spent") or 0.0),
            )
        )
    spend = doc.get("spend") or {}
    return StatusFacts(
        ready=bool(doc.get("ready")),
        reason=str(doc.get("reason") or ""),
        cycle_started_at=cycle.get("started_at"),
        cycle_seconds=cycle.get("seconds"),
        jobs=doc.get("jobs"),
        unschedulable=tuple(cycle.get("unschedulable") or ()),
        groups=groups,
        per_cloud=per_cloud,
        clouds=tuple(clouds),
        decisions=tuple((doc.get("decisions") or [])[:decisions]),
        currency=str(spend.get("currency") or ""),
        per_hour=float(spend.get("per_hour") or 0.0),
        cap_per_hour=spend.get("cap_per_hour"),
        total_spent=float(spend.get("total") or 0.0),
        notes=tuple(cycle.get("notes") or ()),
    )
