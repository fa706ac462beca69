"""A real OpenStack on 127.0.0.1 (Keystone, Nova with the fake driver, Placement, Glance,
Neutron, Swift) for development, demos and tests: a private and a public cloud in one Keystone."""

from __future__ import annotations

from bursting.devcloud.cloud import DevCloud
from bursting.devcloud.clouds import ADMIN_CLOUD, PRIVATE_CLOUD, PUBLIC_CLOUD, connect
from bursting.devcloud.layout import DevCloudError

__all__ = [
    "ADMIN_CLOUD",
    "PRIVATE_CLOUD",
    "PUBLIC_CLOUD",
    "DevCloud",
    "DevCloudError",
    "connect",
]
