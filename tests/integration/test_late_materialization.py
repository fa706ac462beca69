"""Late materialization against the real personal pool: a cluster of 2000 procs submitted with
`max_materialize = 50` is 2000 idle jobs of demand, not 50."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bursting.model import JobShape, PoolSnapshot
from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_htcondor_pool import wait_for

pytestmark = pytest.mark.integration

# No slot has this attribute: the jobs stay idle whatever execute nodes other tests start.
NEVER = "TARGET.BurstingLateMaterializationTest =?= True"


def _ours(snapshot: PoolSnapshot, memory: int) -> int:
    return sum(
        d.idle_jobs
        for d in snapshot.demand
        if d.shape.memory_mb == memory and "BurstingLateMaterializationTest" in d.shape.requirements
    )


def _shape(snapshot: PoolSnapshot, memory: int) -> JobShape:
    (demand,) = [d for d in snapshot.demand if d.shape.memory_mb == memory]
    return demand.shape


def test_unmaterialized_procs_count_as_idle_demand(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path
) -> None:
    memory = 321  # a shape no other test uses
    queued_before = time.time()
    cluster = htcondor.submit(
        f"executable = /bin/true\ninitialdir = {job_dir}\nrequest_cpus = 3\n"
        f"request_memory = {memory}\nrequest_disk = 2048\nrequirements = {NEVER}\n"
        "max_materialize = 50\nqueue 2000\n"
    )
    try:
        # The schedd materializes the first 50 procs on its own schedule: wait for them, so
        # both halves (materialized procs and the factory's backlog) are exercised.
        wait_for(
            "the schedd to materialize 50 procs",
            lambda: len(htcondor.job_status(cluster).jobs) == 50,
            timeout=60,
        )
        snapshot = htcondor.snapshot()
        assert _ours(snapshot, memory) == 2000
        shape = _shape(snapshot, memory)
        assert (shape.cpus, shape.disk_mb) == (3, 2)
        (demand,) = [d for d in snapshot.demand if d.shape == shape]
        assert all(t >= queued_before - 5 for t in demand.idle_since)
        (row,) = [r for r in snapshot.queue if r.shape == shape]
        assert row.idle == 2000
        # Still 50 in the queue: the rest was counted from the cluster ad.
        assert len(htcondor.job_status(cluster).jobs) == 50
    finally:
        htcondor.remove(cluster)
    wait_for(
        "the removed cluster to leave the demand",
        lambda: _ours(htcondor.snapshot(), memory) == 0,
        timeout=60,
    )
