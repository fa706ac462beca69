"""What the controller's image is made of, and its key: it changes exactly when the image must.

Unlike the worker image, the controller runs the whole package, so every source file counts; the
payload's heavy requirements (Pythia, ROOT I/O) and Airflow are not installed: the controller
imports neither.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bursting.errors import ImageError
from bursting.image.key import SUITE, PayloadRequirement, source_digest

CONTAINERFILE = Path("deploy/controller/Containerfile")
REPOSITORY = "localhost/bursting-controller"
# What `bursting run` imports, with every cloud type configured; distribution names.
CONTROLLER_DISTRIBUTIONS = (
    "htcondor",
    "openstacksdk",
    "kubernetes",
    "prometheus-client",
    "pydantic",
    "tenacity",
    "pyyaml",
    "typer",
    "rich",
    "packaging",
)
CONTROLLER_SOURCES = ("pyproject.toml", "bursting")
UID = 10001  # the Containerfile's `bursting` user


def controller_requirements(
    requires: Iterable[str], installed: Callable[[str], str | None]
) -> tuple[PayloadRequirement, ...]:
    """The controller's requirements, each pinned to the host's version where it fits.

    `requires` is the distribution's metadata; `installed` gives an installed version or None.
    `packaging` is taken as installed (pip brings it to every venv) when not declared.
    """
    declared: dict[str, Requirement] = {}
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        declared[canonicalize_name(requirement.name)] = requirement
    found = []
    for name in CONTROLLER_DISTRIBUTIONS:
        found_requirement = declared.get(canonicalize_name(name))
        if found_requirement is None and name != "packaging":
            raise ImageError(
                f"the controller imports {name} but bursting does not require it; add it to "
                "[project] dependencies in pyproject.toml and reinstall (make)"
            )
        requirement = found_requirement or Requirement(name)
        version = installed(requirement.name)
        fits = version is not None and requirement.specifier.contains(version, prereleases=True)
        found.append(
            PayloadRequirement(
                name=requirement.name,
                as_written=str(requirement),
                pinned=f"{requirement.name}=={version}" if fits else None,
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class ControllerKeyInputs:
    """Everything the controller's image is built from, as text."""

    containerfile: str
    suite: str
    version: str
    requirements: tuple[str, ...]
    source_digest: str


def read_controller_inputs(
    root: Path, requirements: tuple[PayloadRequirement, ...], version: str
) -> ControllerKeyInputs:
    """The key's inputs from a checkout at `root`."""
    if not (root / CONTAINERFILE).is_file():
        raise ImageError(
            f"{root / CONTAINERFILE} is missing: the controller image is built from a checkout "
            "of the project (an editable install, as `make` sets up)"
        )
    return ControllerKeyInputs(
        containerfile=(root / CONTAINERFILE).read_text(),
        suite=SUITE,
        version=version,
        requirements=tuple(r.pinned or r.as_written for r in requirements),
        source_digest=source_digest(root, CONTROLLER_SOURCES),
    )


def controller_key(inputs: ControllerKeyInputs) -> str:
    """sha256 (hex) of the inputs; the image's tag is its first 12 characters."""
    canonical = json.dumps(asdict(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def requirements_digest(lines: Iterable[str]) -> str:
    """Names the cached download of these requirements' wheels."""
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:12]


def controller_reference(key: str) -> str:
    return f"{REPOSITORY}:{key[:12]}"
