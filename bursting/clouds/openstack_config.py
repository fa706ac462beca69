"""An OpenStack cloud's config model: the common cloud fields plus its `openstack:` settings.

Credentials never appear here: `cloud` names an entry of a `clouds.yaml`, found the way every
OpenStack tool finds it (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack,
/etc/openstack) unless `clouds_yaml` names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bursting.config import CloudConfig, _Strict


class OpenStackSettings(_Strict):
    cloud: Annotated[str, Field(min_length=1)]  # the clouds.yaml entry
    clouds_yaml: Path | None = None
    region: str | None = None  # overrides the entry's region_name
    # The image servers boot from: by name, or the newest image carrying these properties
    # (how sites publish rebuilt images without editing every controller's config).
    image: str | None = None
    image_properties: dict[str, str] = Field(default_factory=dict)
    network: str | None = None  # name or id; none: the project's default
    security_groups: tuple[str, ...] = ()
    key_name: str | None = None
    availability_zone: str | None = None
    # How long a create waits for Nova to accept or refuse the server (its quota recheck and
    # scheduling take about a second); a server still building after that is simply BUILD.
    create_confirm_seconds: Annotated[float, Field(ge=0, le=60)] = 5.0
    # Nova's recheck can only refuse a create near the quota: a create is read back only when the
    # headroom last read, less the creates sent since, is within this many servers of the flavor.
    # Far from the quota the read-backs would only load nova-api during a ramp.
    create_confirm_margin: Annotated[int, Field(ge=0, le=1000)] = 5
    # Flavors and images are read again after this long (a site adds flavors, rebuilds images).
    catalog_refresh_seconds: Annotated[float, Field(ge=10)] = 600.0
    # Servers per page of a listing; none: Nova's own maximum (osapi_max_limit), one request
    # for a listing shorter than that.
    page_size: Annotated[int, Field(ge=1, le=1000)] | None = None

    @field_validator("clouds_yaml")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _one_image(self) -> OpenStackSettings:
        if (self.image is None) == (not self.image_properties):
            raise ValueError(
                "give exactly one of image: NAME or image_properties: {KEY: VALUE} "
                "(the newest image carrying them is used)"
            )
        return self


class OpenStackCloud(CloudConfig):
    """A cloud reached through the OpenStack APIs (Nova, Glance, Neutron), private or public."""

    type: Literal["openstack"]
    openstack: OpenStackSettings
