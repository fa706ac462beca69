"""Requirements-aware planning against the real personal pool: jobs no flavor of any usable cloud
can run start nothing and are reported with why; a cloud's `provides:` reaches the worker's
machine ad, so planning and HTCondor's matchmaking agree; unmaterialized procs are demand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import htcondor2
import pytest
import yaml

from bursting.clouds.local import LocalCloudProvider
from bursting.config import Config, parse_config
from bursting.model import ActionKind, JobState
from bursting.policy.matching import Unmatched
from bursting.pool.htcondor import HTCondorPool
from bursting.runtime import build_controller
from tests.integration.test_controller_local import Running
from tests.integration.test_htcondor_pool import wait_for

pytestmark = pytest.mark.integration

CVMFS = "(TARGET.HasCVMFS =?= true)"
# The clause as the schedd writes it back (`=?=` unparses as `is`), named in the reason.
UNMET_CVMFS = re.compile(r"^Requirements unmet: \(*TARGET\.HasCVMFS (=\?=|is) true\)*$")


def bursting(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bursting.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "250"},
    )


def local_cloud(name: str, state_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "local",
        "max_instances": 2,
        "max_concurrent_boots": 2,
        "flavors": [{"name": f"{name}.2c", "cpus": 2, "memory_mb": 1024, "disk_gb": 5}],
        "local": {"boot_delay_seconds": 1, "state_dir": str(state_dir)},
        **extra,
    }


def write_config(tmp: Path, clouds: list[dict[str, Any]], **policy: Any) -> tuple[Path, Config]:
    raw = {
        "pool": {"id": f"rq{uuid.uuid4().hex[:6]}"},
        "workers": {"idle_shutdown_seconds": 120},
        "clouds": clouds,
        "policy": {"min_idle_seconds": 0, **policy},
        "store": {"url": f"sqlite:///{tmp}/state.db"},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, parse_config(raw)


def delete_instances(config: Config, devpool: Any) -> None:
    for cloud_config in config.clouds:
        cloud = LocalCloudProvider(cloud_config, devpool.containers())
        for instance in cloud.list_instances(config.pool.id).instances:
            cloud.delete(instance.id)


@pytest.fixture
def clusters(htcondor: HTCondorPool) -> Iterator[list[int]]:
    """Clusters a test submits; every one is removed when it ends."""
    submitted: list[int] = []
    yield submitted
    for cluster in submitted:
        htcondor.remove(cluster)


def submit(htcondor: HTCondorPool, clusters: list[int], job_dir: Path, body: str) -> int:
    cluster = htcondor.submit(f"executable = /bin/true\ninitialdir = {job_dir}\n{body}")
    clusters.append(cluster)
    return cluster


def alone_in_the_queue(htcondor: HTCondorPool, clusters: list[int]) -> None:
    """Plans below count every idle job of the pool: other idle clusters would be planned too."""
    mine = " && ".join(f"ClusterId != {c}" for c in clusters)
    others = htcondor.find_clusters(f"JobStatus == 1 && {mine}")
    assert not others, f"idle clusters of someone else in the pool: {others}"


def creates(stdout: str) -> list[str]:
    """Rows of the plan table whose action is `create`."""
    return [line for line in stdout.splitlines() if re.match(r"^\W*create\b", line)]


def never_start(stdout: str) -> dict[str, str]:
    """`note: N idle job(s) can never start: WHY` lines, as {WHY: N}."""
    found = re.findall(r"^note: ([\d,]+) idle job\(s\) can never start: (.+)$", stdout, re.M)
    return {why.strip(): count.replace(",", "") for count, why in found}


def test_jobs_asking_for_what_no_cloud_provides_start_nothing_and_say_why(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path, clusters: list[int]
) -> None:
    path, config = write_config(
        tmp_path,
        [
            local_cloud("private", tmp_path),  # provides nothing
            local_cloud("public", tmp_path, provides={"HasCVMFS": False, "Site": "zurich"}),
        ],
    )
    cluster = submit(
        htcondor,
        clusters,
        job_dir,
        f"request_cpus = 1\nrequest_memory = 128\nrequirements = {CVMFS}\nqueue 6\n",
    )
    alone_in_the_queue(htcondor, clusters)
    try:
        planned = bursting("plan", "--config", str(path))
        assert planned.returncode == 0, planned.stderr
        assert creates(planned.stdout) == [], planned.stdout
        ((why, jobs),) = never_start(planned.stdout).items()
        assert UNMET_CVMFS.match(why) and jobs == "6", planned.stdout
        assert "idle jobs that can never start" in planned.stdout
        row = next(line for line in planned.stdout.splitlines() if "requirements" in line)
        assert re.search(r"\b6\b", row) and "HasCVMFS" in row, row

        # The controller's cycle says the same in its log and its stored record (`status`).
        ran = bursting("run", "--config", str(path), "--cycles", "1")
        assert ran.returncode == 0, ran.stderr
        assert f"6 idle job(s) can never start: {why}" in ran.stderr, ran.stderr
        assert not [line for line in ran.stderr.splitlines() if '"create ' in line], ran.stderr
        status = bursting("status", "--config", str(path))
        assert status.returncode == 0, status.stderr
        assert "idle jobs that can never start" in status.stdout, status.stdout
        row = next(line for line in status.stdout.splitlines() if "Requirements unmet" in line)
        assert re.search(r"\b6\b", row) and "requirements" in row and "HasCVMFS" in row, row
        assert (
            LocalCloudProvider(config.clouds[0], devpool.containers())
            .list_instances(config.pool.id)
            .instances
            == ()
        )
        # Nothing started them meanwhile: they are still idle.
        assert htcondor.job_status(cluster).count(JobState.IDLE) == 6
    finally:
        delete_instances(config, devpool)


def test_jobs_wanting_gpus_or_more_cores_than_any_flavor_start_nothing_and_say_why(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path, clusters: list[int]
) -> None:
    big = local_cloud("private", tmp_path)
    big["flavors"].append({"name": "private.16c", "cpus": 16, "memory_mb": 4096, "disk_gb": 5})
    path, config = write_config(tmp_path, [big, local_cloud("public", tmp_path)])
    submit(
        htcondor,
        clusters,
        job_dir,
        "request_cpus = 1\nrequest_memory = 128\nrequest_gpus = 1\nqueue 2\n",
    )
    submit(htcondor, clusters, job_dir, "request_cpus = 64\nrequest_memory = 128\nqueue 3\n")
    alone_in_the_queue(htcondor, clusters)
    try:
        planned = bursting("plan", "--config", str(path))
        assert planned.returncode == 0, planned.stderr
        assert creates(planned.stdout) == [], planned.stdout
        assert never_start(planned.stdout) == {
            "needs 1 GPU(s), no flavor has GPUs": "2",
            "needs 64 cores, largest flavor has 16": "3",
        }, planned.stdout

        controller = build_controller(config)
        try:
            report = controller.dry_run()
        finally:
            controller.close()
        assert not [a for a in report.plan.actions if a.kind is ActionKind.CREATE]
        assert {(m.code, jobs) for m, jobs in report.plan.unschedulable.items()} == {
            (Unmatched.GPUS, 2),
            (Unmatched.TOO_MANY_CORES, 3),
        }
        assert report.record is not None
        assert {(u.code, u.jobs) for u in report.record.unschedulable} == {
            ("gpus", 2),
            ("too_many_cores", 3),
        }
    finally:
        delete_instances(config, devpool)


@pytest.mark.slow
def test_a_cloud_that_provides_the_attribute_boots_a_worker_that_runs_the_jobs(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path, clusters: list[int]
) -> None:
    cloud = local_cloud("cvmfs", tmp_path, provides={"HasCVMFS": True})
    cloud["max_instances"] = 1
    _, config = write_config(
        tmp_path,
        [cloud],
        interval_seconds=2,
        idle_seconds=4,
        boot_timeout_seconds=60,
        join_timeout_seconds=120,
        orphan_grace_seconds=10,
    )
    cluster = submit(
        htcondor,
        clusters,
        job_dir,
        f"executable = /bin/sleep\narguments = 1\nrequest_cpus = 1\nrequest_memory = 128\n"
        f"request_disk = 1024\nrequirements = {CVMFS}\nqueue 6\n",
    )
    try:
        with Running(config, devpool) as run:
            # The worker's startd really advertises what its cloud provides, as a boolean.
            slot = wait_for(
                "the burst worker's slot ad",
                lambda: _slot(config),
                timeout=180,
                every=1,
            )
            assert slot["HasCVMFS"] is True and slot["BurstingCloud"] == "cvmfs"
            wait_for(
                "the jobs to finish",
                lambda: htcondor.job_status(cluster).done,
                timeout=300,
                every=2,
            )
            jobs = htcondor.job_status(cluster).jobs
            assert len(jobs) == 6
            assert all(
                j.state is JobState.COMPLETED and j.exit_code == 0 and j.starts == 1 for j in jobs
            ), jobs
            assert all(j.host and f"{config.pool.id}-cvmfs-" in j.host for j in jobs), jobs
            records = run.controller.store.cycles(limit=1000)
            assert records and not any(r.unschedulable for r in records)
            created = [
                a
                for _, a in run.controller.store.decisions(limit=1000)
                if a.kind is ActionKind.CREATE
            ]
            assert len(created) == 1 and created[0].cloud == "cvmfs"
            wait_for("every instance to be gone", lambda: not run.live(), timeout=180, every=2)
        assert run.clouds["cvmfs"].list_instances(config.pool.id).instances == ()
    finally:
        delete_instances(config, devpool)


def _slot(config: Config) -> Any:
    ads = htcondor2.Collector(config.pool.collector).query(
        htcondor2.AdType.Startd,
        constraint=f'BurstingPool == "{config.pool.id}"',
        projection=["Name", "HasCVMFS", "BurstingCloud"],
    )
    return ads[0] if ads else None


NEVER = "(TARGET.BurstingRequirementsTest =?= true)"
UNMET_NEVER = re.compile(
    r"^Requirements unmet: \(*TARGET\.BurstingRequirementsTest (=\?=|is) true\)*$"
)


def test_procs_not_yet_materialized_count_and_are_planned(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path, clusters: list[int]
) -> None:
    path, config = write_config(tmp_path, [local_cloud("private", tmp_path)])
    memory = 432  # a shape no other test uses
    cluster = submit(
        htcondor,
        clusters,
        job_dir,
        f"request_cpus = 1\nrequest_memory = {memory}\nrequirements = {NEVER}\n"
        "max_materialize = 10\nqueue 200\n",
    )
    wait_for(
        "the schedd to materialize 10 procs",
        lambda: len(htcondor.job_status(cluster).jobs) == 10,
        timeout=60,
    )
    alone_in_the_queue(htcondor, clusters)
    try:
        snapshot = htcondor.snapshot()
        ours = [d for d in snapshot.demand if "BurstingRequirementsTest" in d.shape.requirements]
        assert sum(d.idle_jobs for d in ours) == 200
        assert len(htcondor.job_status(cluster).jobs) == 10  # the rest is the factory's backlog

        planned = bursting("plan", "--config", str(path))
        assert planned.returncode == 0, planned.stderr
        assert creates(planned.stdout) == [], planned.stdout
        ((why, jobs),) = never_start(planned.stdout).items()
        assert UNMET_NEVER.match(why) and jobs == "200", planned.stdout
        assert re.search(r"^idle jobs: 200;", planned.stdout, re.M), planned.stdout
    finally:
        delete_instances(config, devpool)
