"""The `bursting` command line: config checks, the personal pool, and everyday queue commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bursting.config import Config, load_config
from bursting.cycle import CycleRecord
from bursting.devcloud.cli import devcloud_app
from bursting.errors import BurstingError, ConfigError
from bursting.image.cli import image_app
from bursting.sim.cli import simulate

if TYPE_CHECKING:
    from bursting.devpool import DevPool
    from bursting.pool.htcondor import HTCondorPool

app = typer.Typer(
    help="Burst an HTCondor pool onto clouds when the queue grows; shrink it when work is done.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
devpool_app = typer.Typer(
    help="A real personal HTCondor pool on this machine (127.0.0.1:9618), for development.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(devpool_app, name="devpool")
app.add_typer(image_app, name="image")
app.add_typer(devcloud_app, name="devcloud")
app.command("simulate")(simulate)

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="BURSTING_CONFIG",
        help="YAML config (pool, clouds, policy); defaults to the personal pool.",
    ),
]


def _config(path: Path | None) -> Config:
    return load_config(path) if path else Config()


def _pool(path: Path | None) -> HTCondorPool:
    from bursting.pool.htcondor import HTCondorPool

    return HTCondorPool(_config(path).pool)


# ----- config -----
@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="The YAML file to check.")]) -> None:
    """Validate FILE: print 'ok' and a summary, or every problem with its YAML path and fix."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        err.print(f"[red]{len(exc.problems)} problem(s) in {exc.source}[/red]", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print("ok")
    out.print(
        f"pool {config.pool.id}: collector {config.pool.collector}, "
        f"schedd {config.pool.schedd or '(the only one)'}, tokens {config.pool.token_dir}",
        highlight=False,
    )
    from bursting.clouds.registry import installed_types

    workers = config.workers
    out.print(
        f"workers join {workers.collector or config.pool.collector} with the token from "
        f"{workers.token.describe()}; installed cloud types: "
        f"{', '.join(sorted(installed_types())) or 'none'}",
        highlight=False,
    )
    table = Table("cloud", "type", "enabled", "priority", "instances", "flavors", "provides")
    for cloud in config.clouds:
        table.add_row(
            cloud.name,
            cloud.type,
            "yes"
            if cloud.enabled
            else "no (type not installed)"
            if cloud.type not in installed_types()
            else "no",
            str(cloud.priority),
            f"{cloud.min_instances}..{cloud.max_instances}",
            ", ".join(
                f"{f.name} ({f.cpus}c/{f.memory_mb}MB, {f.price_per_hour}/h)" for f in cloud.flavors
            ),
            ", ".join(f"{k}={v}" for k, v in cloud.provides.items()) or "-",
        )
    out.print(table)
    p = config.policy
    out.print(
        f"policy: every {p.interval_seconds:g}s; jobs idle > {p.min_idle_seconds:g}s count; "
        f"workers idle > {p.idle_seconds:g}s drain; spend cap "
        f"{p.spend.max_per_hour if p.spend.max_per_hour is not None else 'none'} "
        f"{p.spend.currency}/h",
        highlight=False,
    )


# ----- devpool -----
def _devpool() -> DevPool:
    from bursting.devpool import DevPool

    return DevPool(log=lambda message: err.print(f"[dim]{message}[/dim]", highlight=False))


@devpool_app.command("up")
def devpool_up(
    share: Annotated[
        list[Path] | None,
        typer.Option(help="Host directory jobs may use, at the same path (repeatable)."),
    ] = None,
    local_cpus: Annotated[
        int, typer.Option(min=0, help="Also run a startd with this many cores beside the schedd.")
    ] = 0,
) -> None:
    """Build (once, cached) and start the pool; idempotent."""
    _devpool().up(shared=[Path.cwd(), *(share or [])], local_cpus=local_cpus)


@devpool_app.command("down")
def devpool_down() -> None:
    """Stop every daemon of the pool and undo its mounts."""
    _devpool().down()


@devpool_app.command("status")
def devpool_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Is the pool built and running; its nodes, shared directories and mounts."""
    status = _devpool().status()
    if as_json:
        out.print_json(json.dumps(status))
        return
    for key, value in status.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        out.print(f"{key:>9}: {shown}", highlight=False)


@devpool_app.command("token")
def devpool_token() -> None:
    """(Re)create the host's IDTOKEN for submitting and draining; prints its path, not its value."""
    out.print(str(_devpool().ensure_token()))


def _parse_attrs(attrs: list[str]) -> dict[str, str]:
    parsed = {}
    for item in attrs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--attr")
        parsed[key] = value
    return parsed


@devpool_app.command("add-node")
def devpool_add_node(
    cpus: Annotated[int, typer.Option(min=1, max=256, help="Cores of the node.")] = 2,
    memory: Annotated[int, typer.Option(min=256, help="Memory in MB.")] = 2048,
    attr: Annotated[
        list[str] | None, typer.Option(help="Machine attribute KEY=VALUE (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Node name (default: random).")] = None,
) -> None:
    """Start another execute node (its own startd) that joins the pool."""
    out.print(_devpool().add_node(cpus, memory, _parse_attrs(attr or []), name=name))


