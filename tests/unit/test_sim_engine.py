"""The simulator replays traces through the real controller over the simulated pool and clouds:
deterministic per seed, partitionable slots, Requirements, jobs nothing can run, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bursting.cli import app
from bursting.controller import Controller
from bursting.errors import ConfigError
from bursting.model import JobShape
from bursting.sim.engine import Simulation
from bursting.sim.generate import Bursts, generate
from bursting.sim.readers import write_csv
from bursting.sim.report import build_report
from bursting.sim.run import simulate
from bursting.sim.settings import split_config
from bursting.sim.trace import Trace, TraceJob

START = 1_700_000_000.0


def cloud(name: str, priority: int, price: float, cpus: int = 8, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "local",
        "priority": priority,
        "max_instances": extra.pop("max_instances", 10),
        "max_concurrent_boots": extra.pop("max_concurrent_boots", 5),
        "flavors": extra.pop(
            "flavors",
            [
                {
                    "name": f"{name}-{cpus}",
                    "cpus": cpus,
                    "memory_mb": cpus * 2048,
                    "price_per_hour": price,
                }
            ],
        ),
        **extra,
    }


def make_config(
    clouds: list[dict[str, Any]], simulation: dict[str, Any] | None = None, **policy: Any
) -> dict[str, Any]:
    return {
        "pool": {"id": "simtest"},
        "clouds": clouds,
        "policy": {"interval_seconds": 30, "min_idle_seconds": 60, "idle_seconds": 600, **policy},
        "simulation": simulation or {},
    }


def run(data: dict[str, Any], trace: Trace, seed: int = 0) -> Any:
    config, settings = split_config(json.loads(json.dumps(data)), "test")
    result = Simulation(config, settings, trace, seed).run()
    return result, build_report(result, "ours", seed)


def jobs(*specs: tuple[float, float, JobShape]) -> Trace:
    return Trace([TraceJob(START + s, r, shape) for s, r, shape in specs], "test")


TWO_CLOUDS = [cloud("private", 1, 0.0), cloud("public", 5, 0.4, max_instances=20)]
RANDOM = {
    "default_cloud": {
        "boot_seconds": {"kind": "lognormal", "median": 90, "sigma": 0.5},
        "boot_failure_rate": 0.2,
    }
}


def comparable(report: Any) -> dict[str, Any]:
    data = report.to_dict()
    for key in ("wall_seconds", "speedup"):
        data.pop(key)
    return data


def test_same_seed_same_run_other_seed_other_run() -> None:
    trace = generate(Bursts(200, 1, burst_size=50), seed=1)
    data = make_config(TWO_CLOUDS, RANDOM)
    first, second, other = (run(data, trace, seed)[1] for seed in (5, 5, 6))
    assert comparable(first) == comparable(second)
    assert comparable(first) != comparable(other)
    assert first.jobs_run == 200 and first.boots_failed > 0


def test_cycles_are_the_controllers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = Controller.run_once

    def counted(self: Controller) -> Any:
        calls.append(self.clock.now())
        return real(self)

    monkeypatch.setattr(Controller, "run_once", counted)
    _result, report = run(make_config(TWO_CLOUDS), jobs((0, 600, JobShape(1, 1024))))
    assert report.controller_cycles == len(calls) > 0
    assert report.jobs_run == 1
    # Cycles fall on the interval's ticks, never between them.
    assert all((t - START) % 30 == 0 for t in calls)


def test_partitionable_slot_takes_eight_one_core_jobs() -> None:
    trace = jobs(*((0, 3600, JobShape(1, 1024)) for _ in range(8)))
    result, report = run(make_config([cloud("private", 1, 0.0)]), trace)
    assert report.instances_peak == 1
    starts = [r.started_at for r in result.pool.records]
    assert max(starts) - min(starts) <= 60  # one negotiation cycle carves all eight slots


def test_requirements_pick_the_cloud_that_provides() -> None:
    needs = JobShape(1, 1024, 0, 0, "TARGET.HasCVMFS == true")
    clouds = [
        cloud("private", 1, 0.0, provides={"HasCVMFS": False}),
        cloud("public", 5, 0.5, provides={"HasCVMFS": True}),
    ]
    _result, report = run(make_config(clouds), jobs(*((0, 600, needs) for _ in range(4))))
    assert report.jobs_run == 4
    assert report.clouds["public"].instances_started >= 1
    assert report.clouds["private"].instances_started == 0


def test_jobs_nothing_can_run_are_counted_and_the_run_ends() -> None:
    trace = jobs((0, 600, JobShape(64, 1024)), (10, 600, JobShape(1, 1024)))
    result, report = run(make_config(TWO_CLOUDS), trace)
    assert report.jobs_nothing_could_run == {"too_many_cores": 1}
    assert report.jobs_run == 1
    assert result.ended_at - START < 4 * 3600


def test_waits_costs_and_busy_fraction_add_up() -> None:
    # Nine 8-core one-hour jobs: the private cloud takes at most one, the rest are paid.
    trace = jobs(*((0, 3600, JobShape(8, 8192)) for _ in range(9)))
    clouds = [cloud("private", 1, 0.0, max_instances=1), cloud("public", 5, 1.0)]
    _result, report = run(
        make_config(
            clouds,
            {
                "default_cloud": {
                    "boot_seconds": {"kind": "fixed", "value": 100},
                    "join_seconds": {"kind": "fixed", "value": 20},
                }
            },
        ),
        trace,
    )
    assert report.jobs_run == 9
    assert report.clouds["public"].instances_started == 8
    assert report.busy_core_hours == pytest.approx(72)
    # Each paid instance lives at least boot + join + the job + the idle timeout.
    assert report.cost >= 8 * (3600 + 120 + 600) / 3600
    assert report.busy_fraction is not None and 0.5 < report.busy_fraction < 1
    assert 60 + 100 <= report.wait_p50 <= 60 + 100 + 20 + 2 * 60 + 30  # type: ignore[operator]


def test_outage_settings_must_name_a_known_cloud() -> None:
    data = make_config(TWO_CLOUDS, {"clouds": {"elsewhere": {"boot_failure_rate": 0.1}}})
    with pytest.raises(ConfigError, match=r"simulation.clouds.elsewhere: no cloud of that name"):
        split_config(data, "test")
    data = make_config(TWO_CLOUDS, {"default_cloud": {"boot_failure_rate": 2}})
    with pytest.raises(ConfigError, match=r"simulation.default_cloud.boot_failure_rate"):
        split_config(data, "test")


def test_cli_json_table_and_png(tmp_path: Path) -> None:
    trace = generate(Bursts(200, 1, burst_size=50), seed=2)
    write_csv(trace.jobs, tmp_path / "trace.csv")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(make_config(TWO_CLOUDS)))
    args = [
        "simulate",
        "--trace",
        str(tmp_path / "trace.csv"),
        "--config",
        str(tmp_path / "config.yaml"),
        "--seed",
        "3",
    ]
    done = CliRunner().invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)["ours"]
    assert data["jobs_run"] == 200
    assert data["wait_p50"] <= data["wait_p95"] <= data["wait_p99"] <= data["wait_max"]
    assert set(data["clouds"]) == {"private", "public"}
    done = CliRunner().invoke(app, [*args, "--png", str(tmp_path / "t.png")])
    assert done.exit_code == 0, done.output
    assert "wait p95" in done.output and "per cloud" in done.output
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_baselines_beside_ours() -> None:
    trace = generate(Bursts(300, 2, burst_size=100), seed=4)
    config, settings = split_config(make_config(TWO_CLOUDS), "test")
    result = simulate(config, settings, trace, compare=True, static_cores=16)
    names = [r.name for r in result.baselines]
    assert names == ["static 16 cores", "cloudscheduler-style"]
    assert result.bound is not None
    assert result.bound.cost <= result.ours.cost
    assert all(r.jobs_run == 300 for r in (result.ours, *result.baselines))
    static = result.baselines[0]
    assert static.instances_peak == 2


def test_cli_takes_simulation_settings_from_their_own_file(tmp_path: Path) -> None:
    trace = jobs(*((i * 60.0, 600, JobShape(1, 1024)) for i in range(10)))
    write_csv(trace.jobs, tmp_path / "trace.csv")
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({k: v for k, v in make_config(TWO_CLOUDS).items() if k != "simulation"})
    )
    (tmp_path / "sim.yaml").write_text(
        yaml.safe_dump({"default_cloud": {"boot_seconds": {"kind": "fixed", "value": 800}}})
    )
    args = [
        "simulate",
        "--trace",
        str(tmp_path / "trace.csv"),
        "--config",
        str(tmp_path / "config.yaml"),
        "--json",
    ]
    slow = json.loads(CliRunner().invoke(app, [*args, "--sim", str(tmp_path / "sim.yaml")]).output)
    fast = json.loads(CliRunner().invoke(app, args).output)
    assert slow["ours"]["wait_max"] > 800 > fast["ours"]["wait_max"]
    span = ["--start", str(START + 120), "--end", str(START + 300)]
    window = CliRunner().invoke(app, [*args, *span])
    assert json.loads(window.output)["ours"]["jobs"] == 3


def test_busy_cores_percentile_is_weighted_by_time() -> None:
    long = (0, 3 * 3600, JobShape(1, 1024))
    short = [(3600, 300, JobShape(1, 1024)) for _ in range(8)]
    result, _ = run(make_config([cloud("private", 1, 0.0, cpus=16)]), jobs(long, *short))
    assert result.pool.busy_cores_percentile(0.95) == 1
    assert result.pool.busy_cores_percentile(0.99) == 9


def test_skipping_quiet_ticks_changes_nothing() -> None:
    """The event-driven loop against a cycle at every tick, as the daemon runs: same run."""
    trace = generate(Bursts(150, 0.5, burst_size=50), seed=8)
    data = make_config(TWO_CLOUDS, RANDOM, spend={"max_per_hour": 3.0})
    config, settings = split_config(data, "test")
    skipping = Simulation(config, settings, trace, seed=2).run()
    every = Simulation(config, settings, trace, seed=2, every_tick=True).run()
    assert every.cycles > 3 * skipping.cycles
    assert comparable(build_report(every, "x", 2)) == comparable(build_report(skipping, "x", 2)) | {
        "controller_cycles": every.cycles
    }


def test_a_clouds_settings_inherit_what_they_do_not_set() -> None:
    data = make_config(
        TWO_CLOUDS,
        {
            "default_cloud": {"boot_failure_rate": 0.25, "boot_seconds": {"value": 7}},
            "clouds": {"public": {"outages": [{"start_hours": 1, "duration_hours": 2}]}},
        },
    )
    _, settings = split_config(data, "test")
    public = settings.cloud("public")
    assert public.boot_failure_rate == 0.25 and public.boot_seconds.value == 7
    assert public.outages[0].duration_hours == 2
    assert settings.cloud("private").outages == ()
