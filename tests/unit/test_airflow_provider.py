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
        "results_container",
        "results_overwrite",
    }


def test_trigger_serialize_round_trip() -> None:
    trigger = HTCondorClusterTrigger(42, "my_pool", 3.0, 120.0, 1_900_000_000.0, 20)
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


class ScriptedPool:
    """Answers each poll with the next status of a script; the last one repeats."""

    def __init__(self, script: list[ClusterStatus]) -> None:
        self.script = script
        self.calls = 0

    def job_status(self, cluster_id: int) -> ClusterStatus:
        self.calls += 1
        return self.script[min(self.calls, len(self.script)) - 1]


class LogRecorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    warning = info


def _cluster(done: int, running: int, failed: int, total: int = 10) -> ClusterStatus:
    jobs = (
        [JobOutcome(f"7.{i}", JobState.COMPLETED, 0) for i in range(done - failed)]
        + [JobOutcome(f"7.{i}", JobState.COMPLETED, 1) for i in range(failed)]
        + [JobOutcome(f"7.{i}", JobState.RUNNING) for i in range(running)]
    )
    jobs += [JobOutcome(f"7.{i}", JobState.IDLE) for i in range(total - len(jobs))]
    return ClusterStatus(7, tuple(jobs))


def test_deferred_trigger_logs_progress_on_change_and_every_n_polls_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = (
        [_cluster(0, 0, 0)] * 7  # nothing moves for 7 polls: the first, then one after 3 more
        + [_cluster(0, 4, 0)]  # jobs start: running alone is no change
        + [_cluster(2, 4, 0)]  # two done: a change
        + [_cluster(3, 4, 1)] * 2  # a failure: a change, then quiet
        + [_cluster(10, 0, 1)]  # all done: the event, no progress line
    )
    pool = ScriptedPool(script)
    trigger = HTCondorClusterTrigger(7, poll_interval=0.0, progress_every=3)
    trigger._log = LogRecorder()  # type: ignore[assignment]
    (event,) = run_trigger(trigger, pool, monkeypatch)
    assert event["status"] == "failed" and pool.calls == len(script)
    assert trigger._log.lines == [  # type: ignore[attr-defined]
        "cluster 7: 0/10 job(s) done, 0 running, 0 failed",  # poll 1: the first report
        "cluster 7: 0/10 job(s) done, 0 running, 0 failed",  # poll 4: 3 quiet polls
        "cluster 7: 0/10 job(s) done, 0 running, 0 failed",  # poll 7
        "cluster 7: 2/10 job(s) done, 4 running, 0 failed",  # poll 9: changed
        "cluster 7: 3/10 job(s) done, 4 running, 1 failed",  # poll 10: changed
    ]
    assert HTCondorClusterTrigger(7, progress_every=0).progress_every == 1


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


# ----- no double submit: a lost answer is looked up by the task's key before any resubmit -----


class LossyPool:
    """A schedd stand-in: clusters are job ads matched by real ClassAd constraints. `lose` lists,
    per submit call, what happens: "landed" (queued, then the answer is lost), "unsent" (refused
    before anything reached the schedd) or "ok"; `blind_lookups` lookups fail before one answers."""

    def __init__(self, lose: list[str], blind_lookups: int = 0) -> None:
        from bursting.config import PoolConfig

        self.config = PoolConfig(timeout_seconds=0.01)
        self.lose = lose
        self.blind_lookups = blind_lookups
        self.ads: dict[int, Any] = {}
        self.submits = 0
        self.lookups = 0
        self.next_id = 100

    def _queue(self, attributes: dict[str, str]) -> int:
        import classad2

        self.next_id += 1
        self.ads[self.next_id] = classad2.ClassAd({"ClusterId": self.next_id, **attributes})
        return self.next_id

    def submit(self, description: str, items: Any = None, attributes: Any = None) -> int:
        self.submits += 1
        fate = self.lose.pop(0) if self.lose else "ok"
        if fate == "unsent":
            raise PoolUnavailable("submit: Failed to connect to schedd")
        cluster = self._queue(dict(attributes or {}))
        if fate == "landed":
            raise PoolUnavailable("submit: no answer within 20s")
        return cluster

    def find_clusters(self, constraint: str) -> list[int]:
        import classad2

        self.lookups += 1
        if self.submits and self.blind_lookups:  # the schedd goes away after the first submit
            self.blind_lookups -= 1
            raise PoolUnavailable("schedd query: Failed to connect")
        expr = classad2.ExprTree(constraint)
        return sorted(c for c, ad in self.ads.items() if expr.eval(ad) is True)

    def find_cluster(self, attribute: str, value: str) -> int | None:
        import classad2

        clusters = self.find_clusters(f"{attribute} =?= {classad2.quote(value)}")
        return clusters[-1] if clusters else None

    def job_status(self, cluster_id: int) -> ClusterStatus:
        """Every job exited 1: a retry must submit afresh."""
        return ClusterStatus(cluster_id, (JobOutcome(f"{cluster_id}.0", JobState.COMPLETED, 1),))


