"""The record of a built image (what is inside it), and the pure decisions made from it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPOSITORY = "localhost/bursting-worker"
KEY_LABEL = "org.bursting.image-key"
VERSION_LABEL = "org.bursting.payload-version"

State = Literal["current", "stale", "missing"]


@dataclass(frozen=True)
class ImageInfo:
    """A built worker image: the reference podman runs, its key, and its manifest."""

    reference: str
    key: str
    manifest: dict[str, object]

    @property
    def image_id(self) -> str:
        return str(self.manifest.get("image_id", ""))


def reference_for(key: str) -> str:
    return f"{REPOSITORY}:{key[:12]}"


def manifest_path(cache: Path, key: str) -> Path:
    """One manifest per key: clones at different versions share the cache without thrashing."""
    return cache / f"manifest-{key[:12]}.json"


def read_manifest(path: Path) -> dict[str, object] | None:
    """The manifest at `path`, or None if absent or unreadable (then the image is rebuilt)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(path: Path, manifest: Mapping[str, object]) -> None:
    """Write atomically: a reader never sees half a manifest."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def latest_manifest(cache: Path) -> dict[str, object] | None:
    """The most recently built image's manifest, whatever its key (for status)."""
    found = [m for p in cache.glob("manifest-*.json") if (m := read_manifest(p)) is not None]
    return max(found, key=lambda m: str(m.get("built_at", "")), default=None)


def decide_state(manifest: Mapping[str, object] | None, key: str, present_id: str | None) -> State:
    """current: built for this key and podman holds that very image; stale: built, but for other
    inputs or since replaced under its tag; missing: never built, or removed from podman."""
    if manifest is None:
        return "missing"
    if manifest.get("key") != key:
        return "stale"
    if present_id is None:
        return "missing"
    return "current" if manifest.get("image_id") == present_id else "stale"


def parse_condor_version(text: str) -> str:
    """'$CondorVersion: 23.9.6 2026-07-12 ... $' -> '23.9.6'."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "$CondorVersion:":
            return words[1]
    raise ValueError(f"no $CondorVersion in {text[:200]!r}")


def parse_description(text: str) -> dict[str, object]:
    """What the describe script printed in the image: sections separated by '---' lines."""
    sections = [s.strip() for s in text.split("\n---\n")]
    if len(sections) != 4:
        raise ValueError(f"expected 4 sections from the image, got {len(sections)}: {text[:300]!r}")
    condor, python, advertised, freeze = sections
    return {
        "htcondor_version": parse_condor_version(condor),
        "python_version": python,
        "advertised_payload_version": advertised.strip('"'),
        "pip_freeze": [line for line in freeze.splitlines() if line.strip()],
    }


def frozen_version(freeze: object, name: str) -> str | None:
    """The version `pip freeze` recorded for `name` (case and -/_ insensitive), if any."""
    wanted = name.lower().replace("_", "-")
    for line in freeze if isinstance(freeze, list) else []:
        dist, sep, version = str(line).partition("==")
        if sep and dist.lower().replace("_", "-") == wanted:
            return version
    return None
