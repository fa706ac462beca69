"""The Campaign tab's content for one DAG run: the progress of its HTCondor cluster, the jobs
that need a look (held, failed) with why, which clouds ran it, its cost so far, its results.
`campaign_facts` is pure; `read_campaign` and `result_files` do the reading."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from bursting.config import Config, load_config
from bursting.model import CampaignJob, ClusterStatus, JobState
from bursting.policy.cost import CampaignCost
from bursting.ui.runs import RunFacts

MAX_PROBLEMS = 50
PLOT_SUFFIX = ".png"
DOWNLOADS = ("summary.json", "merged.root")


class CampaignPool(Protocol):
    """What the tab reads from the pool (the provider hook's HTCondorPool has it)."""

    def job_status(self, cluster_id: int) -> ClusterStatus: ...

    def find_cluster(self, attribute: str, value: str) -> int | None: ...

    def campaign_jobs(self, campaign: str, now: float | None = None) -> tuple[CampaignJob, ...]: ...


@dataclass(frozen=True)
class JobProblem:
    job_id: str
    state: str
    why: str


@dataclass(frozen=True)
class CloudShare:
    cloud: str
    flavor: str
    jobs: int
    core_hours: float
    cost: float | None


@dataclass(frozen=True)
class CampaignFacts:
    cluster_id: int
    total: int
    done: int
    running: int
    idle: int
    held: int
    failed: int
    problems: tuple[JobProblem, ...]
    clouds: tuple[CloudShare, ...]
    cost: float | None
    currency: str
    unpriced_jobs: int
    notes: tuple[str, ...] = field(default=())

    @property
    def percent_done(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def _problem(job: Any) -> JobProblem:
    if job.state is JobState.HELD:
        return JobProblem(job.job_id, "held", job.hold_reason or "no reason given")
    if job.state is JobState.REMOVED:
        return JobProblem(job.job_id, "removed", "removed from the queue")
    return JobProblem(job.job_id, "failed", f"exit code {job.exit_code}")


def campaign_facts(status: ClusterStatus, cost: CampaignCost | None) -> CampaignFacts:
    """The cluster's progress and problems, and the cost lines of its jobs."""
    failed = status.failed_jobs
    lines = cost.lines if cost is not None else ()
    return CampaignFacts(
        cluster_id=status.cluster_id,
        total=len(status.jobs),
        done=sum(1 for job in status.jobs if job.state is JobState.COMPLETED),
        running=status.count(JobState.RUNNING) + status.count(JobState.TRANSFERRING_OUTPUT),
        idle=status.count(JobState.IDLE),
        held=status.count(JobState.HELD),
        failed=sum(1 for job in failed if job.state is not JobState.HELD),
        problems=tuple(_problem(job) for job in failed[:MAX_PROBLEMS]),
        clouds=tuple(
            CloudShare(line.cloud, line.flavor, line.jobs, line.core_hours, line.cost)
            for line in lines
        ),
        cost=None if cost is None else cost.cost,
        currency="" if cost is None else cost.currency,
        unpriced_jobs=0 if cost is None else cost.unpriced_jobs,
        notes=() if cost is None else cost.notes,
    )


def task_key(run: RunFacts) -> str:
    """The key the submit operator gives its cluster (see bursting.airflow.operators.submit)."""
    return f"{run.dag_id}/generate/{run.run_id}/-1"


def load_prices(config_path: Path | None) -> tuple[Config, str | None]:
    """The controller's config for prices; a default one (every job unpriced) and a note when
    none is configured or it cannot be read."""
    if config_path is None:
        return Config(), "no controller config is set ([bursting] config_file): jobs are unpriced"
    try:
        return load_config(config_path), None
    except Exception as exc:  # the tab still shows the progress; the note says why no prices
        return Config(), f"the controller config could not be read ({type(exc).__name__})"


def read_campaign(
    pool: CampaignPool, run: RunFacts, config_path: Path | None, now: float | None = None
) -> CampaignFacts | None:
    """None when the run has not submitted its cluster yet."""
    from bursting.airflow.operators.submit import TASK_KEY_ATTRIBUTE
    from bursting.campaigns import price_list, stored_instances
    from bursting.policy.cost import campaign_cost

    cluster = run.cluster_id or pool.find_cluster(TASK_KEY_ATTRIBUTE, task_key(run))
    if cluster is None:
        return None
    status = pool.job_status(cluster)
    at = time.time() if now is None else now
    cost = None
    notes: list[str] = []
    if run.campaign is not None:
        mine = [
            job
            for job in pool.campaign_jobs(run.campaign, at)
            if job.job_id.split(".")[0] == str(cluster)
        ]
        config, note = load_prices(config_path)
        notes += [note] if note else []
        if mine:
            ids = {job.instance for job in mine if job.instance is not None}
            cost = campaign_cost(
                run.campaign,
                mine,
                price_list(config),
                stored_instances(config, ids),
                at,
                config.policy.spend.currency,
            )
    facts = campaign_facts(status, cost)
    return replace(facts, notes=(*facts.notes, *notes))


@dataclass(frozen=True)
class Results:
    """A published run's files the plugin serves, and the object-store copies' URLs."""

    folder: Path
    plots: tuple[str, ...]
    downloads: tuple[str, ...]
    objects: tuple[tuple[str, str], ...]  # (name, url)


def result_files(folder: Path | None) -> Results | None:
    """The results folder's plots and downloads; None if it is not (or no longer) there."""
    if folder is None or not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    objects: list[tuple[str, str]] = []
    summary = folder / "summary.json"
    try:
        for item in json.loads(summary.read_text()).get("objects") or []:
            if isinstance(item, dict) and str(item.get("url", "")).startswith(
                ("http://", "https://")
            ):
                objects.append((str(item.get("name", "")), str(item["url"])))
    except (OSError, ValueError, AttributeError):
        pass
    return Results(
        folder=folder,
        plots=tuple(n for n in names if n.endswith(PLOT_SUFFIX)),
        downloads=tuple(n for n in names if n in DOWNLOADS),
        objects=tuple(objects),
    )
