"""The OpenStack provider against devcloud's real Nova: what the contract does not cover.

Nova refuses beyond the quota in two ways: a create the API already counts against it answers
403, while creates sent back to back are all accepted (202) and the late ones are put in ERROR
with a 413 quota fault by the conductor's recheck. Both must end as QuotaExceeded with nothing
left behind. Servers booted here carry a real worker spec's cloud-init user-data.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
import yaml

from bursting.clock import SystemClock
from bursting.clouds.base import CloudProvider, ProviderContext
from bursting.clouds.registry import cloud_type
from bursting.contextualize import render_cloud_init
from bursting.errors import AuthError, CloudUnavailable, QuotaExceeded
from bursting.model import CloudStatus, Flavor, InstanceSpec, Secret, WorkerSpec
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration]
SMALL = Flavor("w1.small", 1, 1024, 2)
CLOUD = "private"


def provider(clouds_yaml: Path, **settings: Any) -> CloudProvider:
    from bursting.devcloud import PRIVATE_CLOUD

    config = cloud_type("openstack").config_model.model_validate(
        {
            "name": CLOUD,
            "type": "openstack",
            "flavors": [{"name": "w1.small", "cpus": 1, "memory_mb": 1024, "disk_gb": 2}],
            "openstack": {
                "cloud": PRIVATE_CLOUD,
                "clouds_yaml": str(clouds_yaml),
                "image": "bursting-worker",
                "network": "bursting-net",
                "security_groups": ["bursting-worker"],
                **settings,
            },
        }
    )
    return cloud_type("openstack").build(config, ProviderContext(SystemClock(), "it"))


def spec(pool_id: str) -> InstanceSpec:
    instance_id = f"{pool_id}-{CLOUD}-{uuid.uuid4().hex[:8]}"
    worker = WorkerSpec(
        pool_id, instance_id, CLOUD, SMALL, "127.0.0.1:9618", Secret("not-a-real-pool-token")
    )
    return InstanceSpec(instance_id, pool_id, CLOUD, SMALL, worker)


@pytest.fixture
def private(devcloud: Any) -> Iterator[tuple[Any, Any, str]]:
    """(admin, the private project's id, a pool id); the quota restored and servers gone after."""
    from bursting.devcloud import ADMIN_CLOUD, PRIVATE_CLOUD, connect

    admin = connect(devcloud.clouds_yaml, ADMIN_CLOUD)
    project = connect(devcloud.clouds_yaml, PRIVATE_CLOUD).current_project_id
    before = admin.compute.get_quota_set(project)
    pool_id = f"pv{uuid.uuid4().hex[:6]}"
    yield admin, project, pool_id
    for server in mine(admin, pool_id):
        admin.compute.delete_server(server.id, ignore_missing=True)
    wait_for("test servers deleted", lambda: not mine(admin, pool_id), timeout=90, every=0.5)
    admin.compute.update_quota_set(project, instances=before.instances)


def mine(admin: Any, pool_id: str) -> list[Any]:
    return list(admin.compute.servers(details=True, all_projects=True, name=f"^{pool_id}-"))


def test_servers_carry_tags_and_the_worker_user_data(devcloud: Any, private: Any) -> None:
    admin, _, pool_id = private
    cloud = provider(devcloud.clouds_yaml)
    asked = spec(pool_id)
    cloud.create(asked)
    (server,) = mine(admin, pool_id)
    assert server.metadata == {
        "bursting_pool": pool_id,
        "bursting_instance": asked.id,
        "bursting_cloud": CLOUD,
        "bursting_flavor": "w1.small",
    }
    assert asked.worker is not None
    user_data = base64.b64decode(admin.compute.get_server(server.id).user_data).decode()
    assert user_data == render_cloud_init(asked.worker)
    assert server.flavor.original_name == "w1.small"
    listed = wait_for(
        "ACTIVE",
        lambda: [i for i in cloud.list_instances(pool_id).instances if i.status.name == "ACTIVE"],
        timeout=60,
        every=0.5,
    )
    assert [i.id for i in listed] == [asked.id]
    # Nova shows the security groups once the server's networking is set up.
    assert admin.compute.get_server(server.id).security_groups == [{"name": "bursting-worker"}]


def test_a_new_create_is_one_request_a_create_asked_again_looks_first_a_listing_is_one(
    devcloud: Any, private: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, project, pool_id = private
    admin.compute.update_quota_set(project, instances=20)
    cloud = provider(devcloud.clouds_yaml, create_confirm_margin=0)
    cloud.flavors()  # the catalog, and the headroom from a first listing
    cloud.list_instances(pool_id)
    sent: list[tuple[str, str]] = []
    send = requests.Session.send

    def counted(session: requests.Session, request: Any, **kwargs: Any) -> Any:
        path = urlparse(request.url).path
        if "/servers" in path:
            sent.append((request.method, path.rsplit("/", 1)[-1]))
        return send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counted)
    fresh = spec(pool_id)
    cloud.create(InstanceSpec(fresh.id, pool_id, CLOUD, SMALL, fresh.worker, never_asked=True))
    assert sent == [("POST", "servers")]
    sent.clear()
    again = cloud.create(fresh)  # asked again: found, not created twice
    assert again.id == fresh.id
    assert sent == [("GET", "detail")]
    sent.clear()
    assert [i.id for i in cloud.list_instances(pool_id).instances] == [fresh.id]
    assert sent == [("GET", "detail")]
    assert [s.name for s in mine(admin, pool_id)] == [fresh.id]


def test_a_create_the_quota_refuses_is_quota_exceeded_and_leaves_nothing(
    devcloud: Any, private: Any
) -> None:
    admin, project, pool_id = private
    admin.compute.update_quota_set(project, instances=1)
    cloud = provider(devcloud.clouds_yaml)
    first = spec(pool_id)
    cloud.create(first)
    wait_for("counted", lambda: cloud.quota().instances == 0, timeout=30, every=0.5)
    refused = spec(pool_id)
    with pytest.raises(QuotaExceeded, match="Quota exceeded"):
        cloud.create(refused)
    assert {s.name for s in mine(admin, pool_id)} == {first.id}


def test_racing_creates_beyond_the_quota_end_as_quota_exceeded_with_no_error_left(
    devcloud: Any, private: Any
) -> None:
    admin, project, pool_id = private
    admin.compute.update_quota_set(project, instances=2)
    # Each create waits for Nova's verdict (its quota recheck) however loaded the machine is: a
    # server still scheduling when the confirmation gives up would count as created here.
    cloud = provider(devcloud.clouds_yaml, create_confirm_seconds=60)
    specs = [spec(pool_id) for _ in range(6)]
    outcomes: list[Any] = []

    def create(asked: InstanceSpec) -> Any:
        # An API that refused a connection under load is asked again, as the controller would
        # at its next cycle (creates are idempotent by instance id).
        for attempt in range(5):
            try:
                return cloud.create(asked)
            except QuotaExceeded as exc:
                return exc
            except CloudUnavailable:
                if attempt == 4:
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(6) as threads:
        outcomes = list(threads.map(create, specs))
    created = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(created) + len(refused) == len(specs)
    # Never beyond the quota; under parallel creates Nova may refuse more than it must.
    assert len(created) <= 2 and len(refused) >= 4, outcomes
    print(
        f"racing creates: {len(created)} created, {len(refused)} refused "
        f"({sum('fault 413' in str(e) for e in refused)} after a 202, by Nova's recheck)"
    )

    def settled() -> bool:
        listed = cloud.list_instances(pool_id).instances
        return all(i.status is CloudStatus.ACTIVE for i in listed) and len(listed) == len(created)

    wait_for("only the accepted servers left, ACTIVE", settled, timeout=180, every=0.5)
    assert {s.name for s in mine(admin, pool_id)} == {i.id for i in created}


def test_an_expired_application_credential_is_an_auth_error_without_its_secret(
    devcloud: Any, private: Any, tmp_path: Path
) -> None:
    from bursting.devcloud import PRIVATE_CLOUD

    document = yaml.safe_load(Path(devcloud.clouds_yaml).read_text())
    entry = document["clouds"][PRIVATE_CLOUD]
    secret = "wrong-secret-for-this-test"
    entry["auth"]["application_credential_secret"] = secret
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {PRIVATE_CLOUD: entry}}))
    cloud = provider(path)
    with pytest.raises(AuthError) as caught:
        cloud.list_instances(private[2])
    assert secret not in str(caught.value)
    assert "clouds.yaml" in str(caught.value)
