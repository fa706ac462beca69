"""`make demo`: physics campaigns through Airflow, on a pool the burst controller grows and shrinks.

Three Monte Carlo campaigns (the `mc_production` DAG, run with `airflow dags test`) start a little
apart and queue 200 Pythia jobs; the controller (in this process, on the embedded two-cloud config)
boots execute nodes on "private" first and overflows to the priced "public" cloud; when the queue
is empty the workers drain and are deleted. A live table shows progress; the final tables show
waits, reaction time, instance-hours and cost per cloud, and each campaign's cross section.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from bursting.config import Config, load_config
from bursting.controller import Controller
from bursting.devpool import DevPool
from bursting.image import ensure_image
from bursting.metrics import CloudCalls, Exporter, MetricsServer
from bursting.model import ActionKind, ClusterStatus, Instance, InstanceState, JobOutcome, JobState
from bursting.planner import instance_label
from bursting.pool.htcondor import HTCondorPool
from bursting.runtime import build_controller

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "deploy" / "demo.yaml"
DEMO_OPENSTACK_CONFIG = REPO / "deploy" / "demo-openstack.yaml"
SCRATCH = Path("/var/tmp/bursting")


@dataclass(frozen=True)
class Campaign:
    at: float  # seconds after the start
    process: str
    jobs: int
    events_per_job: int
    seed: int


CAMPAIGNS = (
    Campaign(0, "zmumu", 80, 3, 1001),
    Campaign(12, "ttbar", 60, 3, 1002),
    Campaign(24, "dijet", 60, 3, 1003),
)
RESULTS = SCRATCH / "results"
WORK = SCRATCH / "campaigns"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def airflow_env(config: Config) -> dict[str, str]:
    home = Path("~/.local/state/bursting/airflow").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    host, _, port = config.pool.collector.partition(":")
    connection = {"conn_type": "htcondor", "host": host, "port": int(port or 9618)}
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_HTCONDOR_DEFAULT": json.dumps(connection),
        "BURSTING_RESULTS": str(RESULTS),
    }


def _migrate(env: dict[str, str], console: Console) -> bool:
    """`airflow db migrate` once per Airflow version (it costs seconds even when up to date)."""
    from airflow import __version__ as airflow_version

    marker = Path(env["AIRFLOW_HOME"]) / f".migrated-{airflow_version}"
    if marker.exists():
        return True
    done = subprocess.run(
        airflow_command("db", "migrate"), env=env, capture_output=True, check=False
    )
    if done.returncode != 0:
        console.print(done.stderr.decode(errors="replace")[-2000:])
        return False
    marker.touch()
    return True


def airflow_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("airflow")), *args]


@dataclass
class Running:
    campaign: Campaign
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def clusters(self, htc: HTCondorPool) -> list[int]:
        return htc.find_clusters(f'regexp("^{WORK}/{self.name}/", Iwd)')


def start_campaign(campaign: Campaign, stamp: int, env: dict[str, str], logs: Path) -> Running:
    name = f"demo-{campaign.process}-{stamp}"
    conf = {
        "campaign": name,
        "process": campaign.process,
        "base_seed": campaign.seed,
        "total_events": campaign.jobs * campaign.events_per_job,
        "events_per_job": campaign.events_per_job,
    }
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            airflow_command("dags", "test", "mc_production", "-c", json.dumps(conf)),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Running(campaign, name, process, log)


def use_devcloud(console: Console) -> None:
    """Start devcloud (a no-op when it runs) and point openstacksdk's usual lookup at its
    clouds.yaml, the way an operator's environment names theirs."""
    from bursting.devcloud import DevCloud

    devcloud = DevCloud(log=lambda m: console.print(f"[dim]{m}[/dim]"))
    devcloud.up()
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(devcloud.clouds_yaml)


