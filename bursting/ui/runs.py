"""What Airflow's database says of a campaign DAG's runs: the run, its campaign name, the
HTCondor cluster its `generate` task submitted and where `publish` put the results. Read-only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bursting.model import CAMPAIGN_PATTERN

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PLAN_TASK, GENERATE_TASK, PUBLISH_TASK = "plan", "generate", "publish"


@dataclass(frozen=True)
class RunFacts:
    dag_id: str
    run_id: str
    state: str
    started: datetime | None
    ended: datetime | None
    campaign: str | None
    cluster_id: int | None
    planned_jobs: int | None
    results: Path | None


def campaign_name(conf: dict[str, Any] | None, work_dir: object) -> str | None:
    """The run's campaign: its conf's `campaign`, else the folder `plan` made for it
    (<work root>/<campaign>/<run>); None if neither names a valid campaign."""
    candidates = [(conf or {}).get("campaign")]
    if isinstance(work_dir, str) and work_dir:
        candidates.append(Path(work_dir).parent.name)
    for name in candidates:
        if isinstance(name, str) and re.fullmatch(CAMPAIGN_PATTERN, name):
            return name
    return None


def _xcoms(session: Session, dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id.in_((PLAN_TASK, GENERATE_TASK, PUBLISH_TASK)),
            XComModel.map_index == -1,
        )
    )
    return {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_facts(session: Session, dag_id: str, run_id: str) -> RunFacts | None:
    """The run, or None if Airflow has no run of that id for that DAG."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if run is None:
        return None
    xcom = _xcoms(session, dag_id, run_id)
    results = xcom.get((PUBLISH_TASK, "return_value"))
    return RunFacts(
        dag_id=dag_id,
        run_id=run_id,
        state=str(run.state or "unknown"),
        started=run.start_date,
        ended=run.end_date,
        campaign=campaign_name(run.conf, xcom.get((PLAN_TASK, "work_dir"))),
        cluster_id=_int(xcom.get((GENERATE_TASK, "cluster_id"))),
        planned_jobs=_int(xcom.get((PLAN_TASK, "jobs"))),
        results=Path(results) if isinstance(results, str) and results else None,
    )


def recent_runs(session: Session, dag_id: str, limit: int = 10) -> list[RunFacts]:
    """The DAG's newest runs, newest first."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    ids = session.scalars(
        select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(limit)
    ).all()
    found = (run_facts(session, dag_id, run_id) for run_id in ids)
    return [facts for facts in found if facts is not None]
