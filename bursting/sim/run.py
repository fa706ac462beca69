"""One `bursting simulate` invocation: read the trace and config, run our controller (and the
baselines with --compare), build the reports and the timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from bursting.config import Config
from bursting.sim.baselines import Bound, CloudschedulerStyle, clairvoyant_bound, static_config
from bursting.sim.engine import SimRun, Simulation
from bursting.sim.readers import read_trace
from bursting.sim.report import Report, build_report, comparison_table, tables
from bursting.sim.settings import SimSettings, load_sim_config
from bursting.sim.timeline import draw_timeline
from bursting.sim.trace import JobDefaults, Trace, parse_moment, window


@dataclass
class SimulationResult:
    ours: Report
    baselines: list[Report] = field(default_factory=list)
    bound: Bound | None = None
    run: SimRun | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ours": self.ours.to_dict()}
        if self.baselines or self.bound:
            data["baselines"] = {r.name: r.to_dict() for r in self.baselines}
            if self.bound is not None:
                data["clairvoyant_bound"] = self.bound.to_dict()
        return data

    def tables(self) -> list[Table]:
        if not self.baselines:
            return tables(self.ours)
        table = comparison_table([self.ours, *self.baselines])
        if self.bound is not None:
            table.add_section()
            table.add_row(
                f"clairvoyant cost bound {self.ours.currency}",
                f"{self.bound.cost:,.2f}",
                *("" for _ in self.baselines),
            )
        return [table, *tables(self.ours)[1:]]

    def notes(self) -> list[str]:
        notes = list(self.ours.notes)
        for report in self.baselines:
            notes += [f"{report.name}: {note}" for note in report.notes]
        if self.bound is not None:
            notes.append(
                f"clairvoyant bound: no policy starting every job within "
                f"{self.bound.wait_target:.0f}s pays less than {self.bound.cost:,.2f} "
                f"{self.ours.currency} ({self.bound.paid_core_hours:,.0f} paid core-hours at "
                f"{self.bound.price_per_core_hour:.4f}/core-hour, {self.bound.free_cores} free "
                f"cores, windows of {self.bound.window_seconds / 3600:g}h)"
            )
        return notes


def simulate(
    config: Config,
    settings: SimSettings,
    trace: Trace,
    *,
    seed: int = 0,
    compare: bool = False,
    static_cores: int | None = None,
    wait_target: float | None = None,
    png: Path | None = None,
) -> SimulationResult:
    sim = Simulation(config, settings, trace, seed)
    run = sim.run()
    ours = build_report(run, "ours", seed)
    result = SimulationResult(ours, run=run)
    if png is not None:
        draw_timeline(run, png)
    if not compare:
        return result
    cores = static_cores or _needed_cores(run)
    fixed, sizes = static_config(config, cores)
    static_run = Simulation(fixed, settings, trace, seed).run()
    shape = ", ".join(f"{n} on {name}" for name, n in sizes.items() if n)
    result.baselines.append(
        build_report(static_run, f"static {cores} cores", seed, (f"instances: {shape}",))
    )
    cs_run = Simulation(config, settings, trace, seed, decider=CloudschedulerStyle).run()
    result.baselines.append(build_report(cs_run, "cloudscheduler-style", seed))
    target = wait_target if wait_target is not None else (ours.wait_max or 0.0)
    result.bound = clairvoyant_bound(config, sim.jobs, target)
    return result


def _needed_cores(run: SimRun) -> int:
    """The cores our run kept busy at its 95th percentile over time, at least one."""
    return max(1, run.pool.busy_cores_percentile(0.95))


def simulate_file(
    trace_path: Path,
    config_path: Path,
    *,
    seed: int = 0,
    fmt: str = "auto",
    compare: bool = False,
    static_cores: int | None = None,
    wait_target: float | None = None,
    png: Path | None = None,
    start: str | None = None,
    end: str | None = None,
    sim_path: Path | None = None,
) -> SimulationResult:
    config, settings = load_sim_config(config_path, sim_path)
    defaults = JobDefaults(settings.jobs.memory_mb_per_core, settings.jobs.disk_mb)
    trace = read_trace(trace_path, defaults, fmt)
    if start is not None or end is not None:
        trace = window(
            trace,
            None if start is None else parse_moment(start, "--start"),
            None if end is None else parse_moment(end, "--end"),
        )
    return simulate(
        config,
        settings,
        trace,
        seed=seed,
        compare=compare,
        static_cores=static_cores,
        wait_target=wait_target,
        png=png,
    )
