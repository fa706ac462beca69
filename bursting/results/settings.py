"""Where results are published: the object store named by a connection's settings (an Airflow
connection's extra, for the mc_production DAG), and the openstacksdk connection to it.

Credentials never appear here: `cloud` names a `clouds.yaml` entry, found the way every
OpenStack tool finds it (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack,
/etc/openstack) unless `clouds_yaml` names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from bursting.clouds.openstack_errors import Redactor
from bursting.config import _Strict, format_errors
from bursting.errors import ConfigError
from bursting.results.objectstore import MIB, Connection
from bursting.results.rules import container_problem

# Every call to the store has this timeout (a segment upload is one call).
CALL_TIMEOUT_SECONDS = 120.0


class StoreSettings(_Strict):
    cloud: Annotated[str, Field(min_length=1)]  # the clouds.yaml entry
    clouds_yaml: Path | None = None
    region: str | None = None  # overrides the entry's region_name
    container: str | None = None  # the default container when the run names none
    # Swift's largest object is 5 GiB by default, so no segment can be larger.
    segment_size_mb: Annotated[int, Field(ge=1, le=5120)] = 64

    @field_validator("clouds_yaml")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("container")
    @classmethod
    def _container(cls, value: str | None) -> str | None:
        if value:
            problem = container_problem(value)
            if problem:
                raise ValueError(problem)
        return value or None

    @property
    def segment_size(self) -> int:
        return self.segment_size_mb * MIB


def store_settings(extra: Any, source: str) -> StoreSettings:
    """Settings from a connection's extra; a ConfigError names each bad field of `source`."""
    if not isinstance(extra, dict):
        raise ConfigError(source, ['extra: must be a JSON object such as {"cloud": "my-cloud"}'])
    try:
        return StoreSettings.model_validate(extra)
    except ValidationError as exc:
        raise ConfigError(source, [f"extra.{line}" for line in format_errors(exc, extra)]) from None


def connect(settings: StoreSettings, source: str) -> tuple[Connection, Redactor]:
    """The openstacksdk connection for the settings' cloud, and a redactor for its secrets.
    A missing file or entry is a ConfigError naming the field and where entries are looked up."""
    import openstack
    from openstack.config import OpenStackConfig

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
