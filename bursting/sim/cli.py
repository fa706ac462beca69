"""`bursting simulate`: replay a job trace through the controller in simulated time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()


def simulate(
    trace: Annotated[
        Path,
        typer.Option(
            "--trace", "-t", help="Job trace: SWF (.swf, .swf.gz), condor_history -json, or CSV."
        ),
    ],
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            envvar="BURSTING_CONFIG",
            help="The controller's YAML config, as `bursting run` reads it.",
        ),
    ],
    sim: Annotated[
        Path | None,
        typer.Option(
            "--sim",
            help="Simulation settings (boot and join delays, failure rates, quotas, outages, "
            "negotiator interval); or put them in the config under `simulation:`.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw: same seed, same run.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    png: Annotated[
        Path | None, typer.Option("--png", help="Write the timeline (demand, capacity, cost).")
    ] = None,
    trace_format: Annotated[str, typer.Option("--format", help="auto, swf, json or csv.")] = "auto",
    start: Annotated[
        str | None,
        typer.Option(help="Replay only jobs submitted from then (ISO 8601 or epoch seconds)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="...and before then (ISO 8601 or epoch seconds).")
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Also run the baselines on the same trace: a static pool, a cloudscheduler-"
            "style policy, and the clairvoyant lower bound on cost.",
        ),
    ] = False,
    static_cores: Annotated[
        int | None,
        typer.Option(
            "--static-cores",
            min=1,
            help="Size of the static baseline pool in cores (default: the cores our run "
            "needed at its 95th percentile).",
        ),
    ] = None,
    wait_target: Annotated[
        float | None,
        typer.Option(
            "--wait-target",
            min=0,
            help="Wait (seconds) every job must start within, for the clairvoyant bound "
            "(default: our run's longest wait).",
        ),
    ] = None,
) -> None:
    """What would this config have done with this workload? Replays the trace through the
    controller's own planner, policy and lifecycle over a simulated pool and clouds."""
    from bursting.sim.run import simulate_file

    result = simulate_file(
        trace,
        config,
        seed=seed,
        fmt=trace_format,
        compare=compare,
        static_cores=static_cores,
        wait_target=wait_target,
        png=png,
        start=start,
        end=end,
        sim_path=sim,
    )
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return
    for table in result.tables():
        out.print(table)
    for note in result.notes():
        out.print(f"note: {note}", highlight=False, markup=False)
    if png is not None:
        out.print(f"timeline written to {png}", highlight=False)
