"""`make demo`: the burst controller growing and shrinking the personal pool under a real workload.

Bursts of CPU-bound jobs arrive; the controller (in this process, on the embedded two-cloud config)
boots execute nodes on "private" first and overflows to the priced "public" cloud; when the queue
is empty the workers drain and are deleted. A live table shows progress; a final table shows waits,
reaction time, instance-hours and cost per cloud.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from bursting.config import Config, load_config
from bursting.controller import Controller
from bursting.devpool import DevPool
from bursting.model import ActionKind, ClusterStatus, Instance, InstanceState, JobOutcome, JobState
from bursting.planner import instance_label
from bursting.pool.htcondor import HTCondorPool
from bursting.runtime import build_controller

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "deploy" / "demo.yaml"
SCRATCH = Path("/var/tmp/bursting")


@dataclass(frozen=True)
class Burst:
    at: float  # seconds after the start
    jobs: int
    cpus: int
    memory_mb: int


BURSTS = (Burst(0, 80, 1, 512), Burst(25, 60, 2, 1024), Burst(50, 60, 1, 512))


def submit_description(work_dir: Path, cpus: int, memory_mb: int, samples: int) -> str:
    """Each job runs the project's own Python from the venv, visible at the same path to the job."""
    return f"""
universe = vanilla
executable = {sys.executable}
arguments = "-m bursting.workload --samples {samples} --seed $(seed) --output pi.$(seed).json"
initialdir = {work_dir}
environment = "PYTHONPATH={REPO}"
output = job.$(seed).out
error = job.$(seed).err
log = jobs.log
request_cpus = {cpus}
request_memory = {memory_mb}
request_disk = 10240
queue
"""


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_demo(
    config_path: Path = DEMO_CONFIG, timeout: float = 280.0, samples: int = 2_500_000
) -> int:
    console = Console()
    config = load_config(config_path)
    devpool = DevPool(log=lambda m: console.print(f"[dim]{m}[/dim]"))
    devpool.up(shared=[Path.cwd(), REPO])
    htc = HTCondorPool(config.pool)
    controller = build_controller(config)
    work_dir = SCRATCH / f"demo-{int(time.time())}"
    work_dir.mkdir(parents=True)
    work_dir.chmod(0o1777)

    started = time.time()
    daemon = threading.Thread(target=controller.run_forever, name="controller", daemon=True)
    daemon.start()
    clusters: list[int] = []
    submitted_at: list[float] = []
    seed = 0
    try:
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                elapsed = time.time() - started
                for burst in BURSTS[len(clusters) :]:
                    if elapsed < burst.at:
                        break
                    items = [{"seed": str(seed + i)} for i in range(burst.jobs)]
                    description = submit_description(work_dir, burst.cpus, burst.memory_mb, samples)
                    clusters.append(htc.submit(description, items))
                    submitted_at.append(time.time())
                    seed += burst.jobs
                statuses = [htc.job_status(c) for c in clusters]
                mine = _mine(controller, started)
                live.update(_progress(elapsed, statuses, mine, config))
                all_in = len(clusters) == len(BURSTS) and all(s.done for s in statuses)
                if all_in and mine and all(i.state is InstanceState.GONE for i in mine):
                    break
                if elapsed > timeout:
                    console.print(f"[red]gave up after {timeout:.0f}s[/red]")
                    break
                time.sleep(1)
    finally:
        controller.stopping.set()
        daemon.join(timeout=30)
        controller.close()
    return _summary(
        console, config, controller, statuses, _mine(controller, started), submitted_at, started
    )


def _mine(controller: Controller, since: float) -> list[Instance]:
    """Instances alive at some point of this run, including any an interrupted earlier run left
    behind (the controller reuses or reaps those)."""
    return [
        i
        for i in controller.store.instances(include_gone=True)
        if i.created_at >= since or i.state is not InstanceState.GONE or i.state_since >= since
    ]


def _progress(
    elapsed: float, statuses: list[ClusterStatus], mine: list[Instance], config: Config
) -> Group:
    jobs: Counter[JobState] = Counter(j.state for s in statuses for j in s.jobs)
    head = (
        f"t={elapsed:5.0f}s  jobs: idle {jobs[JobState.IDLE]}  running {jobs[JobState.RUNNING]}"
        f"  done {jobs[JobState.COMPLETED]}  held {jobs[JobState.HELD]}"
    )
    table = Table("cloud", *[SHORT[s] for s in InstanceState], title=head)
    for cloud in config.clouds:
        states = Counter(i.state for i in mine if i.cloud == cloud.name)
        table.add_row(cloud.name, *[str(states[s] or "") for s in InstanceState])
    return Group(table)


def _hours(instance: Instance, since: float) -> float:
    """Instance-hours within this run."""
    end = instance.state_since if instance.state is InstanceState.GONE else time.time()
    return max(0.0, end - max(instance.created_at, since)) / 3600


SHORT = {
    InstanceState.REQUESTED: "req",
    InstanceState.BOOTING: "boot",
    InstanceState.JOINING: "join",
    InstanceState.RUNNING: "run",
    InstanceState.DRAINING: "drain",
    InstanceState.DELETING: "del",
    InstanceState.GONE: "gone",
    InstanceState.FAILED: "fail",
}


def _summary(
    console: Console,
    config: Config,
    controller: Controller,
    statuses: list[ClusterStatus],
    mine: list[Instance],
    submitted_at: list[float],
    started: float,
) -> int:
    outcomes: list[JobOutcome] = [j for s in statuses for j in s.jobs]
    ok = sum(1 for j in outcomes if j.state is JobState.COMPLETED and j.exit_code == 0)
    waits = [w for j in outcomes if (w := j.wait_seconds) is not None]
    creates = [
        at
        for at, a in controller.store.decisions(100000)
        if a.kind is ActionKind.CREATE and at >= started
    ]
    reaction = min(creates) - submitted_at[0] if creates and submitted_at else None
    jobs_on = Counter(instance_label(j.host.split("@", 1)[1]) for j in outcomes if j.host)
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("jobs", str(len(outcomes)))
    table.add_row("completed, exit 0", str(ok))
    table.add_row("mean wait (s)", f"{statistics.fmean(waits):.1f}" if waits else "-")
    table.add_row("p95 wait (s)", f"{percentile(waits, 0.95):.1f}" if waits else "-")
    table.add_row("reaction: burst -> first create (s)", f"{reaction:.1f}" if reaction else "-")
    left = [i for i in mine if i.state is not InstanceState.GONE]
    table.add_row("instances left at the end", str(len(left)))
    console.print(table)
    clouds = Table("cloud", "instances", "jobs run", "instance-hours", "cost", title="per cloud")
    currency = config.policy.spend.currency
    for cloud in config.clouds:
        ours = [i for i in mine if i.cloud == cloud.name]
        spans = [_hours(i, started) for i in ours]
        hours = sum(spans)
        cost = sum(h * i.price_per_hour for h, i in zip(spans, ours, strict=True))
        ran = sum(jobs_on[i.id] for i in ours)
        clouds.add_row(
            cloud.name, str(len(ours)), str(ran), f"{hours:.3f}", f"{cost:.4f} {currency}"
        )
    console.print(clouds)
    return 0 if ok == len(outcomes) == sum(b.jobs for b in BURSTS) and not left else 1