@devpool_app.command("remove-node")
def devpool_remove_node(
    name: Annotated[str, typer.Argument(help="Node name, as add-node printed it.")],
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for jobs.")] = 600,
) -> None:
    """Stop a node peacefully: drain it, let running jobs finish, then stop it."""
    _devpool().remove_node(name, timeout=timeout)


# ----- queue -----
@app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="HTCondor submit description file.")],
    config: ConfigOption = None,
) -> None:
    """Submit FILE as one cluster; prints the cluster id."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="FILE") from None
    out.print(_pool(config).submit(text))


@app.command("q")
def queue(config: ConfigOption = None) -> None:
    """Idle, running and held jobs per owner and shape."""
    snapshot = _pool(config).snapshot()
    table = Table("owner", "shape", "idle", "running", "held", title="queue")
    for row in snapshot.queue:
        table.add_row(row.owner, row.shape.label(), str(row.idle), str(row.running), str(row.held))
    out.print(table)
    out.print(f"{snapshot.idle_jobs} idle job(s) in {len(snapshot.demand)} shape(s)")


@app.command("status")
def status(config: ConfigOption = None) -> None:
    """Execute nodes with their burst tags; with a config, the running controller's view (its
    /status on metrics.listen), or the state store's when no controller answers."""
    workers = _pool(config).workers()
    table = Table(
        "node",
        "instance",
        "cores free/total",
        "memory MB free/total",
        "running",
        "slots",
        "state",
        title="execute nodes",
    )
    for w in workers:
        table.add_row(
            w.name,
            w.instance_id or "-",
            f"{w.free_cpus}/{w.total_cpus}",
            f"{w.free_memory_mb}/{w.total_memory_mb}",
            str(w.running_jobs),
            str(w.slots),
            "draining" if w.draining else ("busy" if w.busy else "idle"),
        )
    out.print(table)
    if config is None:
        return
    from collections import Counter

    from bursting.metrics.status_tables import (
        StatusUnavailable,
        fetch_status,
        headline,
        status_tables,
    )
    from bursting.store import open_store

    settings = _config(config)
    try:
        document = fetch_status(settings.metrics.listen)
    except StatusUnavailable as exc:
        out.print(f"[yellow]{exc}; what the state store last recorded:[/yellow]")
    else:
        out.print(headline(document))
        for part in status_tables(document):
            out.print(part)
        return
    store = open_store(settings.store.url)
    counts = Counter((i.cloud, i.state.value) for i in store.instances())
    states = Table("cloud", "state", "instances", title="burst instances")
    for (cloud, state), count in sorted(counts.items()):
        states.add_row(cloud, state, str(count))
    out.print(states)
    recent = Table(
        "time", "action", "cloud", "instance", "code", "reason", title="recent decisions"
    )
    for at, action in store.decisions(15):
        recent.add_row(
            _clock(at),
            action.kind.value,
            action.cloud,
            action.instance_id,
            action.code.value,
            action.reason,
        )
    out.print(recent)
    for record in store.cycles(1):
        _last_cycle_tables(record)


def _clock(epoch: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(epoch))


@app.command("run")
def run(
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="BURSTING_CONFIG", help="YAML config.")
    ],
    cycles: Annotated[int | None, typer.Option(min=1, help="Stop after N cycles.")] = None,
) -> None:
    """The burst controller daemon: reconcile every interval until SIGTERM. Serves /metrics,
    /healthz, /readyz and /status on metrics.listen meanwhile."""
    import signal

    from prometheus_client import CollectorRegistry

    from bursting.metrics import CloudCalls, Exporter, MetricsServer
    from bursting.runtime import build_controller, setup_logging

    setup_logging()
    settings = _config(config)
    calls = CloudCalls()
    elector = None
    if settings.leader_election.enabled:  # only then is a Kubernetes client loaded at all
        from bursting.leader.elector import build_elector

        elector = build_elector(settings.leader_election)
    controller = build_controller(settings, calls=calls, leadership=elector)
    try:
        server = MetricsServer(
            settings.metrics.listen, Exporter(controller, calls, CollectorRegistry())
        )
    except BaseException:
        controller.close()
        raise

    def stop(signum: int, frame: object) -> None:
        controller.stopping.set()
        if elector is not None:  # act no more from here on; released once the loop has ended
            elector.resign()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.start()
        if elector is not None:
            elector.start()
        controller.start()
        controller.run_forever(cycles)
    finally:
        server.stop()
        controller.close()
        if elector is not None:  # after the loop has stopped: a standby may take over at once
            elector.stop(release=True)


