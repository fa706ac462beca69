"""Never trust absence after a restart, against the real personal pool: the collector stops for
16 s and starts again while the controller runs; neither the busy nor the idle worker is drained
or deleted although the fresh collector has not heard from them yet (COBalD/TARDIS #376)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bursting.errors import PoolUnavailable
from bursting.model import ActionKind, InstanceState, JobState
from bursting.policy.absence import distrust_window
from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_controller_local import Running, make_config
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 16  # the outage: the collector is off this long, then back


def _two_core_jobs(htcondor: HTCondorPool, job_dir: Path, seconds: int) -> int:
    """One 2-core job: on 2-core flavors each such job needs its own worker."""
    return htcondor.submit(
        f"executable = /bin/sleep\narguments = {seconds}\ninitialdir = {job_dir}\n"
        "request_cpus = 2\nrequest_memory = 128\nrequest_disk = 1024\nqueue 1\n"
    )


def _our_startds(htcondor: HTCondorPool, instance_ids: set[str]) -> set[str]:
    try:
        workers = htcondor.workers()
    except PoolUnavailable:  # collector still down or starting: nobody is seen
        return set()
    return {w.instance_id for w in workers if w.instance_id is not None} & instance_ids


def test_workers_busy_or_idle_survive_a_collector_restart(
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
            history_before = {i: len(run.controller.store.history(i)) for i in ids}

            # The outage: the collector is off; cycles go on and must see "pool unreadable".
            cycles_before = run.cycles
            devpool.daemon("off", "collector")
            try:
                wait_for(
                    "the controller to see the pool unreadable",
                    lambda: run.controller.last is not None and run.controller.last.pool is None,
                    timeout=60,
                    every=0.5,
                )
                time.sleep(OUTAGE_SECONDS)  # the scenario's outage, not an assertion
            finally:
                devpool.daemon("on", "collector")
            back_at = time.time()
            assert run.cycles > cycles_before

            # Cycles keep running while the fresh collector hears from the workers again, and
            # beyond the window in which their absence means nothing.
            wait_for(
                "both startds back in the collector",
                lambda: _our_startds(htcondor, ids) == ids,
                timeout=120,
                every=1,
            )
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
            (job,) = htcondor.job_status(long_job).jobs
            assert job.state is JobState.RUNNING and job.starts == 1
    finally:
        htcondor.remove(long_job)
        htcondor.remove(short_job)
        for provider in run.clouds.values():
            for seen in provider.list_instances(config.pool.id).instances:
                provider.delete(seen.id)
