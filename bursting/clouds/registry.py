"""Cloud types, from the `bursting.clouds` entry-point group: each installed provider package
registers a `CloudType` (its config model and its factory), so `config check` knows every
installed type and adding one needs no edit of the config or the wiring."""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from bursting.clouds.base import CloudType
from bursting.errors import PermanentError

GROUP = "bursting.clouds"


def installed_types() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=GROUP)}


@cache
def cloud_type(name: str) -> CloudType:
    """The registered type, loaded once; PermanentError if none is installed under that name."""
    entry = installed_types().get(name)
    if entry is None:
        installed = ", ".join(sorted(installed_types())) or "none"
        raise PermanentError(
            f"no cloud provider of type {name!r} is installed (installed: {installed}; "
            f"entry-point group {GROUP})"
        )
    registered = entry.load()
    if not isinstance(registered, CloudType):
        raise PermanentError(
            f"entry point {entry.value} for cloud type {name!r} is not a CloudType; "
            "the provider package is broken or outdated"
        )
    return registered
