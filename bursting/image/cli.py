"""`bursting image`: build the worker image, show what is cached, write an operator's context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

image_app = typer.Typer(
    help="The burst worker image (Debian trixie, HTCondor, the physics payload), built once.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _log(message: str) -> None:
    err.print(f"[dim]{message}[/dim]", highlight=False)


@image_app.command("build")
def build() -> None:
    """Build the image if this checkout's payload changed (minutes, once); print its reference."""
    from bursting.image import ensure_image

    out.print(ensure_image(log=_log).reference, highlight=False, soft_wrap=True)


@image_app.command("build-controller")
def build_controller() -> None:
    """Build the controller's image (deploy/controller/Containerfile) if this checkout changed;
    print its reference (the Helm chart's image)."""
    from bursting.image.controller import ensure_controller_image

    out.print(ensure_controller_image(log=_log).reference, highlight=False, soft_wrap=True)


@image_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Is the cached image current for this checkout; what is inside it."""
    from bursting.image import image_status
    from bursting.image.manifest import frozen_version

    report = image_status()
    if as_json:
        out.print_json(json.dumps(report))
        return
    manifest = report["manifest"] if isinstance(report["manifest"], dict) else {}
    table = Table(title="worker image", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = {
        "state": report["state"],
        "reference": report["reference"],
        "key": report["key"],
        "built at": report["built_at"],
        "build seconds": report["build_seconds"],
        "image id": str(manifest.get("image_id", ""))[:12],
        "Debian": manifest.get("debian_suite"),
        "HTCondor": manifest.get("htcondor_version"),
        "Python": manifest.get("python_version"),
        "payload": manifest.get("payload_version"),
        "pythia8mc": frozen_version(manifest.get("pip_freeze"), "pythia8mc"),
        "packages": len(freeze) if isinstance(freeze := manifest.get("pip_freeze"), list) else None,
    }
    for name, value in rows.items():
        table.add_row(name, "-" if value in (None, "") else str(value))
    out.print(table)


@image_app.command("context")
def context(
    directory: Annotated[Path, typer.Argument(help="Where to write the build context.")],
) -> None:
    """Write the build context of deploy/worker/Containerfile, for an operator's own build."""
    from bursting.image.build import checkout, image_cache
    from bursting.image.context import prepare_context

    co = checkout()
    image_cache().mkdir(parents=True, exist_ok=True)
    prepare_context(co.root, directory, image_cache(), co.requirements, _log)
    out.print(
        f"context ready; build with: buildah bud -f {directory / 'Containerfile'} "
        f"-t bursting-worker:{co.key[:12]} {directory}",
        highlight=False,
        soft_wrap=True,
    )
