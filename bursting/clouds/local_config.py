"""The local cloud's config model: the common cloud fields plus its `local:` settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from bursting.config import CloudConfig, _Strict


class LocalFaults(_Strict):
    """Faults the local cloud injects so that failure handling can be tested for real."""

    boot_failure_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    hang_in_build: bool = False
    never_join: bool = False
    quota_cores: Annotated[int, Field(ge=0)] | None = None
    quota_unknown: bool = False  # the quota call fails, as a cloud's API sometimes does
    # A create answers only after this long, as a slow cloud API does (a crash in between leaves
    # an intent the cloud never accepted).
    create_delay_seconds: Annotated[float, Field(ge=0, le=60)] = 0.0


class LocalSettings(_Strict):
    boot_delay_seconds: Annotated[float, Field(ge=0)] = 5.0
    faults: LocalFaults = LocalFaults()
    state_dir: Path | None = None  # where the cloud keeps its records; default in the cache


class LocalCloud(CloudConfig):
    """Embedded cloud: each instance is a real HTCondor execute node on this machine."""

    type: Literal["local"]
    local: LocalSettings = LocalSettings()