@app.command("plan")
def plan(
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="BURSTING_CONFIG", help="YAML config.")
    ],
) -> None:
    """Dry run: observe, plan, print the actions with their reasons; change nothing."""
    from bursting.runtime import build_controller

    controller = build_controller(_config(config))
    try:
        report = controller.dry_run(lambda cloud: f"(new on {cloud})")
    finally:
        controller.close()
    cycle, pool, clouds = report.plan, report.pool, report.clouds
    table = Table("action", "cloud", "instance", "flavor", "reason", title="plan (dry run)")
    for action in cycle.actions:
        table.add_row(
            action.kind.value, action.cloud, action.instance_id, action.flavor, action.reason
        )
    out.print(table)
    idle = pool.idle_jobs if pool else "unknown"
    out.print(
        f"idle jobs: {idle}; clouds read: "
        f"{', '.join(n for n, c in clouds.items() if c is not None) or 'none'}"
    )
    for note in cycle.notes:
        out.print(f"note: {note}", highlight=False)
    if report.record is not None and report.record.unschedulable:
        _unschedulable_table(report.record)


def _unschedulable_table(record: CycleRecord) -> None:
    table = Table("jobs", "reason", "why", title="idle jobs that can never start")
    for entry in record.unschedulable:
        table.add_row(str(entry.jobs), entry.code, entry.why)
    out.print(table)


def _last_cycle_tables(record: CycleRecord) -> None:
    """What the controller's last cycle read, planned and did (from its stored record)."""
    read = ", ".join(
        f"{source.name} {'ok' if source.ok else 'UNREADABLE (' + source.error_class + ')'}"
        for source in (record.pool, *record.clouds)
    )
    out.print(
        f"last cycle {_clock(record.started_at)} took {record.seconds:.2f}s; "
        f"idle jobs {record.idle_jobs if record.idle_jobs is not None else 'unknown'}; "
        f"read: {read}",
        highlight=False,
    )
    actions = Table("action", "cloud", "instance", "code", "outcome", "reason", title="last cycle")
    for action in record.actions:
        outcome = action.outcome + (f" ({action.error_class})" if action.error_class else "")
        actions.add_row(
            action.kind, action.cloud, action.instance_id, action.code, outcome, action.reason
        )
    out.print(actions)
    if record.unschedulable:
        _unschedulable_table(record)
    spend = Table("cloud", "per hour now", "spent so far", title="spend")
    for cloud in sorted({*record.spend_per_hour, *record.spent}):
        spend.add_row(
            cloud,
            f"{record.spend_per_hour.get(cloud, 0.0):.4f}",
            f"{record.spent.get(cloud, 0.0):.4f}",
        )
    out.print(spend)


@app.command("cost")
def cost(
    campaign: Annotated[
        str, typer.Option("--campaign", help="The campaign's name, as the DAG set it.")
    ],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """What CAMPAIGN's jobs cost so far, per cloud and flavor: each job pays its worker flavor's
    price shared by cores for its wall time; 'busy' is the share of those workers' paid core-time
    this campaign used. Jobs on nodes that are no burst workers are counted as unpriced."""
    from bursting.campaigns import read_campaign_cost

    settings = _config(config)
    try:
        report = read_campaign_cost(settings, _pool(config), campaign)
    except BurstingError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        return
    currency = report.currency
    table = Table(
        "cloud",
        "flavor",
        "jobs",
        "core-hours",
        f"cost {currency}",
        f"workers' cost {currency}",
        "busy",
        title=f"campaign {report.campaign}",
    )
    for line in report.lines:
        table.add_row(
            line.cloud,
            line.flavor,
            str(line.jobs),
            f"{line.core_hours:.3f}",
            "-" if line.cost is None else f"{line.cost:.4f}",
            "-" if line.worker_cost is None else f"{line.worker_cost:.4f}",
            "-" if line.busy_share is None else f"{line.busy_share:.0%}",
        )
    out.print(table)
    out.print(
        f"{report.jobs} job(s): {report.done} finished, {report.running} running, "
        f"{report.failed} failed; {report.core_hours:.3f} core-hours; "
        f"cost {report.cost:.4f} {currency}"
        + (f"; {report.unpriced_jobs} job(s) unpriced" if report.unpriced_jobs else ""),
        highlight=False,
    )
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, markup=False)


@app.command("rm")
def remove(
    cluster: Annotated[int, typer.Argument(min=1, help="Cluster id to remove.")],
    config: ConfigOption = None,
) -> None:
    """Remove every job of CLUSTER."""
    _pool(config).remove(cluster)
    out.print(f"removed cluster {cluster}")


@app.command("demo")
def demo(
    config: Annotated[
        Path | None,
        typer.Option(help="Demo config (default: deploy/demo.yaml, or demo-openstack.yaml)."),
    ] = None,
    openstack: Annotated[
        bool,
        typer.Option(
            "--openstack",
            help="Burst onto devcloud's real OpenStack (private and public projects) instead of "
            "the embedded local clouds; starts devcloud if it is not running.",
        ),
    ] = False,
) -> None:
    """Bursts of real jobs; the controller grows the pool onto two clouds and shrinks it."""
    from bursting.demo import DEMO_CONFIG, DEMO_OPENSTACK_CONFIG, run_demo
    from bursting.runtime import setup_logging

    setup_logging("WARNING")
    default = DEMO_OPENSTACK_CONFIG if openstack else DEMO_CONFIG
    raise typer.Exit(run_demo(config or default, openstack=openstack))


def main() -> None:
    """Entry point: user errors print one clear line and exit 1, never a traceback."""
    try:
        app()
    except BurstingError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "120")
    main()
