"""The local cloud's config model: the common cloud fields plus its `local:` settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bursting.config import CloudConfig, _Strict
from bursting.image import PAYLOAD_ATTRIBUTE


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
    """Embedded cloud: each instance is a real HTCondor execute node on this machine, booted
    from the worker image."""

    type: Literal["local"]
    local: LocalSettings = LocalSettings()

    @model_validator(mode="before")
    @classmethod
    def _image_provides_payload(cls, data: Any) -> Any:
        """Its workers boot from the worker image, so they always have the physics payload: the
        planner must know, as jobs that need it say so in their requirements."""
        if isinstance(data, dict) and isinstance(data.get("provides", {}), dict):
            return {**data, "provides": {PAYLOAD_ATTRIBUTE: True, **data.get("provides", {})}}
        return data
