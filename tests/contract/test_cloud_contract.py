"""The CloudProvider contract: what the controller relies on from every cloud, fakes included.

Each test runs once per implementation (see conftest.py); a fake that drifts from the real
providers fails here just as a broken provider does.
"""

from __future__ import annotations

import pytest

from bursting.errors import CloudUnavailable, PermanentError, QuotaExceeded, TransientError
from bursting.model import CloudStatus, InstanceSpec
from tests.contract.conftest import (
    BOOT_SECONDS,
    CLOUD,
    FLAVORS,
    LARGE,
    NOT_OFFERED,
    SMALL,
    CloudHarness,
)


def test_create_returns_the_instance_as_asked(harness: CloudHarness, pool_id: str) -> None:
    cloud = harness.provider()
    spec = harness.spec(pool_id, LARGE)
    instance = cloud.create(spec)
    assert instance.id == spec.id
    assert instance.status in (CloudStatus.BUILD, CloudStatus.ACTIVE)
    assert (instance.pool_id, instance.cloud, instance.flavor) == (pool_id, CLOUD, LARGE.name)
    assert cloud.name == CLOUD


def test_the_configured_flavors_are_offered_with_their_sizes(harness: CloudHarness) -> None:
    """A real cloud offers more flavors than a config uses; the configured ones must be there,
    with the cores and memory the config says (what the controller checks at start)."""
    offered = {f.name: (f.cpus, f.memory_mb) for f in harness.provider().flavors()}
    for flavor in FLAVORS:
        assert offered.get(flavor.name) == (flavor.cpus, flavor.memory_mb), flavor.name
    assert NOT_OFFERED.name not in offered


def test_create_is_idempotent_by_id(harness: CloudHarness, pool_id: str) -> None:
    cloud = harness.provider()
    spec = harness.spec(pool_id)
    first = cloud.create(spec)
    again = cloud.create(spec)
    assert (again.id, again.created_at) == (first.id, first.created_at)
    listed = cloud.list_instances(pool_id).instances
    assert [i.id for i in listed] == [spec.id]

    harness.wait_active(cloud, spec)
    booted = cloud.create(spec)  # asked again once it runs: the same instance, not a second boot
    assert (booted.id, booted.status) == (spec.id, CloudStatus.ACTIVE)
    assert [i.id for i in cloud.list_instances(pool_id).instances] == [spec.id]


def test_delete_is_idempotent_and_the_instance_leaves_the_listing(
    harness: CloudHarness, pool_id: str
) -> None:
    cloud = harness.provider()
    cloud.delete(f"{pool_id}-{CLOUD}-never-existed")  # not an error

    spec = harness.spec(pool_id)
    cloud.create(spec)
    harness.wait_active(cloud, spec)
    assert harness.leftovers(spec.id)  # it really runs: its node (local), its worker (fake)
    cloud.delete(spec.id)
    harness.wait_gone(cloud, spec)
    assert not harness.leftovers(spec.id)
    cloud.delete(spec.id)  # already gone: still not an error
    assert spec.id not in cloud.list_instances(pool_id).by_id()


def test_a_provider_built_afresh_finds_and_deletes_what_the_old_one_created(
    harness: CloudHarness, pool_id: str
) -> None:
    """A restarted controller builds new providers: instances are found again by their tags."""
    old = harness.provider()
    spec = harness.spec(pool_id)
    old.create(spec)
    harness.wait_active(old, spec)
    new = harness.provider()
    assert set(new.list_instances(pool_id).by_id()) == {spec.id}
    assert new.create(spec).id == spec.id
    assert set(old.list_instances(pool_id).by_id()) == {spec.id}
    new.delete(spec.id)
    harness.wait_gone(old, spec)
    assert not harness.leftovers(spec.id)


def test_listing_shows_only_the_asked_pools_instances(harness: CloudHarness, pool_id: str) -> None:
    cloud = harness.provider()
    mine, theirs = harness.spec(pool_id), harness.spec(f"{pool_id}b")
    cloud.create(mine)
    cloud.create(theirs)
    assert set(cloud.list_instances(pool_id).by_id()) == {mine.id}
    assert set(cloud.list_instances(theirs.pool_id).by_id()) == {theirs.id}
    assert cloud.list_instances(f"{pool_id}c").instances == ()
    assert all(i.pool_id == pool_id for i in cloud.list_instances(pool_id).instances)


def test_quota_counts_down_and_a_create_beyond_it_is_refused(
    harness: CloudHarness, pool_id: str
) -> None:
    cloud = harness.provider(quota_cores=3)
    assert cloud.quota().known and cloud.quota().cores == 3

    large = harness.spec(pool_id, LARGE)
    cloud.create(large)
    assert cloud.quota().cores == 1
    assert cloud.list_instances(pool_id).quota.cores == 1

    refused = harness.spec(pool_id, LARGE)
    with pytest.raises(QuotaExceeded) as caught:
        cloud.create(refused)
    assert isinstance(caught.value, TransientError)
    assert set(cloud.list_instances(pool_id).by_id()) == {large.id}  # nothing was created
    assert cloud.quota().cores == 1

    cloud.create(large)  # asking again for what exists takes no more quota
    small = harness.spec(pool_id, SMALL)
    cloud.create(small)
    assert cloud.quota().cores == 0
    assert set(cloud.list_instances(pool_id).by_id()) == {large.id, small.id}

    cloud.delete(large.id)  # deleting gives the cores back
    harness.wait_gone(cloud, large)
    assert cloud.quota().cores == 2


def test_a_quota_the_cloud_will_not_tell_is_unknown(harness: CloudHarness, pool_id: str) -> None:
    cloud = harness.provider(quota_unknown=True)
    assert cloud.quota().known is False
    assert cloud.list_instances(pool_id).quota.known is False
    assert harness.provider().quota().known is True


def test_a_flavor_the_cloud_does_not_offer_is_a_permanent_error(
    harness: CloudHarness, pool_id: str
) -> None:
    cloud = harness.provider()
    spec: InstanceSpec = harness.spec(pool_id, NOT_OFFERED)
    with pytest.raises(PermanentError):
        cloud.create(spec)
    assert cloud.list_instances(pool_id).instances == ()
    assert not harness.leftovers(spec.id)


def test_a_cloud_that_cannot_be_reached_is_unavailable_not_empty(
    harness: CloudHarness, pool_id: str
) -> None:
    cloud = harness.provider()
    spec = harness.spec(pool_id)
    cloud.create(spec)
    with pytest.raises(CloudUnavailable) as caught:
        harness.unreachable().list_instances(pool_id)
    assert isinstance(caught.value, TransientError)
    assert set(harness.provider().list_instances(pool_id).by_id()) == {spec.id}


def test_delete_during_boot_never_boots(harness: CloudHarness, pool_id: str) -> None:
    cloud = harness.provider()
    spec = harness.spec(pool_id)
    assert cloud.create(spec).status is CloudStatus.BUILD
    cloud.delete(spec.id)
    harness.wait_gone(cloud, spec)
    for _ in range(3):  # well past its boot delay, the listing (which drives boots) never has it
        harness.advance(BOOT_SECONDS)
        assert spec.id not in cloud.list_instances(pool_id).by_id()
        assert not harness.leftovers(spec.id)
