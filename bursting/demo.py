"""`make demo`: a real workload through the personal pool, with execute nodes added by hand.

Brings up the pool, submits CPU-bound jobs in two shapes, starts execute nodes, shows live
progress, then prints waits and where jobs ran, and drains the nodes away again.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bursting.devpool import DevPool
from bursting.model import ClusterStatus, JobOutcome, JobState
from bursting.pool.htcondor import HTCondorPool

SCRATCH = Path("/var/tmp/bursting")


def submit_description(work_dir: Path, cpus: int, memory_mb: int, samples: int) -> str:
    """Each job runs the project's own Python from the venv, visible at the same path to the job."""
    return f"""
universe = vanilla
executable = {sys.executable}
arguments = "-m bursting.workload --samples {samples} --seed $(seed) --output pi.$(seed).json"
initialdir = {work_dir}
environment = "PYTHONPATH={Path(__file__).resolve().parents[1]}"
output = job.$(seed).out
error = job.$(seed).err
log = jobs.log
request_cpus = {cpus}
request_memory = {memory_mb}
request_disk = 10240
queue
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_demo(jobs: int = 80, nodes: int = 2, timeout: float = 600.0) -> int:
    console = Console()
    pool = DevPool(log=lambda m: console.print(f"[dim]{m}[/dim]"))
    pool.up(shared=[Path.cwd()])
    htc = HTCondorPool.for_devpool(pool.token_dir)
    work_dir = SCRATCH / f"demo-{int(time.time())}"
    work_dir.mkdir(parents=True)
    work_dir.chmod(0o1777)

    small = jobs * 3 // 4
    clusters = [
        htc.submit(
            submit_description(work_dir, 1, 512, 3_000_000),
            [{"seed": str(i)} for i in range(small)],
        ),
        htc.submit(
            submit_description(work_dir, 2, 1024, 3_000_000),
            [{"seed": str(i)} for i in range(small, jobs)],
        ),
    ]
    console.print(f"submitted {jobs} jobs in clusters {clusters} (1-core and 2-core shapes)")
    snapshot = htc.snapshot()
    for demand in snapshot.demand:
        console.print(f"  demand: {demand.idle_jobs} idle job(s) of shape {demand.shape.label()}")
    names = [pool.add_node(cpus=2, memory_mb=2048, name=f"demo-{i}") for i in range(nodes)]
    console.print(f"started execute nodes {', '.join(names)} (2 cores, 2048 MB each)")

    statuses = _wait(htc, clusters, jobs, timeout, console)
    for name in names:
        pool.remove_node(name)
    _summary(console, statuses)
    failed = [job for status in statuses for job in status.failed_jobs]
    return 0 if not failed and all(s.done for s in statuses) else 1


def _wait(
    htc: HTCondorPool, clusters: list[int], jobs: int, timeout: float, console: Console
) -> list[ClusterStatus]:
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("jobs done", total=jobs, detail="")
        while True:
            statuses = [htc.job_status(c) for c in clusters]
            counts: Counter[JobState] = Counter(j.state for s in statuses for j in s.jobs)
            progress.update(
                task,
                completed=counts[JobState.COMPLETED],
                detail=f"idle {counts[JobState.IDLE]} running {counts[JobState.RUNNING]} "
                f"held {counts[JobState.HELD]}",
            )
            if all(s.done for s in statuses) or time.monotonic() > deadline:
                return statuses
            time.sleep(2)


def _summary(console: Console, statuses: list[ClusterStatus]) -> None:
    outcomes: list[JobOutcome] = [j for s in statuses for j in s.jobs]
    waits = [j.wait_seconds for j in outcomes if j.wait_seconds is not None]
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("jobs", str(len(outcomes)))
    table.add_row(
        "completed, exit 0",
        str(sum(1 for j in outcomes if j.state is JobState.COMPLETED and j.exit_code == 0)),
    )
    table.add_row("failed or held", str(sum(len(s.failed_jobs) for s in statuses)))
    table.add_row("mean wait (s)", f"{statistics.fmean(waits):.1f}" if waits else "-")
    table.add_row("p95 wait (s)", f"{percentile(waits, 0.95):.1f}" if waits else "-")
    for host, count in sorted(Counter(_node(j.host) for j in outcomes).items()):
        table.add_row(f"jobs on {host}", str(count))
    console.print(table)


def _node(host: str | None) -> str:
    """slot1_3@demo-0@vm -> demo-0@vm"""
    if not host:
        return "?"
    return host.split("@", 1)[1] if host.count("@") > 1 else host
