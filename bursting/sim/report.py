"""The figures of one simulated run: cost, paid and busy core-hours, waits, instances, failures.

JSON for machines (`to_dict`), a rich table for people (`tables`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from bursting.sim.engine import SimRun

HOUR = 3600.0


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class CloudFigures:
    cost: float
    paid_core_hours: float
    instances_started: int
    instances_peak: int
    boots_failed: int
    lost_in_outage: int


@dataclass(frozen=True)
class Report:
    """One policy's result on one trace; `name` says which policy."""

    name: str
    trace: str
    currency: str
    jobs: int
    jobs_run: int
    jobs_never_started: int
    jobs_nothing_could_run: dict[str, int]
    jobs_skipped: dict[str, int]
    cost: float
    paid_core_hours: float
    busy_core_hours: float
    busy_fraction: float | None
    wait_p50: float | None
    wait_p95: float | None
    wait_p99: float | None
    wait_max: float | None
    instances_peak: int
    boots_failed: int
    timeouts: int
    clouds: dict[str, CloudFigures]
    simulated_seconds: float
    wall_seconds: float
    speedup: float | None
    controller_cycles: int
    seed: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(run: SimRun, name: str, seed: int, notes: tuple[str, ...] = ()) -> Report:
    records = [r for r in run.pool.records if r is not None]
    waits = sorted(r.started_at - r.queued_at for r in records if r.started_at is not None)
    end = run.ended_at
    clouds = {
        cloud_name: CloudFigures(
            cloud.billing.cost_at(end),
            cloud.billing.core_seconds_at(end) / HOUR,
            cloud.boots,
            cloud.peak,
            cloud.boots_failed,
            cloud.lost,
        )
        for cloud_name, cloud in run.clouds.items()
    }
    paid = sum(c.paid_core_hours for c in clouds.values())
    busy = run.pool.busy_core_seconds / HOUR
    timeouts = 0
    if run.store is not None:
        timeouts = sum(1 for i in run.store.failed if "boot failed" not in i.reason)
    simulated = max(0.0, end - run.started_at)
    return Report(
        name=name,
        trace=run.trace.source,
        currency=run.config.policy.spend.currency,
        jobs=len(run.trace.jobs),
        jobs_run=len(waits),
        jobs_never_started=len(run.pool.jobs) - len(waits),
        jobs_nothing_could_run=dict(run.unrunnable),
        jobs_skipped=dict(run.trace.skipped),
        cost=sum(c.cost for c in clouds.values()),
        paid_core_hours=paid,
        busy_core_hours=busy,
        busy_fraction=busy / paid if paid > 0 else None,
        wait_p50=percentile(waits, 0.50),
        wait_p95=percentile(waits, 0.95),
        wait_p99=percentile(waits, 0.99),
        wait_max=waits[-1] if waits else None,
        instances_peak=_overall_peak(run),
        boots_failed=sum(c.boots_failed for c in clouds.values()),
        timeouts=timeouts,
        clouds=clouds,
        simulated_seconds=simulated,
        wall_seconds=run.wall_seconds,
        speedup=simulated / run.wall_seconds if run.wall_seconds > 0 else None,
        controller_cycles=run.cycles,
        seed=seed,
        notes=notes,
    )


def _overall_peak(run: SimRun) -> int:
    return max((count for _, count in run.instance_counts), default=0)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.1f}m"
    if seconds < 2 * 86400:
        return f"{seconds / HOUR:.1f}h"
    return f"{seconds / 86400:.1f}d"


def comparison_table(reports: list[Report]) -> Table:
    """Policies side by side, one column each."""
    table = Table("", *(r.name for r in reports), title=f"simulated: {reports[0].trace}")
    currency = reports[0].currency

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    row(f"cost {currency}", [f"{r.cost:,.2f}" for r in reports])
    row("paid core-hours", [f"{r.paid_core_hours:,.0f}" for r in reports])
    row(
        "busy",
        ["-" if r.busy_fraction is None else f"{r.busy_fraction:.0%}" for r in reports],
    )
    for label, key in (
        ("wait p50", "wait_p50"),
        ("wait p95", "wait_p95"),
        ("wait p99", "wait_p99"),
        ("wait max", "wait_max"),
    ):
        row(label, [_duration(getattr(r, key)) for r in reports])
    row("instances peak", [str(r.instances_peak) for r in reports])
    row("boots failed", [str(r.boots_failed) for r in reports])
    row("jobs run", [f"{r.jobs_run:,}" for r in reports])
    row("jobs never started", [f"{r.jobs_never_started:,}" for r in reports])
    row("jobs nothing could run", [f"{sum(r.jobs_nothing_could_run.values()):,}" for r in reports])
    return table


def tables(report: Report) -> list[Table]:
    """The summary and the per-cloud table of one run."""
    summary = comparison_table([report])
    summary.add_row("why nothing could run", _reasons(report.jobs_nothing_could_run))
    summary.add_row("jobs skipped (trace)", _reasons(report.jobs_skipped))
    summary.add_row("timeouts (boot/join)", str(report.timeouts))
    summary.add_row(
        "simulated / wall",
        f"{_duration(report.simulated_seconds)} in {report.wall_seconds:.1f}s "
        f"(x{report.speedup or 0:,.0f}, {report.controller_cycles:,} cycles)",
    )
    per_cloud = Table(
        "cloud",
        f"cost {report.currency}",
        "paid core-h",
        "started",
        "peak",
        "boots failed",
        "lost in outage",
        title="per cloud",
    )
    for name, cloud in report.clouds.items():
        per_cloud.add_row(
            name,
            f"{cloud.cost:,.2f}",
            f"{cloud.paid_core_hours:,.0f}",
            str(cloud.instances_started),
            str(cloud.instances_peak),
            str(cloud.boots_failed),
            str(cloud.lost_in_outage),
        )
    return [summary, per_cloud]


def _reasons(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return ", ".join(f"{n:,} {reason}" for reason, n in sorted(counts.items(), key=lambda i: -i[1]))
