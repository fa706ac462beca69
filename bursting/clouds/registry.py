"""Cloud type name -> provider, from the `bursting.clouds` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from bursting.errors import PermanentError


def provider_class(cloud_type: str) -> Any:
    for entry in entry_points(group="bursting.clouds"):
        if entry.name == cloud_type:
            return entry.load()
    raise PermanentError(
        f"no cloud provider of type {cloud_type!r} is installed (entry-point group bursting.clouds)"
    )
