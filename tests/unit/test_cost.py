"""What a campaign cost: exact arithmetic on hand-made job records, the fakes driven end to end,
the HTCondor job ads read as the backend reads them, and `bursting cost` as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

import classad2
import pytest
from typer.testing import CliRunner

from bursting.campaigns import read_campaign_cost
from bursting.cli import app
from bursting.clock import FakeClock
from bursting.config import load_config
from bursting.errors import PoolUnavailable, UnknownCampaign
from bursting.model import (
    CampaignJob,
    Flavor,
    Instance,
    InstanceSpec,
    InstanceState,
    JobShape,
    JobState,
)
from bursting.policy.cost import UNPRICED, campaign_cost, check_campaign, paid_seconds
from bursting.pool.htcondor import COST_PROJECTION, campaign_job
from bursting.store import open_store
from tests.fakes import FakeCloud, FakePool, FakeWorker

HOUR = 3600.0
NOW = 1_800_000_000.0
M4 = Flavor("m4", 4, 8192, price_per_hour=2.0)
M1 = Flavor("m1", 1, 2048, price_per_hour=0.6)
CLOUDS = {"public": [M4, M1], "private": [Flavor("big", 16, 65536)]}
DONE = JobState.COMPLETED


def job(
    n: int,
    cpus: int,
    hours: float,
    on: tuple[str | None, str | None, str | None] = ("public", "m4", "i-1"),
    state: JobState = DONE,
    exit_code: int | None = 0,
) -> CampaignJob:
    return CampaignJob(f"1.{n}", state, cpus, hours * HOUR, *on, exit_code=exit_code)


def instance(iid: str, flavor: Flavor, created: float, gone_at: float | None) -> Instance:
    state = InstanceState.GONE if gone_at is not None else InstanceState.RUNNING
    return Instance(
        iid,
        "public",
        flavor.name,
        flavor.cpus,
        flavor.memory_mb,
        flavor.price_per_hour,
        state,
        gone_at if gone_at is not None else created,
        created,
    )


def test_each_job_pays_its_flavors_price_shared_by_cores_for_its_wall_time() -> None:
    jobs = [
        job(0, 1, 2.0),  # 1 of 4 cores for 2 h: 2 x 2.0 / 4 = 1.0
        job(1, 2, 1.0),  # 2 of 4 cores for 1 h: 1 x 2.0 / 2 = 1.0
        job(2, 8, 1.0),  # asks more cores than the flavor has: pays the whole worker, 2.0
        job(3, 1, 0.5, ("public", "m1", "i-2")),  # whole m1 for 30 min: 0.3
    ]
    report = campaign_cost("mc-1", jobs, CLOUDS, [], NOW, "CHF")
    (m1, m4) = report.lines
    assert (m4.cloud, m4.flavor, m4.jobs) == ("public", "m4", 3)
    assert m4.cost == pytest.approx(4.0, abs=1e-12)
    assert m4.core_hours == pytest.approx(2.0 + 2.0 + 8.0)
    assert (m1.flavor, m1.jobs, m1.cost) == ("m1", 1, pytest.approx(0.3))
    assert report.cost == pytest.approx(4.3) and report.core_hours == pytest.approx(12.5)
    assert m4.busy_share is None and m4.worker_cost is None  # the store knows no worker
    assert report.to_dict()["cost"] == 4.3 and report.currency == "CHF"


def test_busy_share_is_the_campaigns_core_time_over_its_workers_paid_core_time() -> None:
    jobs = [
        job(0, 1, 2.0),
        job(1, 2, 1.0),  # 4 core-hours on i-1 ...
        job(2, 1, 1.0, ("public", "m4", "i-3")),  # 1 core-hour on i-3, still running
    ]
    workers = [
        instance("i-1", M4, NOW - 10 * HOUR, gone_at=NOW - 7 * HOUR),  # paid 3 h: 12 core-hours
        instance("i-3", M4, NOW - 2 * HOUR, gone_at=None),  # paid 2 h so far: 8 core-hours
        instance("i-9", M4, NOW - 50 * HOUR, gone_at=None),  # ran none of these jobs: ignored
    ]
    assert paid_seconds(workers[0], NOW) == 3 * HOUR and paid_seconds(workers[1], NOW) == 2 * HOUR
    (line,) = campaign_cost("mc-1", jobs, CLOUDS, workers, NOW, "CHF").lines
    assert line.busy_share == pytest.approx(5.0 / 20.0)
    assert line.worker_cost == pytest.approx(2.0 * 5)  # 5 paid hours of a 2.0/h flavor
    assert line.cost == pytest.approx(2.0 * (2 + 2 + 1) / 4)


def test_jobs_on_nodes_that_are_no_burst_workers_are_counted_unpriced() -> None:
    jobs = [job(0, 1, 1.0), job(1, 2, 3.0, (None, None, None))]
    report = campaign_cost("mc-1", jobs, CLOUDS, [], NOW, "EUR")
    _, unpriced = report.lines  # the unpriced line comes last
    assert (unpriced.cloud, unpriced.jobs, unpriced.cost) == (UNPRICED, 1, None)
    assert unpriced.core_hours == pytest.approx(6.0)
    assert report.unpriced_jobs == 1 and report.cost == pytest.approx(0.5)
    assert "1 job(s) unpriced" in report.text() and "EUR" in report.text()


def test_an_unknown_flavor_is_priced_as_an_adopted_instance_its_clouds_dearest_whole() -> None:
    jobs = [job(0, 1, 1.0, ("public", "mystery", "i-7"))]
    report = campaign_cost("mc-1", jobs, CLOUDS, [], NOW, "CHF")
    (line,) = report.lines
    assert (line.flavor, line.cost) == ("mystery", pytest.approx(2.0))  # never free
    assert any("'mystery'" in note and "dearest" in note for note in report.notes)


def test_an_unknown_cloud_is_unpriced_with_a_note() -> None:
    report = campaign_cost("mc-1", [job(0, 1, 1.0, ("gone", "x", "i-1"))], CLOUDS, [], NOW, "CHF")
    assert report.lines[0].cloud == UNPRICED
    assert report.notes == ("cloud 'gone' is not in the config",)


def test_counts_of_done_running_and_failed_jobs() -> None:
    jobs = [
        job(0, 1, 1.0),
        job(1, 1, 1.0, exit_code=3),
        job(2, 1, 0.5, state=JobState.RUNNING, exit_code=None),
        job(3, 1, 0.0, state=JobState.HELD, exit_code=None),
        job(4, 1, 0.0, (None, None, None), state=JobState.IDLE, exit_code=None),
    ]
    report = campaign_cost("mc-1", jobs, CLOUDS, [], NOW, "CHF")
    assert (report.jobs, report.done, report.running, report.failed) == (5, 2, 1, 2)


@pytest.mark.parametrize(
    "name", ["", "-lead", "x" * 65, 'a" || true || "', "a b", "ä", "a\nb", "a/b"]
)
def test_the_campaign_label_is_bounded_and_safe_in_a_constraint(name: str) -> None:
    with pytest.raises(UnknownCampaign, match="not a campaign name"):
        check_campaign(name)
    with pytest.raises(UnknownCampaign):
        campaign_cost(name, [job(0, 1, 1.0)], CLOUDS, [], NOW, "CHF")


def test_a_campaign_without_jobs_is_unknown() -> None:
    assert check_campaign("x" * 64) == "x" * 64
    with pytest.raises(UnknownCampaign, match="no job of campaign 'mc-9'"):
        campaign_cost("mc-9", [], CLOUDS, [], NOW, "CHF")


# ----- the backend's reading of job ads -----
def test_a_job_ad_is_read_with_its_current_run_and_its_workers_machine_attrs() -> None:
    assert "MachineAttrBurstingInstance0" in COST_PROJECTION
    running = classad2.ClassAd(
        {
            "ClusterId": 5,
            "ProcId": 2,
            "JobStatus": 2,
            "RequestCpus": 2,
            "RemoteWallClockTime": 100.0,  # an earlier, interrupted run
            "JobCurrentStartDate": int(NOW - 50),
            "MachineAttrBurstingCloud0": "public",
            "MachineAttrBurstingFlavor0": "m4",
            "MachineAttrBurstingInstance0": "i-1",
        }
    )
    read = campaign_job(running, NOW)
    assert read == CampaignJob("5.2", JobState.RUNNING, 2, 150.0, "public", "m4", "i-1")
    finished = classad2.ClassAd(
        {"ClusterId": 5, "ProcId": 3, "JobStatus": 4, "RemoteWallClockTime": 60.0, "ExitCode": 0}
    )
    finished["RequestCpus"] = classad2.ExprTree("1 + 1")
    done = campaign_job(finished, NOW)
    assert (done.cpus, done.wall_seconds, done.cloud, done.exit_code) == (2, 60.0, None, 0)


# ----- the fakes driven end to end, and the command line -----
CONFIG = """
clouds:
  - name: public
    type: local
    flavors:
      - {name: m4, cpus: 4, memory_mb: 8192, price_per_hour: 2.0}
