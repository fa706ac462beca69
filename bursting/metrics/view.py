"""One immutable view of the controller after a cycle: what /metrics and /status read.

Built in the controller's thread from the cycle's report and the store, then swapped in whole,
so a scrape in another thread never sees half a cycle and never touches the controller's
database connection. `build_view` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bursting.config import Config
from bursting.cycle import CycleRecord
from bursting.metrics.labels import OTHER, shape_label
from bursting.model import Instance, PoolSnapshot, Quota
from bursting.policy.backoff import Backoff

TOP_SHAPES = 10
MB = 1024 * 1024


@dataclass(frozen=True)
class ShapeDemand:
    """Idle jobs of one shape label (or "other"): jobs, cores and memory they ask for."""

    shape: str
    jobs: int
    cores: int
    memory_bytes: int


@dataclass(frozen=True)
class FlavorBackoff:
    flavor: str
    failures: int
    until: float


@dataclass(frozen=True)
class CloudView:
    """One configured cloud as the last cycle left it."""

    name: str
    enabled: bool
    max_instances: int
    read: bool | None  # None: not read this cycle (disabled)
    error_class: str
    error: str
    quota: Quota | None
    backoffs: tuple[FlavorBackoff, ...]
    paused_until: float | None
    spend_per_hour: float
    spent: float
    flavor_cores: tuple[tuple[str, int], ...] = ()  # (flavor, cores) as configured


@dataclass(frozen=True)
class View:
    taken_at: float
    record: CycleRecord
    jobs: Mapping[str, int] | None  # idle/running/held; None when the pool was not read
    demand: tuple[ShapeDemand, ...]
    oldest_idle_since: float | None
    instances: tuple[Instance, ...]
    clouds: tuple[CloudView, ...]
    currency: str
    spend_cap_per_hour: float | None
    interval_seconds: float
    decisions: tuple[tuple[float, str, str, str, str, str], ...] = field(default=())


def demand_by_shape(pool: PoolSnapshot, top: int = TOP_SHAPES) -> tuple[ShapeDemand, ...]:
    """Idle demand per shape label, the `top` largest by jobs, the rest summed as "other"."""
    merged: dict[str, list[int]] = {}
    for demand in pool.demand:
        label = shape_label(demand.shape)
        row = merged.setdefault(label, [0, 0, 0])
        row[0] += demand.idle_jobs
        row[1] += demand.idle_jobs * demand.shape.cpus
        row[2] += demand.idle_jobs * demand.shape.memory_mb * MB
    ranked = sorted(merged.items(), key=lambda item: (-item[1][0], item[0]))
    rows = [ShapeDemand(label, *numbers) for label, numbers in ranked[:top]]
    rest = [numbers for _, numbers in ranked[top:]]
    if rest:
        rows.append(ShapeDemand(OTHER, *(sum(column) for column in zip(*rest, strict=True))))
    return tuple(rows)


def _jobs(pool: PoolSnapshot) -> dict[str, int]:
    return {
        "idle": sum(row.idle for row in pool.queue),
        "running": sum(row.running for row in pool.queue),
        "held": sum(row.held for row in pool.queue),
    }


def _oldest(pool: PoolSnapshot) -> float | None:
    return min((d.idle_since[0] for d in pool.demand if d.idle_since), default=None)


def build_view(
    config: Config,
    record: CycleRecord,
    pool: PoolSnapshot | None,
    quotas: Mapping[str, Quota | None],
    instances: Iterable[Instance],
    backoffs: Mapping[tuple[str, str], Backoff],
    paused_until: Mapping[str, float],
    decisions: Iterable[tuple[float, str, str, str, str, str]] = (),
) -> View:
    """The view of one completed cycle. `decisions` are (time, kind, cloud, instance, code,
    reason), newest first; ids appear in /status only, never in a metric label."""
    reads = {read.name: read for read in record.clouds}
    clouds = []
    for cloud in config.clouds:
        read = reads.get(cloud.name)
        clouds.append(
            CloudView(
                name=cloud.name,
                enabled=cloud.enabled,
                max_instances=cloud.max_instances,
                read=None if read is None else read.ok,
                error_class="" if read is None else read.error_class,
                error="" if read is None else read.error,
                quota=quotas.get(cloud.name),
                backoffs=tuple(
                    FlavorBackoff(flavor, b.failures, b.until)
                    for (name, flavor), b in sorted(backoffs.items())
                    if name == cloud.name
                ),
                paused_until=paused_until.get(cloud.name),
                spend_per_hour=record.spend_per_hour.get(cloud.name, 0.0),
                spent=record.spent.get(cloud.name, 0.0),
                flavor_cores=tuple((f.name, f.cpus) for f in cloud.flavors),
            )
        )
    return View(
        taken_at=record.started_at,
        record=record,
        jobs=None if pool is None else _jobs(pool),
        demand=() if pool is None else demand_by_shape(pool),
        oldest_idle_since=None if pool is None else _oldest(pool),
        instances=tuple(i for i in instances if i.state.live),
        clouds=tuple(clouds),
        currency=config.policy.spend.currency,
        spend_cap_per_hour=config.policy.spend.max_per_hour,
        interval_seconds=config.policy.interval_seconds,
        decisions=tuple(decisions),
    )
