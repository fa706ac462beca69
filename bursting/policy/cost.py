"""What a campaign cost: each job pays its worker flavor's price, shared by cores, for its wall
time; beside it, how much of its workers' paid time was busy with it. Pure.

A job that used 1 core of a 4-core flavor for 2 hours pays 2 x 1/4 of the flavor's hourly price.
Jobs that ran on nodes that are not burst workers (no machine attributes) are counted as
"unpriced". A flavor the config does not list is priced as the planner prices an adopted instance
of it: its cloud's dearest flavor, taken whole by the job (never free).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bursting.errors import UnknownCampaign
from bursting.model import (
    CAMPAIGN_PATTERN,
    CampaignJob,
    Flavor,
    Instance,
    InstanceState,
    JobState,
)

HOUR = 3600.0
UNPRICED = "unpriced"  # the line of jobs that ran on no burst worker, or on an unknown cloud
NO_FLAVOR = "-"


def check_campaign(name: str) -> str:
    """The campaign name if it is one the DAG could have set (bounded, safe in a constraint)."""
    if not re.fullmatch(CAMPAIGN_PATTERN, name):
        raise UnknownCampaign(
            f"campaign {name[:80]!r} is not a campaign name: 1-64 letters, digits, '_', '.' or "
            "'-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class CostLine:
    """One cloud/flavor's share of a campaign. `busy_share`: the campaign's core-time on the
    workers it ran on over those workers' paid core-time (None: the store knows none of them)."""

    cloud: str
    flavor: str
    jobs: int
    core_hours: float
    cost: float | None  # None for the unpriced line
    worker_cost: float | None = None  # what the workers it ran on cost over their lifetime
    busy_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "flavor": self.flavor,
            "jobs": self.jobs,
            "core_hours": round(self.core_hours, 6),
            "cost": None if self.cost is None else round(self.cost, 6),
            "worker_cost": None if self.worker_cost is None else round(self.worker_cost, 6),
            "busy_share": None if self.busy_share is None else round(self.busy_share, 6),
        }


@dataclass(frozen=True)
class CampaignCost:
    campaign: str
    currency: str
    lines: tuple[CostLine, ...]
    jobs: int
    done: int
    running: int
    failed: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cost(self) -> float:
        return sum(line.cost or 0.0 for line in self.lines)

    @property
    def core_hours(self) -> float:
        return sum(line.core_hours for line in self.lines)

    @property
    def unpriced_jobs(self) -> int:
        return sum(line.jobs for line in self.lines if line.cost is None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "currency": self.currency,
            "jobs": self.jobs,
            "done": self.done,
            "running": self.running,
            "failed": self.failed,
            "core_hours": round(self.core_hours, 6),
            "cost": round(self.cost, 6),
            "unpriced_jobs": self.unpriced_jobs,
            "lines": [line.to_dict() for line in self.lines],
            "notes": list(self.notes),
        }

    def text(self) -> str:
        """One line for a log: the total and the busy share of each priced line."""
        busy = ", ".join(
            f"{line.cloud}/{line.flavor} {line.busy_share:.0%} busy"
            for line in self.lines
            if line.busy_share is not None
        )
        unpriced = f", {self.unpriced_jobs} job(s) unpriced" if self.unpriced_jobs else ""
        return (
            f"campaign {self.campaign}: {self.jobs} job(s), {self.core_hours:.2f} core-hours, "
            f"cost {self.cost:.2f} {self.currency}{unpriced}" + (f" ({busy})" if busy else "")
        )


def paid_seconds(instance: Instance, now: float) -> float:
    """An instance is paid from its creation until it is gone (as spend.accrue counts it)."""
    end = instance.state_since if instance.state is InstanceState.GONE else now
    return max(0.0, end - instance.created_at)


def job_flavor(
    job: CampaignJob, clouds: Mapping[str, Sequence[Flavor]]
) -> tuple[Flavor | None, str | None]:
    """The flavor a job is priced at, and a note when it is a stand-in; None: unpriced."""
    if job.cloud is None or job.cloud not in clouds:
        return None, None if job.cloud is None else f"cloud {job.cloud!r} is not in the config"
    known = clouds[job.cloud]
    for flavor in known:
        if flavor.name == job.flavor:
            return flavor, None
    dearest = max((f.price_per_hour for f in known), default=0.0)
    return Flavor(job.flavor or NO_FLAVOR, 1, 1024, 0, 0, dearest), (
        f"flavor {job.flavor!r} of cloud {job.cloud!r} is not in the config: priced as the "
        "cloud's dearest flavor, whole"
    )


def campaign_cost(
    campaign: str,
    jobs: Sequence[CampaignJob],
    clouds: Mapping[str, Sequence[Flavor]],
    instances: Iterable[Instance],
    now: float,
    currency: str,
) -> CampaignCost:
    """Price every job of `campaign` and group by cloud and flavor; `instances` are the store's
    records (gone ones included) of the workers the jobs ran on, for the busy share."""
    check_campaign(campaign)
    if not jobs:
        raise UnknownCampaign(
            f"no job of campaign {campaign!r} in the queue or the history (names are "
            "case-sensitive; the schedd's history may have rotated)"
        )
    records = {i.id: i for i in instances}
    groups: dict[tuple[str, str], list[CampaignJob]] = {}
    costs: dict[tuple[str, str], float | None] = {}
    notes: list[str] = []
    for job in jobs:
        flavor, note = job_flavor(job, clouds)
        if note and note not in notes:
            notes.append(note)
        if flavor is None:
            key: tuple[str, str] = (UNPRICED, NO_FLAVOR)
            costs[key] = None
        else:
            key = (str(job.cloud), job.flavor or NO_FLAVOR)
            share = min(1.0, job.cpus / flavor.cpus)
            pay = flavor.price_per_hour * share * job.wall_seconds / HOUR
            costs[key] = (costs.get(key) or 0.0) + pay
        groups.setdefault(key, []).append(job)
    lines = tuple(
        _line(key, group, costs[key], records, now)
        for key, group in sorted(groups.items(), key=lambda item: (item[0][0] == UNPRICED, item[0]))
    )
    return CampaignCost(
        campaign,
        currency,
        lines,
        jobs=len(jobs),
        done=sum(1 for j in jobs if j.state.finished),
        running=sum(1 for j in jobs if j.state is JobState.RUNNING),
        failed=sum(1 for j in jobs if j.failed),
        notes=tuple(notes),
    )


def _line(
    key: tuple[str, str],
    jobs: list[CampaignJob],
    cost: float | None,
    records: Mapping[str, Instance],
    now: float,
) -> CostLine:
    core_hours = sum(j.cpus * j.wall_seconds for j in jobs) / HOUR
    if cost is None:
        return CostLine(key[0], key[1], len(jobs), core_hours, None)
    on = [
        (j, records[j.instance]) for j in jobs if j.instance is not None and j.instance in records
    ]
    if not on:
        return CostLine(key[0], key[1], len(jobs), core_hours, cost)
    workers = {i.id: i for _, i in on}
    paid_core_seconds = sum(i.cpus * paid_seconds(i, now) for i in workers.values())
    busy_core_seconds = sum(min(j.cpus, i.cpus) * j.wall_seconds for j, i in on)
    worker_cost = sum(i.price_per_hour * paid_seconds(i, now) / HOUR for i in workers.values())
    busy = min(1.0, busy_core_seconds / paid_core_seconds) if paid_core_seconds > 0 else None
    return CostLine(key[0], key[1], len(jobs), core_hours, cost, worker_cost, busy)
