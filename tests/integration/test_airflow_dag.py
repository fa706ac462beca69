"""Airflow for real: the provider against the personal pool, and `airflow dags test mc_production`
running the physics campaign on execute nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bursting.pool.htcondor import HTCondorPool

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(
    *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@pytest.fixture(scope="module")
def nodes(devpool: Any) -> Iterator[list[str]]:
    """Workers booted from the worker image: the DAG's jobs must carry their own data."""
    names = [devpool.add_container_node(2, 4096, name=f"airflow-{i}") for i in range(2)]
    yield names
    for name in names:
        devpool.containers().kill_node(name)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_CONN_HTCONDOR_DEFAULT": json.dumps(
            {"conn_type": "htcondor", "host": "127.0.0.1", "port": 9618}
        ),
    }
    env["BURSTING_RESULTS"] = str(tmp_path_factory.mktemp("results"))
    migrated = airflow("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    return env


def test_provider_is_listed(airflow_env: dict[str, str]) -> None:
    listed = airflow("providers", "list", env=airflow_env)
    assert "bursting" in listed.stdout


def test_mc_production_campaign_runs_on_the_pool(
    devpool: Any, nodes: list[str], airflow_env: dict[str, str]
) -> None:
    conf = {
        "campaign": "it-zmumu",
        "process": "zmumu",
        "total_events": 60,
        "events_per_job": 15,
        "base_seed": 11,
    }
    run = airflow("dags", "test", "mc_production", "-c", json.dumps(conf), env=airflow_env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "state=success" in run.stdout + run.stderr
    results = Path(airflow_env["BURSTING_RESULTS"]) / "it-zmumu"
    (published,) = list(results.iterdir())
    summary = json.loads((published / "summary.json").read_text())
    assert summary["events"] == 60 and summary["jobs"] == 4
    assert summary["histograms"]["dimuon_mass"]["entries"] > 0
    assert {"dimuon_mass.png", "jet_pt.png", "merged.root"} <= {p.name for p in published.iterdir()}

    # The same campaign split otherwise, on the same image-booted workers: the same histograms.
    resplit = {**conf, "campaign": "it-zmumu-resplit", "events_per_job": 20}
    again = airflow("dags", "test", "mc_production", "-c", json.dumps(resplit), env=airflow_env)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    (other,) = list((Path(airflow_env["BURSTING_RESULTS"]) / "it-zmumu-resplit").iterdir())
    other_summary = json.loads((other / "summary.json").read_text())
    assert other_summary["jobs"] == 3
    assert other_summary["histograms"] == summary["histograms"]


def test_bad_params_fail_before_anything_is_submitted(
    airflow_env: dict[str, str], htcondor: HTCondorPool
) -> None:
    before = htcondor.snapshot().idle_jobs
    conf = {"campaign": "bad", "process": "zmumu", "total_events": 10, "events_per_job": 50}
    run = airflow("dags", "test", "mc_production", "-c", json.dumps(conf), env=airflow_env)
    assert run.returncode != 0
    assert "'events_per_job' (50) exceeds 'total_events'" in run.stdout + run.stderr
    assert htcondor.snapshot().idle_jobs == before


@pytest.fixture
def pool_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default htcondor connection, pointing at the personal pool, for in-process tasks."""
    connection = {"conn_type": "htcondor", "host": "127.0.0.1", "port": 9618}
    monkeypatch.setenv("AIRFLOW_CONN_HTCONDOR_DEFAULT", json.dumps(connection))


class FakeTI:
    dag_id, task_id, run_id, map_index = "dag", "task", "run-1", -1
    stats_tags: dict[str, str] = {}  # noqa: RUF012 - read only

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def operator(description: str, **kwargs: Any) -> Any:
    from bursting.airflow.operators.submit import HTCondorSubmitOperator

    return HTCondorSubmitOperator(
        task_id="t", submit_description=description, poll_interval=1, **kwargs
    )


def test_a_retried_task_does_not_submit_twice(
    devpool: Any,
    nodes: list[str],
    job_dir: Path,
    htcondor: HTCondorPool,
    pool_connection: None,
) -> None:
    ti = FakeTI()
    ti.run_id = f"run-{job_dir.name}"
    op = operator(
        f"executable = /bin/sleep\narguments = 3\ninitialdir = {job_dir}\n"
        "request_memory = 64\nqueue 2\n",
        deferrable=False,
    )
    first = op._reuse_or_submit({"ti": ti})
    again = op._reuse_or_submit({"ti": ti})  # a retry while it runs: reconnect
    assert first == again and ti.xcom["cluster_id"] == first
    assert op.execute({"ti": ti}) == first  # the synchronous path waits for the same cluster
    assert op._reuse_or_submit({"ti": ti}) is None  # done: a retry returns at once
    assert len(htcondor.job_status(first).jobs) == 2
    key = f"dag/task/{ti.run_id}/-1"
    assert htcondor.find_cluster("BurstingTaskKey", key) == first  # no newer cluster exists


def test_failed_jobs_fail_the_task_with_ids_codes_and_stderr(
    devpool: Any, nodes: list[str], job_dir: Path, pool_connection: None
) -> None:
    from airflow.sdk.exceptions import AirflowException

    ti = FakeTI()
    ti.run_id = f"fail-{job_dir.name}"
    op = operator(
        f"executable = /bin/sh\narguments = \"-c 'echo detector on fire >&2; exit 4'\"\n"
        f"initialdir = {job_dir}\nerror = err.$(ProcId)\nrequest_memory = 64\nqueue 1\n",
        deferrable=False,
    )
    with pytest.raises(AirflowException) as caught:
        op.execute({"ti": ti})
    message = str(caught.value)
    cluster = ti.xcom["cluster_id"]
    assert f"job {cluster}.0 exit code 4" in message and "detector on fire" in message

    ti.run_id = f"held-{job_dir.name}"
    held = operator(
        f"executable = /bin/true\ninitialdir = {job_dir}\nhold = true\nrequest_memory = 64\n",
        deferrable=False,
    )
    with pytest.raises(AirflowException, match="held"):
        held.execute({"ti": ti})
