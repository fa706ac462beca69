"""Policy regressions, checked by replaying generated traces through the controller: bursts
cause no boot storms, the spend cap holds, an outage shifts work to the other cloud, and the idle
timeout trades cost for wait as the report says."""

from __future__ import annotations

import math

from bursting.model import JobShape
from bursting.sim.generate import Bursts, generate
from bursting.sim.trace import Trace, TraceJob
from tests.unit.test_sim_engine import START, cloud, make_config, run

HOUR = 3600.0


def periodic(bursts: int, every: float, size: int, runtime: float, cpus: int = 1) -> Trace:
    jobs = [
        TraceJob(START + b * every + i, runtime, JobShape(cpus, 1024 * cpus))
        for b in range(bursts)
        for i in range(size)
    ]
    return Trace(jobs, "periodic")


def test_bursts_cause_no_boot_storm() -> None:
    trace = generate(Bursts(1500, 1, burst_size=500, burst_seconds=5), seed=11)
    clouds = [
        cloud("private", 1, 0.0, max_instances=6, max_concurrent_boots=2),
        cloud("public", 5, 0.3, max_instances=40, max_concurrent_boots=4),
    ]
    sim = {"default_cloud": {"boot_failure_rate": 0.2}}
    result, report = run(make_config(clouds, sim), trace, seed=1)
    assert report.jobs_run == 1500
    assert result.clouds["private"].max_pending == 2
    assert result.clouds["public"].max_pending == 4
    assert report.clouds["private"].instances_peak <= 6
    assert report.clouds["public"].instances_peak <= 40
    # Failed boots back the flavor off instead of being retried at full speed.
    assert report.boots_failed < 0.5 * sum(c.instances_started for c in report.clouds.values())


def test_spend_cap_holds() -> None:
    trace = periodic(bursts=3, every=4 * HOUR, size=200, runtime=1800, cpus=1)
    clouds = [cloud("public", 1, 0.5, max_instances=50, max_concurrent_boots=10)]
    capped_result, capped = run(make_config(clouds, spend={"max_per_hour": 2.0}), trace)
    free_result, free = run(make_config(clouds), trace)
    assert capped_result.clouds["public"].max_rate <= 2.0 + 1e-9
    assert free_result.clouds["public"].max_rate > 2.0  # the cap, not the demand, held it down
    hours = capped.simulated_seconds / HOUR
    assert capped.cost <= 2.0 * hours
    assert capped.jobs_run == free.jobs_run == 600
    assert capped.wait_max > free.wait_max  # type: ignore[operator]


def test_outage_of_one_cloud_shifts_work_to_the_other() -> None:
    trace = periodic(bursts=8, every=2 * HOUR, size=64, runtime=1200, cpus=1)
    clouds = [cloud("cheap", 1, 0.1, max_instances=20), cloud("dear", 5, 0.4, max_instances=20)]
    outage = {"start_hours": 3.5, "duration_hours": 6}
    sim = {"clouds": {"cheap": {"outages": [outage]}}}
    result, report = run(make_config(clouds, sim), trace)
    _, calm = run(make_config(clouds), trace)
    begin, end = START + 3.5 * HOUR, START + 9.5 * HOUR
    assert not [t for t in result.clouds["cheap"].created if begin <= t < end]
    assert [t for t in result.clouds["dear"].created if begin <= t < end]
    assert report.clouds["dear"].instances_started > calm.clouds["dear"].instances_started
    assert report.clouds["cheap"].instances_started < calm.clouds["cheap"].instances_started
    assert report.jobs_run == calm.jobs_run == 8 * 64
    assert report.cost > calm.cost


