"""Where results are published: the object store named by a connection's settings (an Airflow
connection's extra, for the mc_production DAG), and the store itself (base.ObjectStore).

`kind` chooses the store: `swift` (the default) names a `clouds.yaml` entry (`cloud`), found the
way every OpenStack tool finds it (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack,
/etc/openstack) unless `clouds_yaml` names the file; `s3` names an S3 endpoint (Swift's s3api or
any S3 site) whose keys come from the connection's login/password or the usual AWS lookup.
Nothing here imports an SDK: a store's SDK is loaded when it is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bursting.config import _Strict, format_errors
from bursting.errors import ConfigError
from bursting.results.rules import container_problem

if TYPE_CHECKING:
    from bursting.clouds.openstack_errors import Redactor
    from bursting.results.base import ObjectStore
    from bursting.results.swift import Connection

MIB = 1 << 20
# Every call to the store has this timeout (a segment upload is one call).
CALL_TIMEOUT_SECONDS = 120.0
KINDS = ("swift", "s3")


def _container(value: str | None) -> str | None:
    if value and (problem := container_problem(value)):
        raise ValueError(problem)
    return value or None


# The default container (bucket) when the run names none.
Container = Annotated[str | None, AfterValidator(_container)]


class SwiftSettings(_Strict):
    kind: Literal["swift"] = "swift"
    cloud: Annotated[str, Field(min_length=1)]  # the clouds.yaml entry
    clouds_yaml: Path | None = None
    region: str | None = None  # overrides the entry's region_name
    container: Container = None
    # Swift's largest object is 5 GiB by default, so no segment can be larger.
    segment_size_mb: Annotated[int, Field(ge=1, le=5120)] = 64

    @field_validator("clouds_yaml")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def segment_size(self) -> int:
        return self.segment_size_mb * MIB


class S3Settings(_Strict):
    """boto3's own names for what a boto3 user would pass (endpoint_url, region_name...)."""

    kind: Literal["s3"]
    # None: the usual lookup (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the config file), else AWS.
    endpoint_url: str | None = None
    region_name: str | None = None  # None: AWS_DEFAULT_REGION / the profile's region
    profile_name: str | None = None  # a profile of the AWS config and credentials files
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    # Swift's s3api answers path-style requests (http://host:port/bucket/key).
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    container: Container = None
    # S3 takes parts of 5 MiB to 5 GiB (the last part may be smaller), at most 10000 of them.
    part_size_mb: Annotated[int, Field(ge=5, le=5120)] = 64

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r} is not an http(s) URL; use the endpoint's base URL, for example "
                "http://127.0.0.1:8080 (no bucket in it)"
            )
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; give them as the connection's login")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key_pair(self) -> S3Settings:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError(
                "aws_access_key_id and aws_secret_access_key: give both (or neither, for the "
                "usual AWS lookup)"
            )
        return self

    @property
    def segment_size(self) -> int:
        return self.part_size_mb * MIB

    def keys(self) -> tuple[str, str] | None:
        """(access key id, secret access key) when given here; None for the usual lookup."""
        if self.aws_access_key_id is None or self.aws_secret_access_key is None:
            return None
        return self.aws_access_key_id, self.aws_secret_access_key.get_secret_value()


StoreSettings = SwiftSettings | S3Settings


