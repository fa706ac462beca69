"""The burst controller against the real personal pool and the local cloud, with real faults.

Each test gets its own pool id, store and cloud records, so nothing leaks between tests.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from bursting.clock import SystemClock
from bursting.clouds.local import LocalCloudProvider
from bursting.config import Config, parse_config
from bursting.controller import Controller
from bursting.model import ActionKind, InstanceState, JobState
from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cloud(
    name: str, priority: int, price: float, max_instances: int, state_dir: Path, **local: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "type": "local",
        "priority": priority,
        "max_instances": max_instances,
        "max_concurrent_boots": 2,
        "flavors": [
            {
                "name": f"{name}.2c",
                "cpus": 2,
                "memory_mb": 1024,
                "disk_gb": 5,
                "price_per_hour": price,
            }
        ],
        "local": {"boot_delay_seconds": 1, "state_dir": str(state_dir), **local},
    }


def make_config(tmp: Path, private: dict[str, Any] | None = None, **policy: Any) -> Config:
    pool_id = f"it{uuid.uuid4().hex[:6]}"
    return parse_config(
        {
            "pool": {"id": pool_id},
            "workers": {"idle_shutdown_seconds": 120},
            "clouds": [
                cloud("private", 1, 0.0, 2, tmp, **(private or {})),
                cloud("public", 5, 0.1, 2, tmp),
            ],
            "policy": {
                "interval_seconds": 2,
                "min_idle_seconds": 0,
                "idle_seconds": 6,
                "boot_timeout_seconds": 20,
                "join_timeout_seconds": 40,
                "missing_cycles_before_gone": 2,
                "orphan_grace_seconds": 10,
                "backoff": {"initial_seconds": 120, "max_seconds": 600},
                **policy,
            },
            "store": {"url": f"sqlite:///{tmp}/state.db"},
        }
    )


class Running:
    """A controller thread over the real pool and two local clouds."""

    def __init__(self, config: Config, devpool: Any) -> None:
        self.config = config
        clouds = {c.name: LocalCloudProvider(c, devpool.containers()) for c in config.clouds}
        self.clouds = clouds
        self.controller = Controller(
            config, HTCondorPool(config.pool), clouds, open_store(config.store.url), SystemClock()
        )
        self.cycles = 0  # cycles finished, so tests wait on the loop's progress, not on time
        run_once = self.controller.run_once

        def counted() -> Any:
            report = run_once()
            self.cycles += 1
            return report

        self.controller.run_once = counted  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.controller.run_forever, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stopping.set()
        self.thread.join(timeout=30)
        self.controller.close()

    def live(self) -> list[Any]:
        return self.controller.store.instances()

    def all(self) -> list[Any]:
        return self.controller.store.instances(include_gone=True)


def submit(htcondor: HTCondorPool, job_dir: Path, count: int, seconds: int) -> int:
    return htcondor.submit(
        f"executable = /bin/sleep\narguments = {seconds}\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
        f"queue {count}\n"
    )


def test_failing_cloud_backs_off_and_the_other_takes_the_load(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"faults": {"boot_failure_fraction": 1.0}})
    cluster = submit(htcondor, job_dir, 4, 3)
    with Running(config, devpool) as run:
        wait_for(
            "the jobs to finish", lambda: htcondor.job_status(cluster).done, timeout=180, every=2
        )
        backoff = run.controller.store.backoffs().get(("private", "private.2c"))
        assert backoff is not None and backoff.failures >= 1
        wait_for("every instance to be gone", lambda: not run.live(), timeout=120, every=2)
    jobs = htcondor.job_status(cluster).jobs
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs)
    assert {j.host.split("@")[1].rsplit("-", 1)[0] for j in jobs} == {f"{config.pool.id}-public"}
    private = [i for i in run.all() if i.cloud == "private"]
    assert private and all(
        any(to == "failed" for _, _, to, _ in run.controller.store.history(i.id)) for i in private
    )


def test_instance_hanging_in_build_is_cleaned_up_after_the_boot_timeout(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"faults": {"hang_in_build": True}}, boot_timeout_seconds=8)
    cluster = submit(htcondor, job_dir, 2, 2)
    with Running(config, devpool) as run:
        wait_for(
            "the jobs to finish", lambda: htcondor.job_status(cluster).done, timeout=180, every=2
        )
        wait_for("every instance to be gone", lambda: not run.live(), timeout=120, every=2)
    private = [i for i in run.all() if i.cloud == "private"]
    assert private
    reasons = [
        why
        for i in private
        for _, _, to, why in run.controller.store.history(i.id)
        if to == "failed"
    ]
    assert reasons and all("still BUILD" in why for why in reasons)
    assert run.clouds["private"].list_instances(config.pool.id).instances == ()


def test_busy_worker_is_never_deleted_and_unreadable_pool_blocks_deletions(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    config = make_config(tmp_path, idle_seconds=2)
    cluster = submit(htcondor, job_dir, 1, 45)  # outlasts the cycles below even on a busy host
    with Running(config, devpool) as run:
        job = wait_for(
            "the job to start",
            lambda: next((j for j in htcondor.job_status(cluster).jobs if j.host), None),
            timeout=120,
        )
        host = job.host.split("@")[1]
        # Cycles start an interval (2 s) apart: four more span well beyond idle_seconds (2 s).
        seen = run.cycles
        wait_for("four more cycles", lambda: run.cycles >= seen + 4, timeout=120, every=0.5)
        (still,) = htcondor.job_status(cluster).jobs
        assert still.state is JobState.RUNNING and still.host == job.host
        (busy,) = [i for i in run.live() if host.startswith(i.id)]
        assert busy.state is InstanceState.RUNNING
        touched = [
            a for _, a in run.controller.store.decisions(limit=1000) if a.instance_id == busy.id
        ]
        assert touched and all(a.kind is ActionKind.CREATE for a in touched)
        wait_for("the job to finish", lambda: htcondor.job_status(cluster).done, timeout=120)
        (finished,) = htcondor.job_status(cluster).jobs
        assert finished.exit_code == 0 and finished.starts == 1

        # Now idle workers would be drained, but not while the pool cannot be read.
        run.controller.stopping.set()
        run.thread.join(timeout=30)
        devpool.daemon("off", "collector")
        try:
            report = run.controller.run_once()
            assert report.pool is None
            kinds = {a.kind for a in report.plan.actions}
            assert ActionKind.DELETE not in kinds and ActionKind.DRAIN not in kinds
        finally:
            devpool.daemon("on", "collector")
    wait_for("the collector to answer", lambda: _readable(devpool), timeout=60)
    again = Running(config, devpool)
    with again:
        wait_for("every instance to be gone", lambda: not again.live(), timeout=120, every=2)


def _readable(devpool: Any) -> bool:
    from bursting.errors import PoolUnavailable

    try:
        HTCondorPool.for_devpool(devpool.token_dir).snapshot()
    except PoolUnavailable:
        return False
    return True
