"""What the worker image is made of, and its key: it changes exactly when the image must.

The key covers the Containerfile and image config, the Debian suite, the payload's version, its
pinned requirements and its source files. Controller code is in the image too (the wheel carries
the whole package) but workers never run it, so changing it does not rebuild the image.
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

SUITE = "trixie"
SUITE_PYTHON = {"trixie": "3.13"}  # the suite's python3, which the image's venv is made from
CONTAINERFILE = Path("deploy/worker/Containerfile")
IMAGE_CONFIG = Path("deploy/worker/10-bursting-image.conf")
# What the payload imports (bursting/physics, bursting/workload.py); distribution names.
PAYLOAD_DISTRIBUTIONS = ("pythia8mc", "numpy", "uproot", "awkward")
PAYLOAD_SOURCES = ("bursting/physics", "bursting/workload.py", "bursting/__init__.py")


@dataclass(frozen=True)
class PayloadRequirement:
    """One payload requirement: as the project declares it, and pinned to the host's version."""

    name: str
    as_written: str
    pinned: str | None

    def candidates(self) -> tuple[str, ...]:
        """What to try to fetch, best first: the host's version, else the declared range."""
        return (self.pinned, self.as_written) if self.pinned else (self.as_written,)


def payload_requirements(
    requires: Iterable[str], installed: Callable[[str], str | None]
) -> tuple[PayloadRequirement, ...]:
    """The project's requirements the payload imports, each pinned where the host's version fits.

    `requires` is the distribution's metadata (importlib.metadata.requires); `installed` gives a
    distribution's installed version or None. Requirements behind an extra are not the payload's.
    """
    declared: dict[str, Requirement] = {}
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        declared[canonicalize_name(requirement.name)] = requirement
    missing = [name for name in PAYLOAD_DISTRIBUTIONS if canonicalize_name(name) not in declared]
    if missing:
        raise ImageError(
            f"the payload imports {', '.join(missing)} but bursting does not require it; add it "
            "to [project] dependencies in pyproject.toml and reinstall (make)"
        )
    found = []
    for name in PAYLOAD_DISTRIBUTIONS:
        requirement = declared[canonicalize_name(name)]
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


def source_digest(root: Path, sources: Iterable[str] = PAYLOAD_SOURCES) -> str:
    """sha256 over the payload's source files (relative path and bytes), caches excluded."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for source in sources:
        path = root / source
        if path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ImageError(f"payload source {path} is missing; is {root} a bursting checkout?")
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class KeyInputs:
    """Everything the image is built from, as text, so the key is a pure function of it."""

    containerfile: str
    image_config: str
    suite: str
    payload_version: str
    requirements: tuple[str, ...]
    source_digest: str


def image_key(inputs: KeyInputs) -> str:
    """sha256 (hex) of the inputs; the image's tag is its first 12 characters."""
    canonical = json.dumps(asdict(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_inputs(
    root: Path, requirements: tuple[PayloadRequirement, ...], payload_version: str
) -> KeyInputs:
    """The key's inputs from a checkout at `root`."""
    for path in (CONTAINERFILE, IMAGE_CONFIG):
        if not (root / path).is_file():
            raise ImageError(
                f"{root / path} is missing: the worker image is built from a checkout of the "
                "project (an editable install, as `make` sets up)"
            )
    return KeyInputs(
        containerfile=(root / CONTAINERFILE).read_text(),
        image_config=(root / IMAGE_CONFIG).read_text(),
        suite=SUITE,
        payload_version=payload_version,
        requirements=tuple(r.pinned or r.as_written for r in requirements),
        source_digest=source_digest(root),
    )