def test_outage_that_kills_instances_requeues_their_jobs() -> None:
    trace = periodic(bursts=1, every=HOUR, size=32, runtime=4 * HOUR, cpus=1)
    clouds = [cloud("cheap", 1, 0.1, max_instances=20), cloud("dear", 5, 0.4, max_instances=20)]
    outage = {"start_hours": 1, "duration_hours": 2, "kills_instances": True}
    result, report = run(make_config(clouds, {"clouds": {"cheap": {"outages": [outage]}}}), trace)
    assert report.clouds["cheap"].lost_in_outage == 4
    assert all(r is not None and r.restarts == 1 for r in result.pool.records)
    # Each ran its whole four hours again after the outage (the first run's end does not count).
    assert all(r.finished_at >= START + 5 * HOUR for r in result.pool.records)
    assert report.busy_core_hours > 32 * 4.9  # the lost first hour was paid and busy too
    assert report.clouds["dear"].instances_started >= 4


def test_idle_timeout_trades_cost_for_wait() -> None:
    trace = periodic(bursts=12, every=40 * 60, size=40, runtime=600, cpus=1)
    clouds = [cloud("public", 1, 0.5, max_instances=20)]
    sim = {"default_cloud": {"boot_seconds": {"kind": "fixed", "value": 120}}}
    short = run(make_config(clouds, sim, idle_seconds=60), trace)[1]
    long = run(make_config(clouds, sim, idle_seconds=3600), trace)[1]
    assert short.cost < long.cost
    assert short.paid_core_hours < long.paid_core_hours
    assert short.wait_p95 > long.wait_p95  # type: ignore[operator]
    assert math.isclose(short.busy_core_hours, long.busy_core_hours)
    assert short.busy_fraction > long.busy_fraction  # type: ignore[operator]


def test_skipping_quiet_ticks_changes_nothing_under_faults() -> None:
    """Slow and failing boots, boot timeouts, an outage that kills instances, a spend cap: the
    event-driven replay still equals a cycle at every tick."""
    from bursting.sim.engine import Simulation
    from bursting.sim.report import build_report
    from bursting.sim.settings import split_config
    from tests.unit.test_sim_engine import comparable

    public = [
        {"name": f"m{c}", "cpus": c, "memory_mb": c * 2048, "price_per_hour": c / 20}
        for c in (8, 16)
    ]
    clouds = [
        cloud("private", 1, 0.0, max_instances=5, max_concurrent_boots=2),
        cloud("public", 5, 0.0, max_instances=20, flavors=public),
    ]
    sim = {
        "default_cloud": {
            "boot_seconds": {"kind": "lognormal", "median": 200, "sigma": 0.8},
            "boot_failure_rate": 0.1,
        },
        "clouds": {
            "private": {
                "outages": [{"start_hours": 10, "duration_hours": 5, "kills_instances": True}]
            }
        },
    }
    data = make_config(
        clouds, sim, spend={"max_per_hour": 5.0}, idle_seconds=300, boot_timeout_seconds=400
    )
    config, settings = split_config(data, "test")
    trace = generate(Bursts(400, 1.5, burst_size=80), seed=3)
    skipping = Simulation(config, settings, trace, seed=4).run()
    every = Simulation(config, settings, trace, seed=4, every_tick=True).run()
    expected = comparable(build_report(every, "x", 4)) | {"controller_cycles": skipping.cycles}
    assert comparable(build_report(skipping, "x", 4)) == expected
    assert every.cycles > 3 * skipping.cycles
    assert sum(c.lost for c in skipping.clouds.values()) > 0
    assert skipping.store is not None and skipping.store.failed  # boots failed or timed out


def test_quota_caps_a_cloud_and_the_rest_goes_elsewhere() -> None:
    trace = periodic(bursts=1, every=HOUR, size=64, runtime=1800, cpus=1)
    clouds = [cloud("cheap", 1, 0.1, max_instances=10), cloud("dear", 5, 0.4, max_instances=10)]
    sim = {"clouds": {"cheap": {"quota_cores": 16}}}
    _, report = run(make_config(clouds, sim), trace)
    assert report.clouds["cheap"].instances_peak == 2  # 16 cores of 8-core instances
    assert report.clouds["dear"].instances_started >= 6
    assert report.jobs_run == 64
