"""The `simulation:` section of a config file: what the simulated pool and clouds do.

It sits beside the controller's own sections in the same YAML file; `bursting run` never sees it
(the simulator strips it before the config is validated). Every value has a default, so any
controller config can be simulated as it is.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bursting.config import Config, format_errors, parse_config
from bursting.errors import ConfigError

SECTION = "simulation"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Strict):
    """A delay in seconds: fixed, uniform(low, high), exponential(mean), lognormal(median,
    sigma) or normal(mean, sigma) truncated at 0."""

    kind: Literal["fixed", "uniform", "exponential", "lognormal", "normal"] = "fixed"
    value: Annotated[float, Field(ge=0)] = 0.0
    low: Annotated[float, Field(ge=0)] = 0.0
    high: Annotated[float, Field(ge=0)] = 0.0
    mean: Annotated[float, Field(ge=0)] = 0.0
    median: Annotated[float, Field(gt=0)] = 1.0
    sigma: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low}); swap them")
        return self

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.value
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.median), self.sigma)
        return max(0.0, rng.gauss(self.mean, self.sigma))


def fixed(seconds: float) -> Distribution:
    return Distribution(kind="fixed", value=seconds)


class Outage(_Strict):
    """A window in which the cloud's API answers nothing (hours after the trace starts)."""

    start_hours: Annotated[float, Field(ge=0)]
    duration_hours: Annotated[float, Field(gt=0)]
    kills_instances: bool = False  # its running instances are lost too (their jobs requeue)


class CloudSim(_Strict):
    """How one simulated cloud behaves."""

    boot_seconds: Distribution = Distribution(kind="lognormal", median=90.0, sigma=0.3)
    join_seconds: Distribution = Distribution(kind="uniform", low=10.0, high=40.0)
    delete_seconds: Distribution = fixed(10.0)
    boot_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    quota_instances: Annotated[int, Field(ge=0)] | None = None
    quota_cores: Annotated[int, Field(ge=0)] | None = None
    quota_memory_mb: Annotated[int, Field(ge=0)] | None = None
    outages: tuple[Outage, ...] = ()


class JobsSim(_Strict):
    """What to assume for jobs whose trace does not say."""

    memory_mb_per_core: Annotated[int, Field(ge=1)] = 2048
    disk_mb: Annotated[int, Field(ge=0)] = 0


class SimSettings(_Strict):
    negotiator_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    claim_reuse: bool = True  # a freed slot takes the next idle job of its shape at once
    default_cloud: CloudSim = CloudSim()
    clouds: dict[str, CloudSim] = Field(default_factory=dict)
    jobs: JobsSim = JobsSim()

    def cloud(self, name: str) -> CloudSim:
        """The cloud's own settings over `default_cloud`: what it does not set, it inherits."""
        own = self.clouds.get(name)
        if own is None:
            return self.default_cloud
        merged = {**self.default_cloud.model_dump(), **own.model_dump(exclude_unset=True)}
        return CloudSim.model_validate(merged)


def split_config(data: Any, source: str) -> tuple[Config, SimSettings]:
    """The controller's config and the simulation settings from one parsed YAML document."""
    if data is None:
        data = {}
    raw = None
    if isinstance(data, dict):
        data = dict(data)  # the caller's document stays as it was
        raw = data.pop(SECTION, None)
    config = parse_config(data, source)
    try:
        settings = SimSettings.model_validate(raw or {})
    except ValidationError as exc:
        problems = [f"{SECTION}.{line}" for line in format_errors(exc, raw)]
        raise ConfigError(source, problems) from None
    unknown = sorted(set(settings.clouds) - {c.name for c in config.clouds})
    if unknown:
        names = ", ".join(c.name for c in config.clouds) or "none"
        raise ConfigError(
            source,
            [
                f"{SECTION}.clouds.{name}: no cloud of that name in clouds (they are: {names})"
                for name in unknown
            ],
        )
    return config, settings


def _read_yaml(path: str | Path) -> tuple[Any, str]:
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found; pass an existing file"]) from None
    try:
        return yaml.safe_load(text), str(file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(str(file), [f"YAML syntax error at {where}"]) from None


def load_sim_config(
    path: str | Path, sim_path: str | Path | None = None
) -> tuple[Config, SimSettings]:
    """The controller's config file (unchanged, or with a `simulation:` section) and, if given,
    a separate file holding the simulation settings at its top level."""
    data, source = _read_yaml(path)
    if sim_path is not None:
        extra, extra_source = _read_yaml(sim_path)
        if isinstance(data, dict) and SECTION in data:
            raise ConfigError(
                source, [f"{SECTION}: given here and in {extra_source}; keep one of them"]
            )
        if extra is not None and not isinstance(extra, dict):
            raise ConfigError(extra_source, ["(top level): must be a mapping of settings"])
        data = {**(data or {}), SECTION: extra or {}}
    return split_config(data, source)
