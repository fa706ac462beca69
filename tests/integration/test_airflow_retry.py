"""Airflow retries against the real pool: a task retried by Airflow itself (`airflow dags test`)
never submits a landed cluster twice, and the connection "Test" needs a token the schedd takes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_airflow_dag import airflow, airflow_env, nodes  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG = '''
from datetime import datetime, timedelta

from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException

from bursting.airflow.operators.submit import HTCondorSubmitOperator


class DiesAfterSubmitting(HTCondorSubmitOperator):
    """The first try's worker is lost right after its submit landed."""

    def _submit(self, context):
        cluster = super()._submit(context)
        if context["ti"].try_number == 1:
            raise AirflowException(f"worker lost after submitting cluster {{cluster}}")
        return cluster


# The workers share nothing with the submit side: a job's memory of its earlier try is a
# directory it takes along (file transfer in) and brings back (file transfer out, on any exit).
JOB = """
executable = /bin/sh
arguments = "-c 'test -e tries/marker.$(ProcId) && exit 0; touch tries/marker.$(ProcId); exit 3'"
initialdir = {job_dir}/$(TASK)
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
transfer_input_files = tries
transfer_output_files = tries
request_memory = 64
queue 2
"""

with DAG("{dag_id}", start_date=datetime(2026, 1, 1), schedule=None, catchup=False,
         default_args={{"retries": 1, "retry_delay": timedelta(seconds=2)}}):
    HTCondorSubmitOperator(task_id="flaky_jobs", submit_description=JOB.replace("$(TASK)",
                           "flaky_jobs"), poll_interval=1)
    DiesAfterSubmitting(task_id="lost_worker", submit_description="executable = /bin/true\\n"
                        "request_memory = 64\\nqueue 2\\n", poll_interval=1)
'''


def clusters_of(htcondor: HTCondorPool, dag_id: str, task_id: str) -> list[int]:
    return htcondor.find_clusters(f'regexp("^{dag_id}/{task_id}/", BurstingTaskKey)')


def test_airflow_retries_a_task_without_a_duplicate_submit(
    devpool: Any,
    nodes: list[str],  # noqa: F811 - the imported fixture
    airflow_env: dict[str, str],  # noqa: F811
    job_dir: Path,
    htcondor: HTCondorPool,
    tmp_path: Path,
) -> None:
    dag_id = f"retry_{job_dir.name.replace('-', '_')}"
    for directory in (job_dir / "flaky_jobs", job_dir / "flaky_jobs" / "tries"):
        directory.mkdir(mode=0o1777)
        directory.chmod(0o1777)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{dag_id}.py").write_text(textwrap.dedent(DAG.format(dag_id=dag_id, job_dir=job_dir)))
    env = {**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    run = airflow("dags", "test", dag_id, env=env, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert "state=success" in out, out[-5000:]

    # Jobs that failed on the first try: the retry found that cluster failed and submitted anew.
    first, second = clusters_of(htcondor, dag_id, "flaky_jobs")
    assert {j.exit_code for j in htcondor.job_status(first).jobs} == {3}
    assert {j.exit_code for j in htcondor.job_status(second).jobs} == {0}
    # A worker lost after its submit landed: the retry adopted that cluster, none was added.
    (only,) = clusters_of(htcondor, dag_id, "lost_worker")
    assert "worker lost after submitting cluster" in out
    assert f"cluster {only} of an earlier try is" in out
    assert [j.exit_code for j in htcondor.job_status(only).jobs] == [0, 0]


def connection_test(monkeypatch: pytest.MonkeyPatch, conn_id: str, token: str) -> tuple[bool, str]:
    from bursting.airflow.hooks.htcondor import HTCondorHook

    connection = {"conn_type": "htcondor", "host": "127.0.0.1", "port": 9618, "password": token}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return HTCondorHook(conn_id).test_connection()


def test_connection_test_refuses_a_corrupted_token_and_accepts_a_good_one(
    devpool: Any, htcondor: HTCondorPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = devpool.token_file.read_text().strip()
    header, claims, signature = good.split(".")
    corrupted = f"{header}.{claims}.{signature[::-1]}"
    htcondor.remove(-1, "no such cluster")  # an authenticated session exists: it must not help

    ok, message = connection_test(monkeypatch, "pool_bad", corrupted)
    assert not ok and "refused the token for WRITE" in message
    assert signature not in message and signature[::-1] not in message and claims not in message

    ok, message = connection_test(monkeypatch, "pool_good", good)
    assert ok and "accepts the token" in message, message
    assert signature not in message

    ok, message = connection_test(monkeypatch, "pool_bad_again", corrupted)  # after a good one
    assert not ok and "refused the token" in message
