"""The typed YAML configuration: built once at the entry point, then passed down.

Every problem is reported with its YAML path and what to do about it, e.g.
``clouds[1].max_instances: must be >= 0, got -3``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bursting.errors import ConfigError
from bursting.model import Flavor

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
NAME_FIX = "use 1-40 lowercase letters, digits or '-', starting with a letter"


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolConfig(_Strict):
    """Where the HTCondor pool is and how to authenticate to it."""

    id: Annotated[str, Field(pattern=NAME_PATTERN)] = "bursting"
    collector: str = "127.0.0.1:9618"
    schedd: str | None = None
    token_dir: Annotated[Path, Field(validate_default=True)] = Path("~/.config/bursting/tokens.d")
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 20.0

    @field_validator("collector")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?", value):
            raise ValueError(f"must be host or host:port, got {value!r}")
        return value

    @field_validator("token_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class FlavorConfig(_Strict):
    name: Annotated[str, Field(min_length=1)]
    cpus: Annotated[int, Field(ge=1, le=1024)]
    memory_mb: Annotated[int, Field(ge=256)]
    disk_gb: Annotated[int, Field(ge=0)] = 20
    gpus: Annotated[int, Field(ge=0)] = 0
    price_per_hour: Annotated[float, Field(ge=0)] = 0.0

    def to_flavor(self) -> Flavor:
        return Flavor(
            self.name, self.cpus, self.memory_mb, self.disk_gb, self.gpus, self.price_per_hour
        )


class LocalFaults(_Strict):
    """Faults the local cloud injects so that failure handling can be tested for real."""

    boot_failure_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    hang_in_build: bool = False
    never_join: bool = False
    quota_cores: Annotated[int, Field(ge=0)] | None = None


class LocalSettings(_Strict):
    boot_delay_seconds: Annotated[float, Field(ge=0)] = 5.0
    faults: LocalFaults = LocalFaults()
    state_dir: Path | None = None  # where the cloud keeps its records; default in the cache


class OpenStackSettings(_Strict):
    cloud: Annotated[str, Field(min_length=1, description="entry in clouds.yaml")]
    image: Annotated[str, Field(min_length=1)]
    network: str | None = None
    key_name: str | None = None
    security_groups: tuple[str, ...] = ()


class KubernetesSettings(_Strict):
    namespace: Annotated[str, Field(min_length=1)] = "bursting"
    image: Annotated[str, Field(min_length=1)]
    context: str | None = None


class _CloudBase(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    enabled: bool = True
    priority: Annotated[int, Field(ge=0)] = 10
    min_instances: Annotated[int, Field(ge=0)] = 0
    max_instances: Annotated[int, Field(ge=0)] = 10
    max_concurrent_boots: Annotated[int, Field(ge=1)] = 5
    flavors: Annotated[tuple[FlavorConfig, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> _CloudBase:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) exceeds max_instances "
                f"({self.max_instances}); lower min_instances or raise max_instances"
            )
        names = [flavor.name for flavor in self.flavors]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"flavor names repeat: {', '.join(duplicates)}; make them unique")
        return self


class LocalCloud(_CloudBase):
    """Embedded cloud: each instance is a real HTCondor execute node on this machine."""

    type: Literal["local"]
    local: LocalSettings = LocalSettings()


class OpenStackCloud(_CloudBase):
    type: Literal["openstack"]
    openstack: OpenStackSettings


class KubernetesCloud(_CloudBase):
    type: Literal["kubernetes"]
    kubernetes: KubernetesSettings


CloudConfig = Annotated[LocalCloud | OpenStackCloud | KubernetesCloud, Field(discriminator="type")]


class BackoffConfig(_Strict):
    initial_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_seconds: Annotated[float, Field(gt=0)] = 1800.0

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.max_seconds < self.initial_seconds:
            raise ValueError("max_seconds must be >= initial_seconds")
        return self


class SpendConfig(_Strict):
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "CHF"
    max_per_hour: Annotated[float, Field(ge=0)] | None = None
    max_per_campaign: Annotated[float, Field(ge=0)] | None = None


class PolicyConfig(_Strict):
    """The knobs of DESIGN.md section 5."""

    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    min_idle_seconds: Annotated[float, Field(ge=0)] = 60.0
    idle_seconds: Annotated[float, Field(ge=0)] = 600.0
    boot_timeout_seconds: Annotated[float, Field(gt=0)] = 900.0
    join_timeout_seconds: Annotated[float, Field(gt=0)] = 900.0
    drain_timeout_seconds: Annotated[float, Field(gt=0)] = 86400.0
    missing_cycles_before_gone: Annotated[int, Field(ge=1)] = 3
    orphan_grace_seconds: Annotated[float, Field(ge=0)] = 600.0
    max_calls_in_flight: Annotated[int, Field(ge=1, le=256)] = 8
    backoff: BackoffConfig = BackoffConfig()
    spend: SpendConfig = SpendConfig()


class StoreConfig(_Strict):
    url: Annotated[str, Field(min_length=1)] = "sqlite:///~/.local/state/bursting/state.db"


class MetricsConfig(_Strict):
    listen: str = "127.0.0.1:9187"


class Config(_Strict):
    pool: PoolConfig = PoolConfig()
    clouds: tuple[CloudConfig, ...] = ()
    policy: PolicyConfig = PolicyConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def _unique_clouds(self) -> Config:
        names = [cloud.name for cloud in self.clouds]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"cloud names repeat: {', '.join(duplicates)}; make them unique")
        return self

    def cloud(self, name: str) -> LocalCloud | OpenStackCloud | KubernetesCloud:
        for cloud in self.clouds:
            if cloud.name == name:
                return cloud
        raise KeyError(name)


def _yaml_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Render pydantic's location as a YAML path, dropping the union tag pydantic inserts."""
    out = ""
    node = data
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(previous, int) and isinstance(node, dict) and node.get("type") == part:
            pass  # the discriminator tag pydantic inserts after a list index, not a key
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
        previous = part
    return out or "(top level)"


def _explain(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    got = error.get("input")
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']:g}, got {got!r}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']:g}, got {got!r}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']:g}, got {got!r}"
    if kind == "missing":
        return "is required; add it"
    if kind == "extra_forbidden":
        return "is not a known key; remove it or check its spelling"
    if kind == "string_pattern_mismatch":
        return f"{got!r} is not a valid name; {NAME_FIX}"
    if kind == "union_tag_invalid":
        return f"type must be one of {ctx.get('expected_tags')}, got {ctx.get('tag')!r}"
    if kind == "union_tag_not_found":
        return "needs a 'type' key: local, openstack or kubernetes"
    if kind == "too_short":
        return "must not be empty; list at least one"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number, got {got!r}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, got {got!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false, got {got!r}"
    if kind in ("model_type", "dict_type"):
        return f"must be a mapping of keys, got {type(got).__name__}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, got {type(got).__name__}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message


def format_errors(exc: ValidationError, data: Any) -> list[str]:
    """One line per problem: `yaml.path: what is wrong and the fix`."""
    return [f"{_yaml_path(tuple(e['loc']), data)}: {_explain(e)}" for e in exc.errors()]


def parse_config(data: Any, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping with pool, clouds, policy"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc, data)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file; raises ConfigError listing every problem."""
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found; pass an existing file"]) from None
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot be read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(str(file), [f"YAML syntax error at {where}: {problem}"]) from None
    return parse_config(data, str(file))
