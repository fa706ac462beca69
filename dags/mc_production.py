"""Monte Carlo production campaign: split -> generate on HTCondor (deferred) -> merge -> validate
-> publish. This file only declares; the logic lives in bursting.airflow.campaign."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param, task

from bursting.airflow import campaign
from bursting.airflow.operators.submit import HTCondorSubmitOperator

RESULTS = os.environ.get("BURSTING_RESULTS", "/var/tmp/bursting/results")

with DAG(
    dag_id="mc_production",
    description="Generate, simulate and reconstruct a physics process on the HTCondor pool",
    schedule=None,
    catchup=False,
    tags=["physics", "htcondor"],
    params={
        "campaign": Param(
            "demo-campaign",
            type="string",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
            description="name of the campaign; results land in a folder of it",
        ),
        "process": Param(
            "zmumu", type="string", enum=["ttbar", "zmumu", "dijet"], description="physics process"
        ),
        "sqrt_s_gev": Param(
            13000, type="number", enum=[13000, 13600], description="centre-of-mass energy in GeV"
        ),
        "total_events": Param(2000, type="integer", minimum=1, maximum=10_000_000),
        "events_per_job": Param(250, type="integer", minimum=1, maximum=100_000),
        "base_seed": Param(
            12345,
            type="integer",
            minimum=0,
            maximum=2**31 - 1,
            description="the campaign's random seed; same seed, same histograms",
        ),
        "results_container": Param(
            "",
            type="string",
            pattern=campaign.RESULTS_CONTAINER_PARAM_PATTERN,
            description="object-store container the results are also uploaded to, in the cloud "
            f"of the Airflow connection '{campaign.RESULTS_CONN_ID}'; empty: its extra's "
            "container, or no upload",
        ),
        "results_overwrite": Param(
            False,
            type="boolean",
            description="replace objects of an earlier publish of this run whose content "
            "differs (same content is always left as it is)",
        ),
    },
) as dag:

    @task(multiple_outputs=True)
    def plan(params: dict | None = None, run_id: str | None = None) -> dict:
        return campaign.plan_split(dict(params or {}), str(run_id))

    @task
    def merge(work_dir: str, jobs: int, params: dict | None = None) -> str:
        return campaign.merge_outputs(
            work_dir, str((params or {})["campaign"]), int(jobs), cost_of=campaign.pool_cost
        )

    @task
    def validate(summary_path: str) -> dict:
        return campaign.validate_summary(summary_path)

    @task
    def publish(summary_path: str, params: dict | None = None, run_id: str | None = None) -> str:
        values = dict(params or {})
        return campaign.publish(
            summary_path, RESULTS, str(values["campaign"]), str(run_id), params=values
        )

    split = plan()
    generate = HTCondorSubmitOperator(
        task_id="generate",
        submit_description=split["description"],
        itemdata=split["items"],
        poll_interval=5,
    )
    summary = merge(split["work_dir"], split["jobs"])
    generate >> summary
    checked = validate(summary)
    checked >> publish(summary)
