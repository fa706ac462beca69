"""The `clouds.yaml` devcloud writes: the two clouds by application credential, and an admin.

openstacksdk and the `openstack` client read it through OS_CLIENT_CONFIG_FILE or --os-cloud;
it is written 0600 since it holds the credentials' secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bursting.devcloud.identity import Member
from bursting.devcloud.render import write_private
from bursting.model import Secret

PRIVATE_CLOUD = "devcloud-private"
PUBLIC_CLOUD = "devcloud-public"
ADMIN_CLOUD = "devcloud-admin"


def app_credential_entry(auth_url: str, member: Member) -> dict[str, object]:
    return {
        "auth_type": "v3applicationcredential",
        "auth": {
            "auth_url": auth_url,
            "application_credential_id": member.app_cred_id,
            "application_credential_secret": member.app_cred_secret.reveal(),
        },
        "region_name": member.spec.region,
        "identity_api_version": 3,
        "interface": "public",
    }


def clouds_document(
    auth_url: str, private: Member, public: Member, admin_password: Secret
) -> dict[str, object]:
    return {
        "clouds": {
            PRIVATE_CLOUD: app_credential_entry(auth_url, private),
            PUBLIC_CLOUD: app_credential_entry(auth_url, public),
            ADMIN_CLOUD: {
                "auth_type": "password",
                "auth": {
                    "auth_url": auth_url,
                    "username": "admin",
                    "password": admin_password.reveal(),
                    "project_name": "admin",
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": private.spec.region,
                "identity_api_version": 3,
                "interface": "public",
            },
        }
    }


def write_clouds_yaml(path: Path, document: dict[str, object]) -> None:
    write_private(path, yaml.safe_dump(document, sort_keys=False))


def connect(clouds_yaml: Path, cloud: str, timeout: float = 30.0) -> Any:
    """An openstacksdk connection to one of devcloud's clouds, from exactly that clouds.yaml (no
    environment lookup): for the hypervisor stand-in, benchmarks and tests."""
    import openstack
    from openstack.config import OpenStackConfig

    region = OpenStackConfig(config_files=[str(clouds_yaml)], load_envvars=False).get_one(
        cloud=cloud, api_timeout=timeout
    )
    return openstack.connection.Connection(config=region)
