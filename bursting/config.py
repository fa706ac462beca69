"""The typed YAML configuration: built once at the entry point, then passed down.

Every problem is reported with its YAML path and what to do about it, e.g.
``clouds[1].max_instances: must be >= 0, got -3``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


ATTRIBUTE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
AttributeValue = bool | int | float | str


def _attribute_names(values: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
    bad = sorted(name for name in values if not re.fullmatch(ATTRIBUTE_PATTERN, name))
    if bad:
        raise ValueError(
            f"{', '.join(map(repr, bad))} cannot be ClassAd attribute names; use letters, "
            "digits and '_', starting with a letter"
        )
    return values


class CloudConfig(_Strict):
    """What every cloud has, whatever its type. A provider subclasses it with `type` fixed to
    its name and its own settings key, and registers it in the `bursting.clouds` entry points."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    type: str
    enabled: bool = True
    priority: Annotated[int, Field(ge=0)] = 10
    min_instances: Annotated[int, Field(ge=0)] = 0
    max_instances: Annotated[int, Field(ge=0)] = 10
    max_concurrent_boots: Annotated[int, Field(ge=1)] = 5
    call_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60.0
    flavors: Annotated[tuple[FlavorConfig, ...], Field(min_length=1)]
    # Attributes this cloud's workers advertise (e.g. HasCVMFS: true); job Requirements are
    # matched against them when planning, and the worker configuration really advertises them.
    provides: dict[str, AttributeValue] = Field(default_factory=dict)

    _provides_names = field_validator("provides")(_attribute_names)

    @model_validator(mode="after")
    def _consistent(self) -> CloudConfig:
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


