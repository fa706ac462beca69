"""`bursting devcloud up|down|status|stop-service|start-service`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bursting.devcloud import DevCloud

devcloud_app = typer.Typer(
    help="A real OpenStack (Keystone, Nova fake driver, Glance, Neutron, Swift) on 127.0.0.1: "
    "a private and a public cloud, for development.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _log(message: str) -> None:
    err.print(message, style="dim", highlight=False, markup=False, soft_wrap=True)


def _devcloud() -> DevCloud:
    from bursting.devcloud import DevCloud

    return DevCloud(log=_log)


def _run(action: str, *args: str) -> None:
    from bursting.devcloud import DevCloudError

    cloud = _devcloud()
    try:
        getattr(cloud, action)(*args)
    except DevCloudError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None


@devcloud_app.command("up")
def up() -> None:
    """Install the services once (cached), start them and make the two clouds; idempotent."""
    _run("up")


@devcloud_app.command("down")
def down() -> None:
    """Stop every process devcloud started, by PID."""
    _run("down")


@devcloud_app.command("stop-service")
def stop_service(
    name: Annotated[str, typer.Argument(help="nova-api (private) or nova-api-public.")],
) -> None:
    """Stop one cloud's compute API while the rest runs (to try an outage)."""
    _run("stop_service", name)


@devcloud_app.command("start-service")
def start_service(
    name: Annotated[str, typer.Argument(help="nova-api (private) or nova-api-public.")],
) -> None:
    """Start again a compute API stopped with stop-service."""
    _run("start_service", name)


@devcloud_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What runs: each service's PID, port and whether it answers; where clouds.yaml is."""
    report = _devcloud().status()
    if as_json:
        out.print_json(json.dumps(report))
        return
    for key, value in report.items():
        if key != "services":
            out.print(f"{key:>15}: {value}", highlight=False)
    table = Table(title="devcloud services")
    for column in ("service", "pid", "port", "answering"):
        table.add_column(column)
    services = report["services"]
    assert isinstance(services, dict)
    for name, row in services.items():
        table.add_row(
            name, *(("-" if row[k] is None else str(row[k])) for k in ("pid", "port", "answering"))
        )
    out.print(table)
