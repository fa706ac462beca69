"""Never trust absence after a restart, against the real personal pool: the schedd stops for
16 s and starts again while the controller runs; the pool is unreadable meanwhile, and the fresh
schedd may report no running job until it has reconnected to its shadows and starters. Neither
the busy nor the idle worker is drained or deleted, and the busy worker's job is not restarted
(COBalD/TARDIS #376)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bursting.errors import PoolUnavailable
from bursting.model import ActionKind, ClusterStatus, InstanceState, JobState
from bursting.policy.absence import distrust_window
from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_collector_restart import _our_startds, _two_core_jobs
from tests.integration.test_controller_local import Running, make_config
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 16  # the outage: the schedd is off this long, then back


def _status(htcondor: HTCondorPool, cluster: int) -> ClusterStatus | None:
    try:
        return htcondor.job_status(cluster)
    except PoolUnavailable:  # schedd still down or starting
        return None


def test_workers_busy_or_idle_survive_a_schedd_restart(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    # idle_seconds far beyond the test: the idle worker may only go for the wrong reason.
    config = make_config(tmp_path, idle_seconds=3600)
    # One cloud of at most two 2-core workers: one per 2-core job, no more.
    config = config.model_copy(update={"clouds": config.clouds[:1]})
    workers = getattr(config, "workers", None)
    if workers is not None and hasattr(workers, "idle_shutdown_seconds"):
        # The worker's own idle backstop must not end the idle worker during the test either.
        config = config.model_copy(
            update={"workers": workers.model_copy(update={"idle_shutdown_seconds": 1800})}
        )
    long_job = _two_core_jobs(htcondor, job_dir, 600)
    short_job = _two_core_jobs(htcondor, job_dir, 1)
    run = Running(config, devpool)
    schedd_off = False
    try:
        with run:
            wait_for(
                "the short job to finish on its own worker",
                lambda: htcondor.job_status(short_job).done,
                timeout=240,
                every=2,
            )
            started = wait_for(
                "the long job to run",
                lambda: next((j for j in htcondor.job_status(long_job).jobs if j.host), None),
                timeout=120,
                every=2,
            )
            ids = {i.id for i in run.live()}
            assert len(ids) == 2 and all(i.state is InstanceState.RUNNING for i in run.live())
            busy_id = next(i for i in ids if started.host.split("@")[1].startswith(i))
            wait_for("both startds in the collector", lambda: _our_startds(htcondor, ids) == ids)
            wait_for(
                "a cycle that sees the busy worker's job",
                lambda: (
                    run.controller.last is not None
                    and run.controller.last.pool is not None
                    and started.host.split("@", 1)[1] in run.controller.last.pool.busy_hosts
                ),
                timeout=60,
                every=0.5,
            )
            # The shadow reports the start to the schedd a little after the job runs.
            wait_for(
                "the schedd to record the long job's start",
                lambda: htcondor.job_status(long_job).jobs[0].starts == 1,
                timeout=120,
                every=1,
            )
            history_before = {i: len(run.controller.store.history(i)) for i in ids}

            # The outage: the schedd is off; cycles go on and must see "pool unreadable".
            cycles_before = run.cycles
            off_at = time.time()
            devpool.daemon("off", "schedd")
            schedd_off = True
            try:
                wait_for(
                    "the controller to see the pool unreadable",
                    lambda: run.controller.last is not None and run.controller.last.pool is None,
                    timeout=60,
                    every=0.5,
                )
                time.sleep(OUTAGE_SECONDS)  # the scenario's outage, not an assertion
            finally:
                devpool.daemon("on", "schedd")
                schedd_off = False
            back_at = time.time()
            assert run.cycles > cycles_before

            # The schedd answers again, and the controller reads the pool with it.
            wait_for(
                "the schedd to answer a query",
                lambda: _status(htcondor, long_job) is not None,
                timeout=120,
                every=1,
            )
            fresh = wait_for(
                "a cycle that reads the pool from the restarted schedd",
                lambda: (
                    run.controller.last is not None
                    and run.controller.last.pool is not None
                    and run.controller.last.pool.taken_at > back_at
                    and run.controller.last.pool
                ),
                timeout=120,
                every=0.5,
            )
            # The snapshot knows the schedd is young: that is what makes absence meaningless.
            assert fresh.schedd_started_at is not None and fresh.schedd_started_at > off_at

            # Cycles keep running while the schedd reconnects to its jobs, and beyond the
            # window in which absence of running-job evidence means nothing.
            window = distrust_window(5.0)  # the personal pool's UPDATE_INTERVAL
            cycles_back = run.cycles
            wait_for(
                "controller cycles past the restart window",
                lambda: (
                    run.cycles >= cycles_back + 3
                    and run.controller.last is not None
                    and run.controller.last.pool is not None
                    and run.controller.last.pool.taken_at > back_at + window
                ),
                timeout=240,
                every=1,
            )
            after = {i.id: i for i in run.live()}
            moves = {
                i: [(to, why) for _, _, to, why in run.controller.store.history(i)[n:]]
                for i, n in history_before.items()
            }
            assert set(after) == ids, f"an instance left: {moves}"
            assert all(i.state is InstanceState.RUNNING for i in after.values()), moves
            assert all(not m for m in moves.values()), f"state changes after the restart: {moves}"
            assert after[busy_id].worker_missing == 0
            assert _our_startds(htcondor, ids) == ids
            decided = run.controller.store.decisions(limit=500)
            touched = [
                a
                for _, a in decided
                if a.instance_id in ids and a.kind in (ActionKind.DRAIN, ActionKind.DELETE)
            ]
            assert not touched, f"drain or delete decided around the restart: {touched}"
            status = _status(htcondor, long_job)
            assert status is not None, "the schedd stopped answering after the restart"
            (job,) = status.jobs
            # Still the first run, on the same worker: the schedd reconnected, it did not restart.
            assert job.state is JobState.RUNNING and job.starts == 1, job
            assert job.host == started.host and job.started_at == started.started_at, job
    finally:
        if schedd_off:
            devpool.daemon("on", "schedd")
        # Bounded: cleanup needs the schedd, which the outage may have left slow to answer.
        deadline = time.monotonic() + 120
        while _status(htcondor, long_job) is None and time.monotonic() < deadline:
            time.sleep(1)
        htcondor.remove(long_job)
        htcondor.remove(short_job)
        for provider in run.clouds.values():
            for seen in provider.list_instances(config.pool.id).instances:
                provider.delete(seen.id)
