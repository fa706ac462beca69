"""What the two clouds offer: quotas, public flavors, the worker image, a network and a
security group in each project. All made through the admin connection (openstacksdk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bursting.devcloud.identity import Member

NETWORK = "bursting-net"
SECURITY_GROUP = "bursting-worker"
IMAGE_NAME = "bursting-worker"
IMAGE_PROPERTY = "bursting_worker_image"
IMAGE_KEY_PROPERTY = "bursting_image_key"
# Nova's fake driver boots nothing; the image only has to exist. Its property names the podman
# image a hypervisor stand-in boots the server from.
IMAGE_PLACEHOLDER = b"bursting devcloud worker image placeholder\n"


@dataclass(frozen=True)
class FlavorSpec:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int


FLAVORS = (
    FlavorSpec("w1.small", 1, 1024, 2),
    FlavorSpec("w1.medium", 2, 2048, 4),
    FlavorSpec("w1.large", 4, 4096, 8),
)


def create_flavors(admin: Any) -> None:
    for spec in FLAVORS:
        if admin.compute.find_flavor(spec.name) is None:
            admin.compute.create_flavor(
                name=spec.name,
                vcpus=spec.vcpus,
                ram=spec.ram_mb,
                disk=spec.disk_gb,
                is_public=True,
            )


def set_quota(admin: Any, member: Member) -> None:
    spec = member.spec
    admin.compute.update_quota_set(
        member.project_id, instances=spec.instances, cores=spec.cores, ram=spec.ram_mb
    )


def create_network(admin: Any, member: Member, cidr: str) -> None:
    """The project's own network and subnet (a `local` network: no physical network needed),
    and a security group with no inbound rule: workers only connect out, to the collector."""
    network = admin.network.create_network(name=NETWORK, project_id=member.project_id)
    admin.network.create_subnet(
        name=f"{NETWORK}-subnet",
        network_id=network.id,
        project_id=member.project_id,
        ip_version=4,
        cidr=cidr,
        enable_dhcp=False,
    )
    group = admin.network.create_security_group(
        name=SECURITY_GROUP,
        project_id=member.project_id,
        description="burst workers: outbound only (to the collector on 9618)",
    )
    # A new group allows all egress already; it has no ingress rule, and none is added.
    _ = group


def newest_worker_image(admin: Any) -> Any | None:
    """The newest Glance image carrying the worker-image property, or None."""
    found = [
        image
        for image in admin.image.images()
        if IMAGE_PROPERTY in (image.properties or {}) and image.status != "deleted"
    ]
    return max(found, key=lambda image: image.created_at or "", default=None)


def register_worker_image(admin: Any, reference: str, key: str, log: Callable[[str], None]) -> str:
    """Register the podman worker image in Glance, unless the newest one has this key already.
    Returns the Glance image id."""
    newest = newest_worker_image(admin)
    if newest is not None and (newest.properties or {}).get(IMAGE_KEY_PROPERTY) == key:
        return str(newest.id)
    image = admin.image.create_image(
        name=IMAGE_NAME,
        disk_format="raw",
        container_format="bare",
        visibility="public",
        data=IMAGE_PLACEHOLDER,
        **{IMAGE_PROPERTY: reference, IMAGE_KEY_PROPERTY: key},
    )
    log(f"Glance image {IMAGE_NAME} registered for {reference}")
    return str(image.id)