class StandInHook:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def get_conn(self) -> Any:
        return self.pool


class FakeTI:
    dag_id, task_id, run_id, map_index = "dag", "gen", "run-1", -1
    stats_tags: dict[str, str] = {}  # noqa: RUF012 - read only

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def submit_operator(pool: Any) -> Any:
    from tenacity import wait_none

    from bursting.airflow.operators.submit import HTCondorSubmitOperator

    op = HTCondorSubmitOperator(
        task_id="gen", submit_description="executable = /bin/true\n", unreachable_timeout=5
    )
    op.retry_wait = wait_none()
    op._hook = StandInHook(pool)
    return op


KEY = 'BurstingTaskKey =?= "dag/gen/run-1/-1"'


def test_a_submit_whose_answer_was_lost_is_adopted_not_made_twice() -> None:
    pool = LossyPool(lose=["landed"])
    ti = FakeTI()
    cluster = submit_operator(pool)._reuse_or_submit({"ti": ti})
    assert pool.find_clusters(KEY) == [cluster]  # exactly one cluster carries the key
    assert pool.submits == 1
    assert ti.xcom["cluster_id"] == cluster


def test_a_submit_that_never_landed_is_made_again_after_the_lookup() -> None:
    pool = LossyPool(lose=["unsent", "unsent"])
    cluster = submit_operator(pool)._reuse_or_submit({"ti": FakeTI()})
    assert pool.find_clusters(KEY) == [cluster]
    assert pool.submits == 3


def test_no_resubmit_until_a_lookup_has_answered() -> None:
    pool = LossyPool(lose=["landed"], blind_lookups=3)
    lookups_before_submit: list[int] = []
    real_submit = pool.submit

    def watched(*args: Any) -> int:
        lookups_before_submit.append(pool.lookups)
        return real_submit(*args)

    pool.submit = watched  # type: ignore[method-assign]
    cluster = submit_operator(pool)._reuse_or_submit({"ti": FakeTI()})
    lookups = pool.lookups
    assert pool.find_clusters(KEY) == [cluster]
    assert lookups_before_submit == [1]  # the key lookup of the try; never a second submit
    assert lookups == 1 + 3 + 1  # three blind lookups were retried, then one answered


def test_the_lost_submit_is_told_apart_from_an_earlier_tries_failed_cluster() -> None:
    pool = LossyPool(lose=["ok", "landed"])
    ti = FakeTI()
    earlier = submit_operator(pool)._reuse_or_submit({"ti": ti})  # first try; its jobs fail
    retry = submit_operator(pool)._reuse_or_submit({"ti": ti})  # second try; answer lost
    assert retry != earlier
    assert pool.find_clusters(KEY) == [earlier, retry]
    assert pool.submits == 2


def test_hook_builds_one_pool_and_pools_share_one_process_token_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import htcondor2

    from bursting.airflow.hooks.htcondor import HTCondorHook
    from bursting.config import PoolConfig
    from bursting.pool.htcondor import HTCondorPool

    for name, token in (("pool_a", "aaa.token.one"), ("pool_b", "bbb.token.two")):
        conn = {"conn_type": "htcondor", "host": "127.0.0.1", "port": 9618, "password": token}
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(conn))
    hook = HTCondorHook("pool_a")
    assert hook.get_conn() is hook.get_conn()
    directory = htcondor2.param["SEC_TOKEN_DIRECTORY"]
    other_dir = tmp_path / "tokens.d"
    other_dir.mkdir()
    (other_dir / "site").write_text("ccc.token.three\n")
    pools = [
        hook.get_conn(),
        HTCondorHook("pool_b").get_conn(),
        HTCondorPool(PoolConfig(token_dir=other_dir)),
    ]
    for pool in pools:
        pool._link_tokens()
        assert htcondor2.param["SEC_TOKEN_DIRECTORY"] == directory  # never changed per pool
    offered = sorted(p.read_text().strip() for p in Path(directory).iterdir())
    assert {"aaa.token.one", "bbb.token.two", "ccc.token.three"} <= set(offered)
