"""The logic behind the `mc_production` DAG: plan the job split, describe the generation cluster,
merge, validate and publish. The DAG file only declares tasks that call these."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bursting.image import IMAGE_PYTHON, PAYLOAD_ATTRIBUTE
from bursting.model import CAMPAIGN_ATTRIBUTE, CAMPAIGN_PATTERN, MACHINE_ATTRS
from bursting.physics.merge import merge
from bursting.physics.processes import Process
from bursting.physics.validate import validate
from bursting.results.rules import CONTAINER_PATTERN, container_problem

if TYPE_CHECKING:
    from bursting.policy.cost import CampaignCost
    from bursting.results.base import ObjectStore
    from bursting.results.settings import StoreSettings

log = logging.getLogger(__name__)
# The submit side's directory (the schedd's): jobs never see it, their files are transferred.
WORK_ROOT = Path("/var/tmp/bursting/campaigns")
MAX_JOBS = 10_000
CAMPAIGN_NAME = re.compile(CAMPAIGN_PATTERN)
# The Airflow connection naming the object store results are uploaded to (its extra: a
# clouds.yaml entry, and optionally the file, a default container, the segment size).
RESULTS_CONN_ID = "openstack_results"
# The DAG param's pattern: empty (no upload, unless the connection names a container) or a name
# both Swift and S3 accept.
RESULTS_CONTAINER_PARAM_PATTERN = f"^$|{CONTAINER_PATTERN}"


class CampaignError(ValueError):
    """A campaign parameter is invalid; the message names it and says what is allowed."""


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)


def plan_split(params: dict[str, Any], run_id: str, work_root: Path = WORK_ROOT) -> dict[str, Any]:
    """Check the params together and split the campaign into jobs (one itemdata row each)."""
    try:
        process = Process(params["process"])
    except (KeyError, ValueError):
        raise CampaignError(
            f"param 'process' must be one of {[p.value for p in Process]}, "
            f"got {params.get('process')!r}"
        ) from None
    total, per_job = int(params["total_events"]), int(params["events_per_job"])
    if total < 1:
        raise CampaignError(f"param 'total_events' must be >= 1, got {total}")
    if per_job < 1:
        raise CampaignError(f"param 'events_per_job' must be >= 1, got {per_job}")
    if per_job > total:
        raise CampaignError(f"param 'events_per_job' ({per_job}) exceeds 'total_events' ({total})")
    jobs = math.ceil(total / per_job)
    if jobs > MAX_JOBS:
        raise CampaignError(
            f"params 'total_events'/'events_per_job' make {jobs} jobs; at most "
            f"{MAX_JOBS}: raise 'events_per_job'"
        )
    campaign = str(params["campaign"])
    if not CAMPAIGN_NAME.match(campaign):
        raise CampaignError(
            f"param 'campaign' {campaign!r} must be 1-64 letters, digits, '_', '.' or '-'"
        )
    work_dir = work_root / campaign / _safe(run_id)
    work_dir.mkdir(parents=True, exist_ok=True)
    for directory in (work_dir, *work_dir.parents[:2]):
        directory.chmod(0o1777)  # the jobs run as the pool's unprivileged user
    items = [
        {
            "job": str(j),
            "first_event": str(j * per_job),
            "events": str(min(per_job, total - j * per_job)),
        }
        for j in range(jobs)
    ]
    return {
        "work_dir": str(work_dir),
        "description": submit_description(
            process, float(params["sqrt_s_gev"]), int(params["base_seed"]), work_dir, campaign
        ),
        "items": items,
        "jobs": jobs,
    }


def submit_description(
    process: Process, sqrt_s: float, seed: int, work_dir: Path, campaign: str | None = None
) -> str:
    """One generation job per item. A job names only what the worker image carries (its Python
    and the payload's entry point), runs in its own scratch directory on the worker, and its ROOT
    file comes back to the campaign directory on the submit side when it exits. Each job carries
    its campaign, and HTCondor records in it the cloud, flavor and instance of the burst worker
    it ran on (job_machine_attrs), which is what `bursting cost` prices."""
    tagged = f'+{CAMPAIGN_ATTRIBUTE} = "{campaign}"\n' if campaign is not None else ""
    return f"""{tagged}job_machine_attrs = {" ".join(MACHINE_ATTRS)}
executable = {IMAGE_PYTHON}
transfer_executable = false
arguments = "-m bursting.physics generate --process {process.value} --sqrt-s {sqrt_s} --first-event $(first_event) --events $(events) --seed {seed} --output job_$(job).root"
requirements = TARGET.{PAYLOAD_ATTRIBUTE} =?= true
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
transfer_output_files = job_$(job).root, job_$(job).json
initialdir = {work_dir}
output = job_$(job).out
error = job_$(job).err
log = jobs.log
request_cpus = 1
request_memory = 1024
request_disk = 1048576
"""  # noqa: E501 - the submit language has no line continuation inside quoted arguments


def merge_outputs(
    work_dir: str,
    campaign: str,
    jobs: int,
    cost_of: Callable[[str], CampaignCost] | None = None,
) -> str:
    """Merge the jobs' outputs into one summary; with `cost_of`, the summary also says what the
    campaign cost, if that can be read (the merge never fails for it)."""
    inputs = sorted(Path(work_dir).glob("job_*.root"))
    if len(inputs) != jobs:
        raise CampaignError(f"{len(inputs)} job output(s) found for {jobs} job(s) in {work_dir}")
    summary = merge(inputs, Path(work_dir) / "merged", campaign)
    summary["jobs_planned"] = jobs
    cost = campaign_cost_entry(campaign, cost_of) if cost_of is not None else None
    if cost is not None:
        summary["cost"] = cost
    (Path(work_dir) / "merged" / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return str(Path(work_dir) / "merged" / "summary.json")


def campaign_cost_entry(
    campaign: str, cost_of: Callable[[str], CampaignCost]
) -> dict[str, Any] | None:
    """The summary's `cost` entry, logged; None (and a warning) if it cannot be read."""
    try:
        report = cost_of(campaign)
    except Exception as exc:  # the cost is a report beside the physics: never fail the merge
        log.warning(
            "campaign %s: no cost in the summary (%s: %s)", campaign, type(exc).__name__, exc
        )
        return None
    log.info("%s", report.text())
    for note in report.notes:
        log.info("cost note: %s", note)
    return report.to_dict()


def pool_cost(campaign: str, htcondor_conn_id: str = "htcondor_default") -> CampaignCost:
    """The campaign's cost from the Airflow connection's pool; prices and worker lifetimes come
    from the controller's config named by BURSTING_CONFIG (without it no cloud is known, so every
    job is unpriced)."""
    from bursting.airflow.hooks.htcondor import HTCondorHook
    from bursting.campaigns import read_campaign_cost
    from bursting.config import Config, load_config

    path = os.environ.get("BURSTING_CONFIG")
    config = load_config(Path(path)) if path else Config()
    return read_campaign_cost(config, HTCondorHook(htcondor_conn_id).get_conn(), campaign)


def validate_summary(summary_path: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(Path(summary_path).read_text())
    problems = validate(summary)
    if summary["jobs"] != summary.get("jobs_planned", summary["jobs"]):
        problems.append(f"{summary['jobs']} of {summary['jobs_planned']} jobs delivered output")
    if problems:
        raise CampaignError("validation failed:\n  " + "\n  ".join(problems))
    return summary


def publish(
    summary_path: str,
    results_root: str,
    campaign: str,
    run_id: str,
    params: dict[str, Any] | None = None,
    results_conn_id: str = RESULTS_CONN_ID,
) -> str:
    """Copy plots, the merged ROOT file and the summary to <results>/<campaign>/<run>; with a
    results container (param or connection), also upload them to <campaign>/<run>/ in it and
    list the objects under "objects" in the copied summary.json. Where to upload is settled,
    and the cloud found, before anything is copied or uploaded."""
    target_store = results_target(params or {}, results_conn_id)
    store = _connect(target_store) if target_store is not None else None
    source = Path(summary_path).parent
    target = Path(results_root).expanduser() / campaign / _safe(run_id)
    target.mkdir(parents=True, exist_ok=True)
    files = [*sorted(source.glob("*.png")), source / "merged.root", source / "summary.json"]
    for file in files:
        shutil.copy2(file, target / file.name)
    if target_store is not None and store is not None:
        objects = _upload(target_store, store, f"{campaign}/{_safe(run_id)}", files)
        summary = json.loads((target / "summary.json").read_text())
        summary["objects"] = objects
        (target / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return str(target)


@dataclass(frozen=True)
class ResultsTarget:
    """Where a run's results are uploaded: a container (an S3 bucket) in the connection's store."""

    conn_id: str
    settings: StoreSettings
    container: str
    overwrite: bool

    @property
    def source(self) -> str:
        return f"Airflow connection {self.conn_id!r}"


def results_target(params: dict[str, Any], conn_id: str = RESULTS_CONN_ID) -> ResultsTarget | None:
    """The upload target from the DAG params `results_container` / `results_overwrite` and the
    connection's extra (its `container` is the default). None: no upload (no container named
    anywhere). A container named without a usable connection is an error, not a silent skip."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from bursting.results.settings import store_settings

    container = str(params.get("results_container") or "")
    overwrite = params.get("results_overwrite", False)
    if not isinstance(overwrite, bool):
        raise CampaignError(f"param 'results_overwrite' must be true or false, got {overwrite!r}")
    if container and (problem := container_problem(container)) is not None:
        raise CampaignError(f"param 'results_container': {problem}")
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if not container:
            return None
        raise CampaignError(
            f"param 'results_container' is {container!r} but the Airflow connection "
            f'{conn_id!r} is not defined; add it with extra {{"cloud": "<clouds.yaml entry>"}} '
            f'(for example AIRFLOW_CONN_{conn_id.upper()}=\'{{"conn_type": "generic", '
            f'"extra": {{"cloud": "my-cloud"}}}}\'), or leave results_container empty'
        ) from None
    settings = store_settings(
        connection.extra_dejson,
        f"Airflow connection {conn_id!r}",
        login=connection.login,
        password=connection.password,
    )
    container = container or settings.container or ""
    if not container:
        log.info(
            "no results container: set the param results_container or extra.container of the "
            "Airflow connection %r to upload the results",
            conn_id,
        )
        return None
    return ResultsTarget(conn_id, settings, container, overwrite)


def _connect(target: ResultsTarget) -> ObjectStore:
    """The connection's store (its extra's `kind`: Swift or S3), not contacted yet."""
    from bursting.results.settings import open_store

    return open_store(target.settings, target.container, target.source)


def _upload(
    target: ResultsTarget, store: ObjectStore, prefix: str, files: list[Path]
) -> list[dict[str, Any]]:
    """Upload and verify; log each object's URL. Returns the summary's "objects"."""
    from bursting.results.publish import publish

    try:
        published = publish(
            store,
            prefix,
            files,
            overwrite=target.overwrite,
            segment_size=target.settings.segment_size,
            overwrite_hint="the DAG param results_overwrite=true",
        )
    finally:
        store.close()
    for item in published:
        state = "unchanged" if item.unchanged else "uploaded"
        log.info(
            "result %s (%s, %d bytes, sha256 %s): %s",
            item.name,
            state,
            item.size,
            item.sha256,
            item.url,
        )
    return [item.to_dict() for item in published]