def store_settings(
    extra: Any, source: str, *, login: str | None = None, password: str | None = None
) -> StoreSettings:
    """Settings from a connection's extra (and, for S3, its login and password: the access key
    id and secret access key, as Airflow's AWS connection has them); a ConfigError names each
    bad field of `source`."""
    if not isinstance(extra, dict):
        raise ConfigError(source, ['extra: must be a JSON object such as {"cloud": "my-cloud"}'])
    kind = extra.get("kind", "swift")
    if kind not in KINDS:
        raise ConfigError(
            source,
            [f"extra.kind: must be one of {', '.join(KINDS)} (swift is the default), got {kind!r}"],
        )
    if kind == "s3":
        return _s3_settings(extra, source, login or None, password or None)
    if login or password:
        raise ConfigError(
            source,
            [
                "login/password: not used for kind swift (the credentials come from the "
                "clouds.yaml entry); remove them, or set extra.kind to s3"
            ],
        )
    try:
        return SwiftSettings.model_validate(extra)
    except ValidationError as exc:
        problems = [f"extra.{line}" for line in format_errors(exc, extra)]
        s3_keys = sorted(
            set(extra) & set(S3Settings.model_fields) - set(SwiftSettings.model_fields)
        )
        if s3_keys:
            problems.append(f"extra.kind: {', '.join(s3_keys)} are S3 keys; set kind to s3")
        raise ConfigError(source, problems) from None


def _s3_settings(
    extra: dict[str, Any], source: str, login: str | None, password: str | None
) -> S3Settings:
    in_extra = [k for k in ("aws_access_key_id", "aws_secret_access_key") if extra.get(k)]
    pair = "give both (or neither, for the usual AWS lookup)"
    if (login or password) and in_extra:
        raise ConfigError(
            source,
            [
                "login/password and extra.aws_access_key_id/aws_secret_access_key both give the "
                "S3 keys; keep one (Airflow masks the password)"
            ],
        )
    if bool(login) != bool(password):
        raise ConfigError(
            source, [f"login and password: the access key id and secret access key; {pair}"]
        )
    if len(in_extra) == 1:
        raise ConfigError(
            source, [f"extra.aws_access_key_id and extra.aws_secret_access_key: {pair}"]
        )
    data = dict(extra)
    if login and password:
        data.update(aws_access_key_id=login, aws_secret_access_key=password)
    try:
        return S3Settings.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, data)
        # A secret never goes into the message, even where pydantic would quote the input.
        secret = password or str(extra.get("aws_secret_access_key") or "")
        if secret:
            lines = [line.replace(secret, "********") for line in lines]
        raise ConfigError(source, [f"extra.{line}" for line in lines]) from None


def open_store(settings: StoreSettings, container: str, source: str) -> ObjectStore:
    """The store for the settings, not yet contacted (ObjectStore.open does that)."""
    if isinstance(settings, S3Settings):
        from bursting.results.s3 import open_s3

        return open_s3(settings, container, source)
    from bursting.results.swift import SwiftStore

    conn, redact = connect(settings, source)
    return SwiftStore(conn, container, settings.cloud, redact)


def connect(settings: SwiftSettings, source: str) -> tuple[Connection, Redactor]:
    """The openstacksdk connection for the settings' cloud, and a redactor for its secrets.
    A missing file or entry is a ConfigError naming the field and where entries are looked up."""
    import openstack
    from openstack.config import OpenStackConfig

    from bursting.clouds.openstack_errors import Redactor

    path = settings.clouds_yaml
    if path is not None and not path.is_file():
        raise ConfigError(source, [f"extra.clouds_yaml: no file {path}; fix the path"])
    try:
        # An explicit file wins; otherwise the usual lookup, OS_CLIENT_CONFIG_FILE first.
        loader = OpenStackConfig(
            config_files=[str(path)] if path else None, load_envvars=path is None
        )
        region = loader.get_one(
            cloud=settings.cloud,
            region_name=settings.region,
            api_timeout=CALL_TIMEOUT_SECONDS,
        )
    except openstack.exceptions.ConfigException as exc:
        where = str(path) if path else "OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack"
        raise ConfigError(
            source,
            [
                f"extra.cloud: {settings.cloud!r} cannot be loaded from {where} ({exc}); add "
                "the entry to clouds.yaml or set extra.clouds_yaml to the file that has it"
            ],
        ) from None
    redact = Redactor.for_auth(dict(region.config.get("auth") or {}))
    conn: Connection = openstack.connection.Connection(config=region)
    return conn, redact