policy: {spend: {currency: EUR}}
store: {url: "sqlite:///%s"}
"""


def world(tmp_path: Path) -> tuple[Path, FakePool]:
    """A fake pool where campaign mc-1 ran 4 one-core jobs of 1 h on one public m4 worker (up
    for 2 h, then gone) and 1 job on a node that is no burst worker; mc-2 ran 1 other job."""
    clock = FakeClock(NOW)
    pool = FakePool(clock, "pool")
    cloud = FakeCloud("public", clock, pool, [M4], boot_delay=0, join_delay=0)
    cloud.create(InstanceSpec("i-1", "pool", "public", M4))
    cloud.step()
    pool.workers["desk"] = FakeWorker("desk", 1, 2048)  # a static execute node
    pool.add_jobs(5, JobShape(1, 1024), HOUR, campaign="mc-1")
    pool.add_jobs(1, JobShape(1, 1024), HOUR, campaign="mc-2")
    pool.step()
    clock.advance(HOUR)
    pool.step()
    path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{path}")
    store.save([instance("i-1", M4, NOW, gone_at=NOW + 2 * HOUR)], NOW + 2 * HOUR)
    config = tmp_path / "bursting.yaml"
    config.write_text(CONFIG % path)
    return config, pool


def test_the_fake_pool_drives_the_cost_through_the_config_and_the_store(tmp_path: Path) -> None:
    config_path, pool = world(tmp_path)
    report = read_campaign_cost(load_config(config_path), pool, "mc-1", now=NOW + 2 * HOUR)
    m4, unpriced = report.lines
    assert (m4.cloud, m4.flavor, m4.jobs, unpriced.jobs) == ("public", "m4", 4, 1)
    assert m4.cost == pytest.approx(4 * 2.0 / 4)  # four 1-core hours at a quarter of 2.0/h
    assert m4.busy_share == pytest.approx(4 / 8)  # 4 of the 8 paid core-hours
    assert report.currency == "EUR" and report.done == 5
    pool.readable = False
    with pytest.raises(PoolUnavailable):
        read_campaign_cost(load_config(config_path), pool, "mc-1")


def test_bursting_cost_prints_a_table_and_json_and_refuses_unknown_campaigns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bursting.cli

    config_path, pool = world(tmp_path)
    monkeypatch.setattr(bursting.cli, "_pool", lambda path: pool)
    runner = CliRunner()
    table = runner.invoke(app, ["cost", "--campaign", "mc-1", "--config", str(config_path)])
    assert table.exit_code == 0, table.output
    assert "m4" in table.output and "unpriced" in table.output and "cost EUR" in table.output
    assert "5 job(s): 5 finished, 0 running, 0 failed" in table.output
    as_json = runner.invoke(
        app, ["cost", "--campaign", "mc-1", "--config", str(config_path), "--json"]
    )
    data = json.loads(as_json.output)
    assert (data["campaign"], data["unpriced_jobs"], data["cost"]) == ("mc-1", 1, 2.0)
    assert data["lines"][0]["busy_share"] is not None
    for name, words in (("nope", "no job of campaign 'nope'"), ("a b", "not a campaign name")):
        result = runner.invoke(app, ["cost", "--campaign", name, "--config", str(config_path)])
        assert result.exit_code == 1 and words in result.output
        assert "Traceback" not in result.output
