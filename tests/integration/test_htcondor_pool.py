"""The HTCondor backend against the real personal pool: demand, execute nodes, drain, failures.

The tests share the session's pool but not each other's leftovers: each one submits its own jobs
and starts the execute nodes it needs, and removes both when it ends, so any order works.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bursting.errors import PoolUnavailable, SubmitError
from bursting.model import ClusterStatus, JobState
from bursting.pool.htcondor import HTCondorPool

pytestmark = pytest.mark.integration
PYTHON = Path(__import__("sys").executable)
REPO = Path(__file__).resolve().parents[2]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def work_description(job_dir: Path, cpus: int, memory: int, samples: int = 200_000) -> str:
    return f"""
executable = {PYTHON}
arguments = "-m bursting.workload --samples {samples} --seed $(seed) --output pi.$(seed).json"
environment = "PYTHONPATH={REPO}"
initialdir = {job_dir}
output = out.$(seed)
error = err.$(seed)
log = jobs.log
request_cpus = {cpus}
request_memory = {memory}
request_disk = 1024
"""


def seeds(start: int, count: int) -> list[dict[str, str]]:
    return [{"seed": str(i)} for i in range(start, start + count)]


@pytest.fixture
def nodes(devpool: Any) -> Iterator[Callable[..., str]]:
    """Start execute nodes for one test; every one of them is stopped when the test ends."""
    started: list[str] = []

    def add(cpus: int, memory_mb: int, attrs: dict[str, str] | None = None) -> str:
        name = devpool.add_node(cpus, memory_mb, attrs)
        started.append(name)
        return str(name)

    yield add
    for name in started:
        devpool.kill_node(name)


@pytest.fixture
def campaign(devpool: Any, htcondor: HTCondorPool, job_dir: Path) -> Iterator[dict[str, Any]]:
    """Two clusters, 60 one-core and 12 two-core jobs, queued while no execute node exists."""
    for name in devpool.node_names():
        devpool.kill_node(name)
    small = htcondor.submit(work_description(job_dir, 1, 256), seeds(0, 60))
    large = htcondor.submit(work_description(job_dir, 2, 512), seeds(60, 12))
    yield {"clusters": (small, large), "dir": job_dir}
    for cluster in (small, large):
        with contextlib.suppress(Exception):  # already finished and gone is fine
            htcondor.remove(cluster)


def test_demand_is_grouped_by_shape(htcondor: HTCondorPool, campaign: dict[str, Any]) -> None:
    small, large = campaign["clusters"]
    assert large == small + 1
    snapshot = htcondor.snapshot()
    by_shape = {(d.shape.cpus, d.shape.memory_mb): d.idle_jobs for d in snapshot.demand}
    assert by_shape[(1, 256)] >= 60
    assert by_shape[(2, 512)] >= 12
    assert all(w.instance_id is None or w.running_jobs == 0 for w in snapshot.workers)
    rows = {(r.shape.cpus, r.shape.memory_mb): r for r in snapshot.queue}
    assert rows[(1, 256)].owner == "bursting"
    assert rows[(1, 256)].idle >= 60


def test_two_execute_nodes_run_every_job(
    devpool: Any, htcondor: HTCondorPool, campaign: dict[str, Any], nodes: Callable[..., str]
) -> None:
    first = nodes(2, 2048, {"BurstingInstance": "it-a", "BurstingPool": "tests"})
    second = nodes(2, 2048, {"BurstingInstance": "it-b", "BurstingPool": "tests"})
    workers = wait_for(
        "both nodes in the collector",
        lambda: [w for w in htcondor.snapshot().workers if w.instance_id in ("it-a", "it-b")],
        timeout=60,
    )
    assert {w.pool_id for w in workers} == {"tests"}

    def finished() -> list[ClusterStatus] | None:
        statuses = [htcondor.job_status(c) for c in campaign["clusters"]]
        return statuses if all(s.done for s in statuses) else None

    statuses = wait_for("all 72 jobs to finish", finished, timeout=420, every=3)
    jobs = [job for status in statuses for job in status.jobs]
    assert len(jobs) == 72
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs)
    hosts = {j.host.split("@", 1)[1] for j in jobs if j.host}
    assert hosts == {devpool.startd_name(first), devpool.startd_name(second)}
    assert len(list(campaign["dir"].glob("pi.*.json"))) == 72
    assert htcondor.snapshot().idle_jobs == 0
    # The history tells each finished job's queue and first start times (job wait metric).
    queued = min(j.queued_at for j in jobs if j.queued_at)
    started, cursor = htcondor.started_history(None, queued - 1)
    ours = {job_id: (q, s) for job_id, q, s in started if job_id in {j.job_id for j in jobs}}
    assert len(ours) == 72 and cursor is not None
    assert all(q <= s for q, s in ours.values())
    again, _ = htcondor.started_history(cursor, queued - 1)
    assert not {job_id for job_id, *_ in again} & set(ours)  # only what is new since the cursor


def test_drain_lets_the_running_job_finish_then_the_node_leaves(
    htcondor: HTCondorPool, job_dir: Path, nodes: Callable[..., str]
) -> None:
    nodes(1, 1024, {"BurstingInstance": "it-drain", "BurstingPool": "tests"})
    cluster = htcondor.submit(
        f"executable = /bin/sleep\narguments = 12\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 64\nqueue 1\n"
    )
    job = wait_for(
        "the sleep job to start",
        lambda: next((j for j in htcondor.job_status(cluster).jobs if j.host), None),
        timeout=90,
    )
    node = job.host.split("@", 1)[1]
    assert htcondor.drain([node]) == [node]
    draining = wait_for(
        "the node to report draining",
        lambda: [w for w in htcondor.snapshot().workers if w.name == node and w.draining],
        timeout=30,
    )
    assert draining[0].running_jobs == 1
    outcome = wait_for("the job to finish", lambda: htcondor.job_status(cluster).done, timeout=60)
    assert outcome
    (finished,) = htcondor.job_status(cluster).jobs
    assert finished.state is JobState.COMPLETED and finished.exit_code == 0
    assert finished.finished_at - finished.started_at >= 11  # it ran to the end, not evicted
    wait_for(
        "the drained node to leave the pool",
        lambda: node not in {w.name for w in htcondor.snapshot().workers},
        timeout=60,
    )


def test_failed_and_held_jobs_are_reported(
    htcondor: HTCondorPool, job_dir: Path, nodes: Callable[..., str]
) -> None:
    nodes(2, 1024, {"BurstingInstance": "it-fail", "BurstingPool": "tests"})
    failing = htcondor.submit(
        f"executable = /bin/sh\narguments = \"-c 'echo broken >&2; exit 3'\"\n"
        f"initialdir = {job_dir}\nerror = err.$(ProcId)\nrequest_memory = 64\nqueue 2\n"
    )
    held = htcondor.submit(
        f"executable = /bin/true\ninitialdir = {job_dir}\nhold = true\nrequest_memory = 64\n"
    )
    statuses = wait_for(
        "the failing jobs to end", lambda: htcondor.job_status(failing).done, timeout=120
    )
    assert statuses
    failed = htcondor.job_status(failing).failed_jobs
    assert [j.exit_code for j in failed] == [3, 3]
    assert Path(failed[0].stderr_path).read_text().strip() == "broken"
    (on_hold,) = htcondor.job_status(held).failed_jobs
    assert on_hold.state is JobState.HELD
    assert on_hold.hold_reason


def test_remove_cluster(htcondor: HTCondorPool, job_dir: Path) -> None:
    cluster = htcondor.submit(
        f"executable = /bin/true\ninitialdir = {job_dir}\nrequirements = False\nqueue 3\n"
    )
    assert htcondor.job_status(cluster).count(JobState.IDLE) == 3
    htcondor.remove(cluster)
    status = wait_for(
        "removal", lambda: (s := htcondor.job_status(cluster)).count(JobState.REMOVED) == 3 and s
    )
    assert status.done


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("", "empty"),
        ("arguments = 1\nqueue\n", "no 'executable"),
        ('executable = /bin/true\narguments = "unbalanced\nqueue\n', "refused"),
    ],
)
def test_bad_submit_descriptions_queue_nothing(
    htcondor: HTCondorPool, description: str, message: str
) -> None:
    before = htcondor.snapshot().idle_jobs
    with pytest.raises(SubmitError, match=message):
        htcondor.submit(description)
    assert htcondor.snapshot().idle_jobs == before


def test_unreachable_collector_raises_pool_unavailable(tmp_path: Path) -> None:
    from bursting.config import PoolConfig

    nowhere = HTCondorPool(PoolConfig(collector="127.0.0.1:1", timeout_seconds=5))
    with pytest.raises(PoolUnavailable):
        nowhere.snapshot()


def test_stopped_collector_raises_pool_unavailable(devpool: Any, htcondor: HTCondorPool) -> None:
    """Turns the real collector off, then on again, and waits until it answers before leaving."""
    assert htcondor.snapshot() is not None
    devpool.daemon("off", "collector")
    try:
        fresh = HTCondorPool.for_devpool(devpool.token_dir)
        with pytest.raises(PoolUnavailable):
            fresh.snapshot()
        with pytest.raises(PoolUnavailable):
            htcondor.workers()
    finally:
        devpool.daemon("on", "collector")
    wait_for(
        "the collector to come back with the schedd's ad",
        lambda: _answers(HTCondorPool.for_devpool(devpool.token_dir)),
        timeout=60,
    )


def _answers(pool: HTCondorPool) -> bool:
    try:
        pool.snapshot()
    except PoolUnavailable:
        return False
    return True
