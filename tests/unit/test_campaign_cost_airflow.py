"""The mc_production side of the campaign cost: jobs carry their campaign and their worker's
tags, and the merge summary gets a `cost` entry when the pool can be read, never failing for it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bursting.airflow.campaign import merge_outputs, plan_split
from bursting.errors import PoolUnavailable
from bursting.model import CampaignJob, Flavor, JobState
from bursting.physics.generate import generate
from bursting.physics.processes import Process
from bursting.policy.cost import CampaignCost, campaign_cost
from bursting.pool.htcondor import parse_submit

PARAMS = {
    "campaign": "mc-7",
    "process": "zmumu",
    "sqrt_s_gev": 13000,
    "total_events": 4,
    "events_per_job": 2,
    "base_seed": 1,
}


def test_jobs_carry_their_campaign_and_record_their_burst_worker(tmp_path: Path) -> None:
    split = plan_split(dict(PARAMS), "run 1", tmp_path)
    submit = dict(parse_submit(split["description"]))
    assert submit["MY.BurstingCampaign"] == '"mc-7"'
    assert submit["job_machine_attrs"] == "BurstingCloud BurstingFlavor BurstingInstance"


def one_job_output(work_dir: Path) -> None:
    generate(Process.ZMUMU, 13000.0, 0, 2, 1, work_dir / "job_0.root")


def priced(campaign: str) -> CampaignCost:
    jobs = [CampaignJob("1.0", JobState.COMPLETED, 1, 3600.0, "public", "m4", "i-1", 0)]
    return campaign_cost(
        campaign, jobs, {"public": [Flavor("m4", 4, 8192, 0, 0, 2.0)]}, [], 0, "CHF"
    )


def test_the_merge_summary_reports_the_cost_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one_job_output(tmp_path)
    with caplog.at_level(logging.INFO, logger="bursting.airflow.campaign"):
        summary = json.loads(Path(merge_outputs(str(tmp_path), "mc-7", 1, priced)).read_text())
    assert summary["cost"]["cost"] == 0.5 and summary["cost"]["currency"] == "CHF"
    assert summary["cost"]["lines"][0]["flavor"] == "m4"
    assert "campaign mc-7: 1 job(s), 1.00 core-hours, cost 0.50 CHF" in caplog.text


def test_the_merge_never_fails_for_the_cost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one_job_output(tmp_path)

    def unreadable(campaign: str) -> CampaignCost:
        raise PoolUnavailable("schedd: Failed to connect")

    summary = json.loads(Path(merge_outputs(str(tmp_path), "mc-7", 1, unreadable)).read_text())
    assert "cost" not in summary and summary["jobs_planned"] == 1
    assert "no cost in the summary (PoolUnavailable: schedd: Failed to connect)" in caplog.text
    plain = json.loads(Path(merge_outputs(str(tmp_path), "mc-7", 1)).read_text())
    assert "cost" not in plain