class UninstalledCloud(CloudConfig):
    """A disabled cloud whose type has no installed provider: kept, checked, never built."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TokenSource(_Strict):
    """Where a secret comes from: a file or an environment variable, never the config itself."""

    file: Path | None = None
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> TokenSource:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file: PATH or env: VARIABLE")
        return self

    @field_validator("file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    def describe(self) -> str:
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"


class WorkersConfig(_Strict):
    """How burst workers join the pool; every provider renders this the same way."""

    collector: str | None = None  # as the workers reach it; default: pool.collector
    token: TokenSource = TokenSource(file=Path("~/.config/bursting/worker.token"))
    # The signing key workers verify the controller's drain token with (never the pool's own
    # key: a worker holding it could mint tokens for the central manager). None: workers accept
    # no drain and leave by their idle-shutdown backstop only.
    admin_key: TokenSource | None = TokenSource(file=Path("~/.config/bursting/worker-admin.key"))
    # The defaults are the personal pool's, like pool.collector's; set both for a real pool.
    uid_domain: str | None = "bursting.devpool"
    admin_identity: str | None = "bursting@bursting.devpool"  # may drain: the controller
    idle_shutdown_seconds: Annotated[int, Field(ge=60)] | None = None  # default: from policy
    retirement_seconds: Annotated[int, Field(ge=0)] = 3 * 24 * 3600
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    _attribute_names = field_validator("attributes")(_attribute_names)


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


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or re.fullmatch(r"127(\.\d{1,3}){3}", host) is not None


class MetricsConfig(_Strict):
    """Where `bursting run` serves /metrics, /healthz, /readyz and /status (read-only).
    Loopback by default; any other address needs `allow_remote: true`, said on purpose."""

    allow_remote: bool = False
    listen: str = "127.0.0.1:9187"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str, info: ValidationInfo) -> str:
        found = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})", value)
        if found is None or int(found.group(2)) > 65535:
            raise ValueError(f"must be host:port (e.g. 127.0.0.1:9187, [::1]:9187), got {value!r}")
        host = found.group(1).strip("[]")
        if not _loopback(host) and not info.data.get("allow_remote", False):
            raise ValueError(
                f"{host} is not a loopback address; serving metrics and status beyond this "
                "host must be explicit: set metrics.allow_remote: true, or listen on 127.0.0.1"
            )
        return value


LEASE_NAME_PATTERN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"  # a DNS-1123 subdomain
NAMESPACE_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"  # a DNS-1123 label
JITTER = 1.2  # a standby waits up to this many retry periods between tries (as client-go)


class LeaderElectionConfig(_Strict):
    """Replicas of `bursting run` elect one leader through a coordination.k8s.io/v1 Lease; only
    the leader acts. Off by default: a single replica needs no Lease (and no Kubernetes)."""

    enabled: bool = False
    lease_name: str = "bursting-controller"
    # None: the pod's own namespace (in-cluster), or the kubeconfig context's namespace.
    namespace: str | None = None
    # None: this pod's ServiceAccount (in-cluster config).
    kubeconfig: Path | None = None
    context: Annotated[str, Field(min_length=1)] | None = None
    # The Lease's own field is whole seconds; the other two are how client-go spells them.
    lease_duration_seconds: Annotated[int, Field(ge=1, le=3600)] = 15
    renew_deadline_seconds: Annotated[float, Field(gt=0)] = 10.0
    retry_period_seconds: Annotated[float, Field(gt=0)] = 2.0

    @field_validator("lease_name")
    @classmethod
    def _lease_name(cls, value: str) -> str:
        if not re.fullmatch(LEASE_NAME_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a Kubernetes object name; use lowercase letters, digits, "
                "'-' and '.', starting and ending with a letter or digit (at most 253)"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(NAMESPACE_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a Kubernetes namespace; use lowercase letters, digits and "
                "'-', starting and ending with a letter or digit (at most 63), or leave it "
                "out for the pod's own namespace"
            )
        return value

    @field_validator("kubeconfig")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    # client-go's rules, each reported on the field to change.
    @field_validator("renew_deadline_seconds")
    @classmethod
    def _before_expiry(cls, value: float, info: ValidationInfo) -> float:
        lease = info.data.get("lease_duration_seconds")
        if lease is not None and value >= lease:
            raise ValueError(
                f"must be below lease_duration_seconds ({lease}), got {value:g}: a leader must "
                "stop acting before its Lease can pass to a standby"
            )
        return value

    @field_validator("retry_period_seconds")
    @classmethod
    def _retried_in_time(cls, value: float, info: ValidationInfo) -> float:
        deadline = info.data.get("renew_deadline_seconds")
        if deadline is not None and value * JITTER >= deadline:
            raise ValueError(
                f"must be below renew_deadline_seconds / {JITTER} ({deadline / JITTER:g}), got "
                f"{value:g}: a failed renewal must be retried before the deadline"
            )
        return value


class Config(_Strict):
    pool: PoolConfig = PoolConfig()
    workers: WorkersConfig = WorkersConfig()
    clouds: tuple[SerializeAsAny[CloudConfig], ...] = ()
    policy: PolicyConfig = PolicyConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    leader_election: LeaderElectionConfig = LeaderElectionConfig()

    @model_validator(mode="after")
    def _unique_clouds(self) -> Config:
        names = [cloud.name for cloud in self.clouds]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"cloud names repeat: {', '.join(duplicates)}; make them unique")
        return self

    def cloud(self, name: str) -> CloudConfig:
        for cloud in self.clouds:
            if cloud.name == name:
                return cloud
        raise KeyError(name)


def _yaml_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Render pydantic's location as a YAML path."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
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


def _cloud_model(entry: Any, where: str, problems: list[str]) -> type[CloudConfig] | None:
    """The settings model of this cloud's type, from the installed providers' entry points."""
    from bursting.clouds.registry import cloud_type, installed_types

    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping of keys, got {type(entry).__name__}")
        return None
    installed = ", ".join(sorted(installed_types())) or "none"
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind:
        problems.append(f"{where}.type: is required; one of the installed types: {installed}")
        return None
    if kind in installed_types():
        return cloud_type(kind).config_model
    if entry.get("enabled", True) is False:
        return UninstalledCloud
    problems.append(
        f"{where}.type: no cloud provider of type {kind!r} is installed (installed: {installed}); "
        "install its package, fix the type, or set enabled: false"
    )
    return None


def _parse_clouds(data: dict[str, Any], problems: list[str]) -> list[CloudConfig]:
    """Each cloud is validated by its own type's model, so a new type needs no edit here."""
    entries = data.get("clouds") or []
    if not isinstance(entries, list):
        problems.append(f"clouds: must be a list, got {type(entries).__name__}")
        return []
    clouds = []
    for index, entry in enumerate(entries):
        model = _cloud_model(entry, f"clouds[{index}]", problems)
        if model is None:
            continue
        try:
            clouds.append(model.model_validate(entry))
        except ValidationError as exc:
            problems += [
                f"{_yaml_path(('clouds', index, *e['loc']), data)}: {_explain(e)}"
                for e in exc.errors()
            ]
    return clouds


def parse_config(data: Any, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping with pool, clouds, policy"])
    problems: list[str] = []
    clouds = _parse_clouds(data, problems)
    try:
        config = Config.model_validate({**data, "clouds": clouds})
    except ValidationError as exc:
        problems += format_errors(exc, data)
    if problems:
        raise ConfigError(source, problems)
    return config


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