def run_demo(
    config_path: Path = DEMO_CONFIG, timeout: float = 1200.0, openstack: bool = False
) -> int:
    console = Console()
    config = load_config(config_path)
    devpool = DevPool(log=lambda m: console.print(f"[dim]{m}[/dim]"))
    devpool.up()  # the schedd's side only: the workers boot from the worker image
    image = ensure_image(log=lambda m: console.print(f"[dim]{m}[/dim]"))
    console.print(f"[dim]workers boot from {image.reference}[/dim]")
    if openstack:
        use_devcloud(console)
    htc = HTCondorPool(config.pool)
    env = airflow_env(config)
    if not _migrate(env, console):
        return 1
    calls = CloudCalls()
    controller = build_controller(config, calls=calls)
    try:  # served as `bursting run` serves them: Prometheus, `bursting status`, the UI read them
        server = MetricsServer(
            config.metrics.listen, Exporter(controller, calls, CollectorRegistry())
        ).start()
    except BaseException:
        controller.close()
        raise
    controller.start()  # flavors checked against the clouds, the workers' token read
    stamp = int(time.time())
    logs = SCRATCH / f"demo-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)

    started = time.time()
    daemon = threading.Thread(target=controller.run_forever, name="controller", daemon=True)
    daemon.start()
    running: list[Running] = []
    statuses: list[ClusterStatus] = []
    try:
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                elapsed = time.time() - started
                for campaign in CAMPAIGNS[len(running) :]:
                    if elapsed < campaign.at:
                        break
                    running.append(start_campaign(campaign, stamp, env, logs))
                statuses = [htc.job_status(c) for r in running for c in r.clusters(htc)]
                mine = _mine(controller, started)
                live.update(_progress(elapsed, running, statuses, mine, config))
                finished = len(running) == len(CAMPAIGNS) and all(
                    r.process.poll() is not None for r in running
                )
                if finished and all(i.state is InstanceState.GONE for i in mine):
                    break
                if elapsed > timeout:
                    console.print(f"[red]gave up after {timeout:.0f}s[/red]")
                    break
                time.sleep(1)
    finally:
        for run in running:
            if run.process.poll() is None:
                run.process.terminate()
        controller.stopping.set()
        daemon.join(timeout=30)
        server.stop()
        controller.close()
    submitted = [j.queued_at for s in statuses for j in s.jobs if j.queued_at]
    code = _summary(
        console,
        config,
        controller,
        statuses,
        _mine(controller, started),
        min(submitted) if submitted else None,
        started,
    )
    return _campaigns(console, running) or code


def _campaigns(console: Console, running: list[Running]) -> int:
    """Each campaign's outcome: its DAG run, events, cross section and where the results are."""
    table = Table(
        "process",
        "DAG run",
        "events",
        "jobs",
        "cross section [pb]",
        title="campaigns (mc_production)",
    )
    failed, folders = 0, []
    for campaign in running:
        ok = campaign.process.returncode == 0
        failed += not ok
        published = sorted((RESULTS / campaign.name).glob("*/summary.json"))
        if not published:
            table.add_row(campaign.campaign.process, "failed", "-", "-", "-")
            folders.append(f"{campaign.name}: failed, see {campaign.log}")
            continue
        summary = json.loads(published[-1].read_text())
        sigma = (
            f"{summary['cross_section_mb'] * 1e9:.4g} "
            f"+- {summary['cross_section_err_mb'] * 1e9:.2g}"
        )
        table.add_row(
            campaign.campaign.process,
            "success" if ok else "failed",
            str(summary["events"]),
            str(summary["jobs"]),
            sigma,
        )
        folders.append(f"{campaign.name}: {published[-1].parent}")
    console.print(table)
    for line in folders:
        console.print(f"  results {line}", highlight=False, soft_wrap=True)
    return 1 if failed else 0


def _mine(controller: Controller, since: float) -> list[Instance]:
    """Instances alive at some point of this run, including any an interrupted earlier run left
    behind (the controller reuses or reaps those)."""
    return [
        i
        for i in controller.store.instances(include_gone=True)
        if i.created_at >= since or i.state is not InstanceState.GONE or i.state_since >= since
    ]


def _progress(
    elapsed: float,
    running: list[Running],
    statuses: list[ClusterStatus],
    mine: list[Instance],
    config: Config,
) -> Group:
    jobs: Counter[JobState] = Counter(j.state for s in statuses for j in s.jobs)
    head = (
        f"t={elapsed:5.0f}s  campaigns {len(running)}/{len(CAMPAIGNS)}  "
        f"jobs: idle {jobs[JobState.IDLE]}  running {jobs[JobState.RUNNING]}  "
        f"done {jobs[JobState.COMPLETED]}  held {jobs[JobState.HELD]}"
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


def _ran_on(job: JobOutcome) -> str:
    """The instance a job last ran on: the id the worker advertised (an OpenStack server's host
    name is not its instance id), else the execute node's name."""
    if job.instance:
        return job.instance
    return instance_label((job.host or "").split("@", 1)[-1])


def _summary(
    console: Console,
    config: Config,
    controller: Controller,
    statuses: list[ClusterStatus],
    mine: list[Instance],
    first_submit: float | None,
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
    reaction = min(creates) - first_submit if creates and first_submit else None
    jobs_on = Counter(_ran_on(j) for j in outcomes if j.instance or j.host)
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
    return 0 if ok == len(outcomes) == sum(c.jobs for c in CAMPAIGNS) and not left else 1
