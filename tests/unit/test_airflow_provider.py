"""The Airflow provider without a pool: registration, schema, DAG parsing, trigger round-trip,
and how the trigger and operator behave at the seam."""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bursting.airflow.campaign import CampaignError, plan_split
from bursting.airflow.outcome import describe
from bursting.airflow.triggers.cluster import HTCondorClusterTrigger
from bursting.errors import PoolUnavailable
from bursting.model import ClusterStatus, JobOutcome, JobState

REPO = Path(__file__).resolve().parents[2]


def test_provider_is_registered_and_matches_airflows_schema() -> None:
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("bursting")
    ]
    info = entry.load()()
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "htcondor"
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "IDTOKEN"
    assert "schedd" in conn["conn-fields"]


def test_dags_folder_imports_cleanly() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags.get("mc_production")
    assert dag is not None
    assert {"plan", "generate", "merge", "validate", "publish"} <= set(dag.task_ids)
    assert set(dag.params) == {
        "campaign",
        "process",
        "sqrt_s_gev",
        "total_events",
        "events_per_job",
        "base_seed",
    }


def test_trigger_serialize_round_trip() -> None:
    trigger = HTCondorClusterTrigger(42, "my_pool", 3.0, 120.0, 1_900_000_000.0)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    again = cls(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs  # stored as JSON by the triggerer


class FlakyPool:
    """Unreachable for the first calls, then the cluster finishes."""

    def __init__(self, failures: int, final: ClusterStatus) -> None:
        self.failures = failures
        self.final = final
        self.calls = 0

    def job_status(self, cluster_id: int) -> ClusterStatus:
        self.calls += 1
        if self.calls <= self.failures:
            raise PoolUnavailable("schedd: Failed to connect")
        return self.final

    def remove(self, cluster_id: int, reason: str = "") -> None:
        self.removed = cluster_id


def run_trigger(
    trigger: HTCondorClusterTrigger, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    from bursting.airflow.hooks import htcondor

    async def fake_apool(cls: Any, conn_id: str) -> Any:
        return pool

    monkeypatch.setattr(htcondor.HTCondorHook, "apool", classmethod(fake_apool))

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


DONE = ClusterStatus(7, (JobOutcome("7.0", JobState.COMPLETED, 0),))


def test_trigger_rides_out_a_blip_of_the_schedd(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = FlakyPool(failures=3, final=DONE)
    events = run_trigger(HTCondorClusterTrigger(7, poll_interval=0.01), pool, monkeypatch)
    assert [e["status"] for e in events] == ["success"]
    assert pool.calls == 4


def test_trigger_gives_up_after_the_unreachable_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = FlakyPool(failures=10**6, final=DONE)
    trigger = HTCondorClusterTrigger(7, poll_interval=0.01, unreachable_timeout=0.05)
    (event,) = run_trigger(trigger, pool, monkeypatch)
    assert event["status"] == "error" and "unreachable" in event["message"]


def test_trigger_removes_the_cluster_past_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = FlakyPool(failures=0, final=DONE)
    (event,) = run_trigger(HTCondorClusterTrigger(7, deadline=1.0), pool, monkeypatch)
    assert event["status"] == "timeout" and pool.removed == 7


def test_killing_the_deferred_task_removes_its_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from bursting.airflow.hooks import htcondor
    from bursting.config import PoolConfig

    pool = FlakyPool(failures=0, final=DONE)
    pool.config = PoolConfig()  # type: ignore[attr-defined]

    async def fake_apool(cls: Any, conn_id: str) -> Any:
        return pool

    monkeypatch.setattr(htcondor.HTCondorHook, "apool", classmethod(fake_apool))
    asyncio.run(HTCondorClusterTrigger(7).on_kill())
    assert pool.removed == 7


def test_failure_report_names_jobs_reasons_codes_and_stderr(tmp_path: Path) -> None:
    err = tmp_path / "err.1"
    err.write_text("".join(f"line {i}\n" for i in range(40)) + "Segfault in detector\n")
    status = ClusterStatus(
        9,
        (
            JobOutcome("9.0", JobState.HELD, hold_reason="Failed to execute '/x': errno=2"),
            JobOutcome("9.1", JobState.COMPLETED, exit_code=3, stderr_path=str(err)),
            JobOutcome("9.2", JobState.COMPLETED, exit_code=0),
        ),
    )
    report = describe(status)
    assert report.startswith("cluster 9: 2 of 3 job(s) failed")
    assert "job 9.0 held: Failed to execute '/x': errno=2" in report
    assert "job 9.1 exit code 3" in report and "Segfault in detector" in report
    assert "line 5\n" not in report  # only the tail
    assert "9.2" not in report


PARAMS = {
    "campaign": "c1",
    "process": "zmumu",
    "sqrt_s_gev": 13000,
    "total_events": 95,
    "events_per_job": 20,
    "base_seed": 1,
}


def test_plan_split_covers_every_event_once(tmp_path: Path) -> None:
    plan = plan_split(PARAMS, "manual__2026-11-23T08:00:00+00:00", tmp_path)
    items = plan["items"]
    assert plan["jobs"] == len(items) == 5
    covered = [
        e
        for i in items
        for e in range(int(i["first_event"]), int(i["first_event"]) + int(i["events"]))
    ]
    assert covered == list(range(95))
    assert "--process zmumu" in plan["description"] and "--seed 1" in plan["description"]
    assert Path(plan["work_dir"]).is_dir()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"process": "higgs"}, "'process'"),
        ({"events_per_job": 0}, "'events_per_job'"),
        ({"events_per_job": 500}, "'events_per_job' (500) exceeds 'total_events'"),
        ({"total_events": 10_000_000, "events_per_job": 1}, "'events_per_job'"),
        ({"campaign": "no spaces"}, "'campaign'"),
    ],
)
def test_bad_params_fail_at_once_naming_the_param(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    with pytest.raises(CampaignError, match=named.replace("(", r"\(").replace(")", r"\)")):
        plan_split({**PARAMS, **change}, "run", tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was started or written
