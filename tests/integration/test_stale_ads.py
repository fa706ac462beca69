"""A node killed before it could say goodbye (a VM deleted hard, a container SIGKILLed) leaves
its ads in the collector. The negotiator prefers the smallest free slot, so a small dead node
takes every match of a job until its ads go; the personal pool drops an ad silent for a minute,
so the job runs elsewhere within about two minutes instead of fifteen."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import htcondor2
import pytest

from bursting.devpool import condor_config as cc
from bursting.devpool.containers import container_name
from bursting.model import JobState
from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Ads go once silent for CLASSAD_LIFETIME (60s), checked every 60s: at most 120s, plus slack.
ADS_GONE_WITHIN = 170.0


def slots_of(node: str) -> list[str]:
    ads = htcondor2.Collector(cc.COLLECTOR).query(
        htcondor2.AdTypes.Startd, constraint=f'Machine == "{node}"', projection=["Name"]
    )
    return [str(ad["Name"]) for ad in ads]


def test_a_job_leaves_a_hard_killed_nodes_ghost_for_a_live_node(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    ghost, live = f"ghost-{suffix}", f"live-{suffix}"
    try:
        devpool.add_container_node(1, 1024, name=ghost)
        wait_for(f"{ghost} to advertise", lambda: slots_of(ghost), timeout=180)
        killed = subprocess.run(
            ["podman", "kill", "--signal", "KILL", container_name(ghost)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert killed.returncode == 0, killed.stderr
        killed_at = time.monotonic()
        assert slots_of(ghost), "a SIGKILLed node cannot withdraw its ads: the ghost is there"

        devpool.add_container_node(2, 2048, name=live)
        wait_for(f"{live} to advertise", lambda: slots_of(live), timeout=180)
        cluster = htcondor.submit(
            f"executable = /bin/true\ninitialdir = {job_dir}\nrequest_memory = 64\nqueue 1\n"
        )
        wait_for(
            f"the collector to drop {ghost}'s ads",
            lambda: not slots_of(ghost),
            timeout=ADS_GONE_WITHIN - (time.monotonic() - killed_at),
        )
        status = wait_for(
            f"job {cluster}.0 to finish", lambda: _done(htcondor, cluster), timeout=120
        )
        (job,) = status.jobs
        assert job.state is JobState.COMPLETED and job.exit_code == 0
        assert job.host is not None and ghost not in job.host
    finally:
        for name in (ghost, live):
            devpool.containers().kill_node(name)


def _done(htcondor: HTCondorPool, cluster: int) -> Any:
    status = htcondor.job_status(cluster)
    return status if status.done else None
