"""Faithful: the simulator, given the job log of a real run (the personal pool, two local
clouds, the real controller), reproduces that run's instance count over time and its job waits
within stated tolerances.

The simulated clouds are calibrated from the real run's own boot and join times (the medians of
its instances' REQUESTED -> JOINING and JOINING -> RUNNING), as an operator would calibrate
theirs from the controller's history. Tolerances: instance peak within 1, instances started
within 2, instance-seconds within 40 %, instance counts within one of each other at least 80 % of
the time, job wait p50 and max within one controller interval plus
one negotiation cycle plus 10 s (the real daemons' update intervals are not simulated).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bursting.clock import SystemClock
from bursting.clouds.local import LocalCloudProvider
from bursting.controller import Controller
from bursting.model import JobShape, JobState
from bursting.pool.htcondor import HTCondorPool
from bursting.sim.engine import Simulation
from bursting.sim.report import build_report
from bursting.sim.settings import split_config
from bursting.sim.trace import Trace, TraceJob
from bursting.store import open_store
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL = 2.0
NEGOTIATION = 5.0  # the personal pool's NEGOTIATOR_CYCLE_DELAY bounds how often it matches


def config_data(tmp: Path) -> dict[str, Any]:
    def cloud(name: str, priority: int, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "type": "local",
            "priority": priority,
            "max_instances": 2,
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
            "local": {"boot_delay_seconds": 1, "state_dir": str(tmp)},
        }

    return {
        "pool": {"id": f"sf{uuid.uuid4().hex[:6]}"},
        "workers": {"idle_shutdown_seconds": 120},
        "clouds": [cloud("private", 1, 0.0), cloud("public", 5, 0.1)],
        "policy": {
            "interval_seconds": INTERVAL,
            "min_idle_seconds": 0,
            "idle_seconds": 8,
            "boot_timeout_seconds": 60,
            "join_timeout_seconds": 90,
            "missing_cycles_before_gone": 2,
        },
        "store": {"url": f"sqlite:///{tmp}/state.db"},
    }


def submit(htcondor: HTCondorPool, job_dir: Path, count: int, seconds: int) -> int:
    return htcondor.submit(
        f"executable = /bin/sleep\narguments = {seconds}\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
        f"queue {count}\n"
    )


def count_at(counts: list[tuple[float, int]], moment: float) -> int:
    current = 0
    for at, count in counts:
        if at > moment:
            break
        current = count
    return current


Counts = list[tuple[float, int]]


def agreement(real: Counts, simulated: Counts, end: float) -> float:
    """The share of seconds, from the first job to the end, the two counts are within one."""
    begin = min(real[0][0], simulated[0][0])
    moments = [begin + i for i in range(int(end - begin))]
    close = sum(1 for t in moments if abs(count_at(real, t) - count_at(simulated, t)) <= 1)
    return close / max(1, len(moments))


def instance_seconds(counts: list[tuple[float, int]], end: float) -> float:
    total = 0.0
    for (at, count), (following, _) in zip(counts, [*counts[1:], (end, 0)], strict=True):
        total += count * max(0.0, following - at)
    return total


def test_simulator_reproduces_a_real_run(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    data = config_data(tmp_path)
    config, _ = split_config(dict(data), "faithful")
    clouds = {c.name: LocalCloudProvider(c, devpool.containers()) for c in config.clouds}
    store = open_store(config.store.url)
    controller = Controller(config, HTCondorPool(config.pool), clouds, store, SystemClock())
    counts: list[tuple[float, int]] = []
    run_once = controller.run_once

    def counted() -> Any:
        report = run_once()
        live = sum(1 for i in report.plan.instances if i.state.live)
        if not counts or counts[-1][1] != live:
            counts.append((report.started_at, live))
        return report

    controller.run_once = counted  # type: ignore[method-assign]
    thread = threading.Thread(target=controller.run_forever, daemon=True)
    thread.start()
    try:
        first = submit(htcondor, job_dir, 6, 30)
        time.sleep(45)
        second = submit(htcondor, job_dir, 4, 15)
        for cluster in (first, second):
            wait_for(
                "the jobs to finish",
                lambda c=cluster: htcondor.job_status(c).done,
                timeout=300,
                every=2,
            )
        wait_for("every instance to be gone", lambda: not store.instances(), timeout=180, every=2)
        ended = time.time()
    finally:
        controller.stopping.set()
        thread.join(timeout=30)
        controller.close()
    jobs = [j for c in (first, second) for j in htcondor.job_status(c).jobs]
    assert all(j.state is JobState.COMPLETED for j in jobs)

    # The job log, as the schedd's history has it: submit time and duration of each job.
    trace = Trace(
        sorted(
            (
                TraceJob(j.queued_at, j.finished_at - j.started_at, JobShape(1, 128, 1))  # type: ignore[operator, arg-type]
                for j in jobs
            ),
            key=lambda job: job.submit,
        ),
        "the real run's history",
    )
    boots, joins = [], []
    for instance in store.instances(include_gone=True):
        at = {to: when for when, _, to, _ in store.history(instance.id)}
        if "joining" in at and "running" in at:
            boots.append(at["joining"] - instance.created_at)
            joins.append(at["running"] - at["joining"])
    assert boots, "no instance of the real run reached the pool"
    data["simulation"] = {
        "negotiator_interval_seconds": NEGOTIATION,
        "default_cloud": {
            "boot_seconds": {"kind": "fixed", "value": statistics.median(boots)},
            "join_seconds": {"kind": "fixed", "value": statistics.median(joins)},
            "delete_seconds": {"kind": "fixed", "value": 1},
        },
    }
    sim_config, settings = split_config(data, "faithful")
    simulated = Simulation(sim_config, settings, trace, seed=1).run()
    report = build_report(simulated, "simulated", 1)

    real_started = len(store.instances(include_gone=True))
    real_peak = max(count for _, count in counts)
    real_waits = sorted(j.wait_seconds for j in jobs)  # type: ignore[type-var]
    real_area = instance_seconds(counts, ended)
    sim_area = instance_seconds(simulated.instance_counts, simulated.ended_at)
    print(
        f"real: {real_started} instances, peak {real_peak}, {real_area:.0f} instance-s, waits "
        f"p50 {statistics.median(real_waits):.1f}s max {real_waits[-1]:.1f}s; simulated: "
        f"{sum(c.instances_started for c in report.clouds.values())} instances, peak "
        f"{report.instances_peak}, {sim_area:.0f} instance-s, waits p50 {report.wait_p50:.1f}s "
        f"max {report.wait_max:.1f}s"
    )
    together = agreement(counts, simulated.instance_counts, ended)
    print(f"instance counts within one of each other {together:.0%} of the time")
    tolerance = INTERVAL + NEGOTIATION + 10
    assert together >= 0.8
    assert abs(report.instances_peak - real_peak) <= 1
    assert abs(sum(c.instances_started for c in report.clouds.values()) - real_started) <= 2
    assert abs(sim_area - real_area) <= 0.4 * real_area
    assert abs(report.wait_p50 - statistics.median(real_waits)) <= tolerance  # type: ignore[operator]
    assert abs(report.wait_max - real_waits[-1]) <= tolerance  # type: ignore[operator]
