"""Keystone: the service users and catalog for two regions, the two clouds' projects and users.

RegionOne and RegionTwo share every endpoint except compute: each region has a nova-api of its
own (8774, 8775), so the public cloud's API can be stopped while the private one keeps serving.
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bursting.devcloud.layout import HOST, PORTS, REGION_PRIVATE, REGION_PUBLIC
from bursting.model import Secret

SERVICE_PROJECT = "service"
MEMBER_ROLE = "member"
SERVICE_USERS = ("nova", "placement", "glance", "neutron", "swift")


@dataclass(frozen=True)
class Endpoint:
    service: str
    type: str
    url: str


def catalog() -> dict[str, list[Endpoint]]:
    """Every endpoint per region; the compute endpoint differs, the rest are shared URLs."""
    shared = [
        Endpoint("placement", "placement", f"http://{HOST}:{PORTS['placement']}"),
        Endpoint("glance", "image", f"http://{HOST}:{PORTS['glance']}"),
        Endpoint("neutron", "network", f"http://{HOST}:{PORTS['neutron']}"),
        Endpoint(
            "swift", "object-store", f"http://{HOST}:{PORTS['swift-proxy']}/v1/AUTH_%(project_id)s"
        ),
    ]
    return {
        REGION_PRIVATE: [
            Endpoint("nova", "compute", f"http://{HOST}:{PORTS['nova-api']}/v2.1"),
            *shared,
        ],
        REGION_PUBLIC: [
            Endpoint("keystone", "identity", f"http://{HOST}:{PORTS['keystone']}/v3/"),
            Endpoint("nova", "compute", f"http://{HOST}:{PORTS['nova-api-public']}/v2.1"),
            *shared,
        ],
    }


def register_services(admin: Any, service_password: Secret) -> None:
    """Service project and users (admin + service roles), the second region, every endpoint."""
    identity = admin.identity
    project = identity.find_project(SERVICE_PROJECT) or identity.create_project(
        name=SERVICE_PROJECT, domain_id="default"
    )
    admin_role = identity.find_role("admin")
    service_role = identity.find_role("service") or identity.create_role(name="service")

    def service_user(name: str) -> None:
        user = identity.create_user(
            name=name, password=service_password.reveal(), domain_id="default"
        )
        identity.assign_project_role_to_user(project, user, admin_role)
        identity.assign_project_role_to_user(project, user, service_role)

    identity.create_region(id=REGION_PUBLIC)
    services: dict[str, Any] = {}
    calls: list[dict[str, str]] = []
    for region, endpoints in catalog().items():
        for endpoint in endpoints:
            svc = services.get(endpoint.service) or identity.find_service(endpoint.service)
            if svc is None:
                svc = identity.create_service(name=endpoint.service, type=endpoint.type)
            services[endpoint.service] = svc
            for interface in ("public", "internal", "admin"):
                url = endpoint.url
                if endpoint.type == "object-store" and interface == "admin":
                    url = f"http://{HOST}:{PORTS['swift-proxy']}/v1"
                calls.append(
                    {"service_id": svc.id, "interface": interface, "url": url, "region_id": region}
                )
    # Independent calls, made a few at a time: start-up waits on Keystone round trips here.
    with ThreadPoolExecutor(4) as pool:
        waits = [pool.submit(service_user, name) for name in SERVICE_USERS]
        waits += [pool.submit(identity.create_endpoint, **call) for call in calls]
        for future in waits:
            future.result()


@dataclass(frozen=True)
class ProjectSpec:
    """One project standing for one cloud, and its compute quota."""

    project: str
    user: str
    region: str
    instances: int
    cores: int
    ram_mb: int


@dataclass(frozen=True)
class Member:
    """A project's user and its application credential (the secret only in memory)."""

    spec: ProjectSpec
    project_id: str
    user_id: str
    password: Secret
    app_cred_id: str
    app_cred_secret: Secret


def new_secret() -> Secret:
    return Secret(secrets.token_urlsafe(24))


def create_member(admin: Any, spec: ProjectSpec, auth_url: str) -> Member:
    """The project, its user with the member role, and an application credential the user makes
    for itself (Keystone lets only a user create its own)."""
    import openstack

    identity = admin.identity
    project = identity.create_project(
        name=spec.project, domain_id="default", description="devcloud"
    )
    password = new_secret()
    user = identity.create_user(
        name=spec.user,
        password=password.reveal(),
        domain_id="default",
        default_project_id=project.id,
    )
    identity.assign_project_role_to_user(project, user, identity.find_role(MEMBER_ROLE))
    as_user: Any = openstack.connect(
        auth_url=auth_url,
        username=spec.user,
        password=password.reveal(),
        project_name=spec.project,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=spec.region,
        identity_api_version="3",
    )
    try:
        cred = as_user.identity.create_application_credential(
            user=user.id, name=f"{spec.project}-devcloud", description="bursting devcloud"
        )
    finally:
        as_user.close()
    return Member(spec, project.id, user.id, password, cred.id, Secret(cred.secret))


def create_ec2_credential(admin: Any, member: Member) -> dict[str, str]:
    """An EC2 (S3) access/secret pair for the member's user in its project."""
    blob = {"access": secrets.token_hex(16), "secret": secrets.token_hex(24)}
    admin.identity.create_credential(
        type="ec2", user_id=member.user_id, project_id=member.project_id, blob=json.dumps(blob)
    )
    return {**blob, "project_id": member.project_id}
